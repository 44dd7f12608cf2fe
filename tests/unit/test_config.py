"""Configuration: keyword > environment > default, strict parsing, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import npuprofile as npp
from npuprofile.errors import ConfigError
from npuprofile.sessions import config as _config


def test_defaults() -> None:
    config = _config.resolve(environ={})
    assert config.backend == "auto" and config.trace and config.enabled
    assert not (config.record_shapes or config.with_stack or config.profile_memory or config.with_flops)
    assert config.schedule is None and config.output_dir == Path("npuprofile-traces")


def test_env_overrides_default_and_kwarg_overrides_env(tmp_path) -> None:
    env = {
        "NPUPROFILE_RECORD_SHAPES": "yes",
        "NPUPROFILE_WITH_STACK": "1",
        "NPUPROFILE_PROFILE_MEMORY": "on",
        "NPUPROFILE_WITH_FLOPS": "TRUE",
        "NPUPROFILE_SCHEDULE": "1, 2, 3, 4",
        "NPUPROFILE_OUTPUT_DIR": str(tmp_path / "env"),
        "NPUPROFILE_BACKEND": "CPU",
    }
    config = _config.resolve(environ=env)
    assert config.record_shapes and config.with_stack and config.profile_memory and config.with_flops
    assert config.schedule == npp.schedule(wait=1, warmup=2, active=3, repeat=4)
    assert config.output_dir == tmp_path / "env" and config.backend == "cpu"
    config = _config.resolve(environ=env, record_shapes=False, schedule=npp.schedule(active=2), output_dir=tmp_path)
    assert not config.record_shapes and config.schedule == npp.schedule(active=2) and config.output_dir == tmp_path


@pytest.mark.parametrize(
    "env, words",
    [
        ({"NPUPROFILE_RECORD_SHAPES": "maybe"}, ["NPUPROFILE_RECORD_SHAPES", "'maybe'", "true"]),
        ({"NPUPROFILE_SCHEDULE": "1,-1,3"}, ["NPUPROFILE_SCHEDULE", "warmup", ">= 0"]),
        ({"NPUPROFILE_SCHEDULE": "1,1,0"}, ["NPUPROFILE_SCHEDULE", "active", ">= 1"]),
        ({"NPUPROFILE_SCHEDULE": "1,1"}, ["NPUPROFILE_SCHEDULE", "wait,warmup,active"]),
        ({"NPUPROFILE_SCHEDULE": "a,b,c"}, ["NPUPROFILE_SCHEDULE", "integer"]),
        ({"NPUPROFILE_RANKS": "0,x"}, ["NPUPROFILE_RANKS", "'x'"]),
        ({"NPUPROFILE_RUN_ID": "../escape"}, ["NPUPROFILE_RUN_ID", "letters"]),
        ({"NPUPROFILE_ENABLED": "2"}, ["NPUPROFILE_ENABLED", "'2'"]),
    ],
)
def test_bad_env_values_name_variable_value_and_allowed(env, words) -> None:
    with pytest.raises(ConfigError) as info:
        _config.resolve(environ=env)
    for word in words:
        assert word in str(info.value)


def test_bad_keyword_values() -> None:
    with pytest.raises(ConfigError, match="record_shapes='maybe'"):
        npp.session(record_shapes="maybe")
    with pytest.raises(ConfigError, match="unknown session option"):
        npp.session(record_shape=True)
    with pytest.raises(ConfigError, match="schedule"):
        npp.session(schedule=42)
    with pytest.raises(ConfigError, match="active"):
        npp.schedule(wait=1, active=0)
    with pytest.raises(ConfigError, match="wait"):
        npp.schedule(wait=-2)


def test_unknown_backend_lists_known_ones() -> None:
    with pytest.raises(npp.errors.UnknownBackendError) as info:
        npp.session(backend="tpu")
    assert "'tpu'" in str(info.value) and "cpu" in str(info.value) and "auto" in str(info.value)


def test_output_dir_that_is_a_file(tmp_path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        npp.session(output_dir=target)
    with pytest.raises(ConfigError, match="lies under the file"):
        npp.session(output_dir=target / "sub")


def test_output_dir_not_writable_via_access(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(_config.os, "access", lambda path, mode: False)
    with pytest.raises(ConfigError, match="not writable"):
        npp.session(output_dir=tmp_path / "traces")


def test_schedule_parse_round_trip_forms() -> None:
    assert _config.parse_schedule({"wait": 1, "active": 2}, "s") == npp.schedule(wait=1, active=2)
    assert _config.parse_schedule("none", "s") is None
    with pytest.raises(ConfigError, match="unknown keys"):
        _config.parse_schedule({"wiat": 1}, "s")


@given(
    wait=st.integers(0, 5), warmup=st.integers(0, 5), active=st.integers(1, 5),
    repeat=st.integers(0, 3), spaces=st.sampled_from(["", " ", "  "]),
)
def test_schedule_strings_parse_exactly(wait, warmup, active, repeat, spaces) -> None:
    text = f"{wait},{spaces}{warmup},{active}{spaces},{repeat}"
    parsed = _config.resolve(environ={"NPUPROFILE_SCHEDULE": text}).schedule
    assert parsed == npp.schedule(wait=wait, warmup=warmup, active=active, repeat=repeat)


@given(word=st.text(max_size=8))
def test_bool_parsing_accepts_only_known_words(word) -> None:
    known = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
    key = word.strip().lower()
    env = {"NPUPROFILE_WITH_STACK": word}
    if word.strip() == "":
        assert _config.resolve(environ=env).with_stack is False  # empty means unset
    elif key in known:
        assert _config.resolve(environ=env).with_stack is known[key]
    else:
        with pytest.raises(ConfigError, match="NPUPROFILE_WITH_STACK"):
            _config.resolve(environ=env)


@given(ranks=st.lists(st.integers(0, 64), min_size=1, max_size=6))
def test_rank_lists_parse(ranks) -> None:
    parsed = _config.resolve(environ={"NPUPROFILE_RANKS": ",".join(map(str, ranks))}).ranks
    assert parsed == tuple(sorted(set(ranks)))


def test_recorded_steps_matches_torch_schedule() -> None:
    import torch.profiler

    for sched in [npp.schedule(wait=1, warmup=1, active=2, repeat=2), npp.schedule(wait=2, active=1, skip_first=3)]:
        fn = torch.profiler.schedule(**sched.to_dict())
        actions = [fn(step) for step in range(20)]
        recording = sum(a.name in ("RECORD", "RECORD_AND_SAVE") for a in actions)
        assert sched.recorded_steps(20) == recording
