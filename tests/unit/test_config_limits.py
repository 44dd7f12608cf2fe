"""Values at and past the edges: each is a ConfigError before anything starts, naming the value and the limit."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import npuprofile as npp
from npuprofile.core import region as _region
from npuprofile.errors import ConfigError
from npuprofile.sessions import config as _config
from npuprofile.sessions import lifecycle as _lifecycle


def nothing_started(tmp_path: Path) -> bool:
    return not _region.ACTIVE and not _lifecycle.running() and sorted(tmp_path.iterdir()) == []


@pytest.mark.parametrize("make", [
    lambda base: f"{base}/a\0b",
    lambda base: f"{base}/" + "x" * 10_000,
    lambda base: f"{base}/" + "/".join(["d" * 200] * 30),
    lambda base: f"{base}/\ud800",
], ids=["nul-byte", "10k-component", "10k-path", "lone-surrogate"])
def test_unusable_output_dirs_are_config_errors(tmp_path, make) -> None:
    with pytest.raises(ConfigError, match="output_dir"):
        npp.session(output_dir=make(tmp_path))
    assert nothing_started(tmp_path)


def test_unusable_output_dir_from_the_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NPUPROFILE_OUTPUT_DIR", str(tmp_path / ("y" * 5000)))
    with pytest.raises(ConfigError, match="NPUPROFILE_OUTPUT_DIR"):
        npp.session()
    assert nothing_started(tmp_path)


@pytest.mark.parametrize("schedule", [
    {"wait": 2**63}, {"active": 2**63}, {"repeat": 2**64}, "1,1,9223372036854775808", "0,0,1," + "9" * 50,
])
def test_schedule_values_past_the_limit_are_config_errors(tmp_path, schedule) -> None:
    with pytest.raises(ConfigError, match=r"schedule.*(too large|not allowed)"):
        npp.session(output_dir=tmp_path, schedule=schedule)
    with pytest.raises(ConfigError, match="2147483647"):
        npp.schedule(skip_first=2**63)
    assert nothing_started(tmp_path)


def test_the_largest_schedule_value_is_accepted_and_the_summary_written(tmp_path) -> None:
    with npp.session(output_dir=tmp_path, schedule={"wait": _config.MAX_INT}) as s:
        with npp.profile_region("r"):
            pass
    assert all(p.exists() for p in s.summary_paths)


@pytest.mark.parametrize("interval", [1e300, float("inf"), float("nan"), -1, "1e400", 3601])
def test_poll_intervals_past_the_limit_are_config_errors(tmp_path, interval) -> None:
    with pytest.raises(ConfigError, match="poll_interval"):
        npp.on_demand(output_dir=tmp_path, poll_interval=interval)
    assert nothing_started(tmp_path)


@pytest.mark.parametrize("value", [-1, 1e300, float("nan"), "soon", True, 3601])
def test_flush_timeout_is_checked_in_both_forms(tmp_path, monkeypatch, value) -> None:
    with pytest.raises(ConfigError, match="flush_timeout"):
        npp.session(output_dir=tmp_path, flush_timeout=value)
    monkeypatch.setenv("NPUPROFILE_FLUSH_TIMEOUT", str(value))
    with pytest.raises(ConfigError, match="NPUPROFILE_FLUSH_TIMEOUT"):
        npp.session(output_dir=tmp_path)


def test_flush_timeout_keyword_wins_over_its_variable(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NPUPROFILE_FLUSH_TIMEOUT", "7.5")
    assert npp.session(output_dir=tmp_path).config.flush_timeout == 7.5
    assert npp.session(output_dir=tmp_path, flush_timeout=2).config.flush_timeout == 2.0
    assert _config.resolve(environ={}).flush_timeout == 10.0


@given(number=st.integers(-(2**70), 2**70), minimum=st.integers(0, 2))
def test_integers_parse_exactly_inside_the_limits_and_are_refused_outside(number, minimum) -> None:
    for value in (number, str(number)):
        if minimum <= number <= _config.MAX_INT:
            assert _config.parse_int(value, "n", minimum) == number
        else:
            with pytest.raises(ConfigError, match=r"n=.*(too small|too large)"):
                _config.parse_int(value, "n", minimum)


@given(seconds=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**6), 10**6)))
def test_durations_parse_inside_the_limits_and_are_refused_outside(seconds) -> None:
    if 0 <= seconds <= _config.MAX_SECONDS:
        assert _config.parse_seconds(seconds, "t") == float(seconds)
    else:
        with pytest.raises(ConfigError, match="t="):
            _config.parse_seconds(seconds, "t")
