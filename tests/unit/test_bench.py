"""npp.bench: warm-up excluded, repeat and min_time honoured, honest sync, exports, argument errors."""

from __future__ import annotations

import csv
import functools
import io
import json
import time
from typing import Any

import pytest

import npuprofile as npp
from npuprofile.errors import ConfigError, SessionError
from tests.fakes import ClockBackend, ManualClock, ManualEventClock, register_clock


def register(clock: ManualClock) -> ClockBackend:
    return register_clock(npp.backends, "counting", clock)


def test_warmup_calls_are_excluded_and_repeat_is_exact() -> None:
    clock = ManualClock()
    register(clock)
    calls: list[int] = []

    def fn(x: int, *, scale: int) -> None:
        calls.append(x)
        clock.now += 1000 * scale * (100 if len(calls) <= 2 else 1)  # warm-up calls are slow

    result = npp.bench(fn, 7, scale=3, warmup=2, repeat=5, backend="counting", name="fn")
    assert calls == [7] * 7
    assert result.count == 5
    assert result.stats.total_ns == 5 * 3000
    assert (result.stats.min_ns, result.stats.max_ns) == (3000, 3000)
    assert result.summary.metadata["bench"]["warmup"] == 2
    assert len(result.summary.steps) == 5


def test_min_time_extends_the_run_past_repeat() -> None:
    calls = []
    start = time.perf_counter()
    result = npp.bench(lambda: calls.append(time.sleep(0.002)), warmup=0, repeat=2, min_time=0.05, name="sleepy")
    wall = time.perf_counter() - start
    assert result.count == len(calls)
    assert result.count > 2 and wall >= 0.05  # ran past `repeat` until min_time had passed
    assert result.stats.total_ns >= result.count * 2_000_000  # every call slept at least 2 ms
    assert result.stats.total_ns <= wall * 1e9


def test_host_clock_synchronizes_each_call_device_events_do_not() -> None:
    host = register(ManualClock())
    npp.bench(lambda: None, warmup=1, repeat=4, backend="counting")
    assert host.syncs == 2 * 5  # entry and exit of every call, warm-up included
    events = register(ManualEventClock())
    result = npp.bench(lambda: None, warmup=1, repeat=4, backend="counting")
    assert events.syncs == 0
    assert result.summary.metadata["bench"]["clock"] == "device events"


def test_nested_regions_inside_fn_are_reported() -> None:
    def fn() -> None:
        with npp.profile_region("inner"):
            time.sleep(0.001)

    result = npp.bench(fn, warmup=1, repeat=3, name="outer")
    assert result.summary.region("inner").count == 3
    assert result.stats.self_ns == result.stats.total_ns - result.summary.region("inner").total_ns


def test_result_prints_and_exports(tmp_path: Any) -> None:
    result = npp.bench(functools.partial(time.sleep, 0.001), warmup=0, repeat=3, name="nap")
    text = str(result)
    assert "bench 'nap': 3 calls (+0 warm-up)" in text and "nap" in text.splitlines()[-1]
    data = json.loads(result.to_json(tmp_path / "b.json"))
    assert data["regions"][0]["name"] == "nap" and data["regions"][0]["count"] == 3
    assert json.loads((tmp_path / "b.json").read_text()) == data
    rows = list(csv.DictReader(io.StringIO(result.to_csv(tmp_path / "b.csv"))))
    assert rows[0]["name"] == "nap" and int(rows[0]["count"]) == 3
    assert (tmp_path / "b.csv").read_text() == result.to_csv()


def test_default_name_is_the_qualified_name() -> None:
    def my_step() -> None:
        pass

    result = npp.bench(my_step, repeat=1)
    assert result.name.endswith("my_step") and result.name in result.summary


def test_runs_even_when_profiling_is_disabled_by_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NPUPROFILE_ENABLED", "0")
    assert npp.bench(lambda: None, repeat=2).count == 2


def test_refuses_to_run_inside_an_active_session() -> None:
    with npp.session(trace=False):
        with pytest.raises(SessionError, match="another session is active"):
            npp.bench(lambda: None)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"warmup": -1}, "warmup=-1"),
        ({"warmup": 1.5}, "warmup=1.5"),
        ({"repeat": 0}, "repeat=0"),
        ({"repeat": True}, "repeat=True"),
        ({"min_time": -0.1}, "min_time=-0.1"),
        ({"min_time": float("nan")}, "min_time=nan"),
        ({"min_time": "1"}, "min_time='1'"),
        ({"name": ""}, "name=''"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        npp.bench(lambda: None, **kwargs)


def test_fn_must_be_callable() -> None:
    with pytest.raises(ConfigError, match="callable"):
        npp.bench(42)  # type: ignore[arg-type]
