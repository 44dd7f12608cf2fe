"""On-demand profiling inside one process: trigger file, signal, refusals, options; run ids."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path

import pytest

import npuprofile as npp
from npuprofile.errors import ConfigError, SessionError
from npuprofile.sessions import on_demand as _on_demand
from npuprofile.sessions.distributed import default_run_id, launcher_run_id


def run_steps(armed: npp.OnDemand, count: int) -> None:
    for _ in armed.steps(range(count)):
        with npp.profile_region("work"):
            pass


def test_trigger_file_profiles_the_next_n_steps(tmp_path: Path) -> None:
    with npp.on_demand(output_dir=tmp_path, poll_interval=0, trace=False) as armed:
        run_steps(armed, 3)
        assert not armed.captures and not armed.capturing
        trigger, states = _on_demand.write_trigger(tmp_path, steps=4)
        assert [s["pid"] for s in states] == [os.getpid()]
        run_steps(armed, 1)  # the step that notices the trigger
        assert armed.capturing
        with pytest.raises(SessionError, match="trigger refused: capture .* still running"):
            _on_demand.write_trigger(tmp_path, steps=2)
        run_steps(armed, 6)
        assert not armed.capturing
        (capture,) = armed.captures
        assert capture["steps"] == 4 and capture["trigger"] == trigger["id"]
        assert capture["run_id"] == f"{armed.run_id}-{trigger['id']}"
    assert not list((tmp_path / _on_demand.CONTROL_DIR).glob("*.state.json"))


def test_capture_writes_traces_named_by_run_and_rank(tmp_path: Path) -> None:
    armed = npp.on_demand(output_dir=tmp_path, poll_interval=0, run_id="job7")
    _on_demand.write_trigger(tmp_path, steps=2)
    run_steps(armed, 4)
    armed.close()
    (capture,) = armed.captures
    assert capture["traces"] and all(Path(p).name.startswith("job7-od") and ".rank0." in p for p in capture["traces"])


def test_a_trigger_written_before_arming_is_ignored(tmp_path: Path) -> None:
    _on_demand.write_trigger(tmp_path, steps=2)
    time.sleep(0.01)
    with npp.on_demand(output_dir=tmp_path, poll_interval=0, trace=False) as armed:
        run_steps(armed, 3)
        assert not armed.captures


def test_a_pending_trigger_refuses_the_next(tmp_path: Path) -> None:
    with npp.on_demand(output_dir=tmp_path, poll_interval=60, trace=False) as armed:
        run_steps(armed, 1)  # polled once now; the next look is a minute away
        _on_demand.write_trigger(tmp_path, steps=2)
        with pytest.raises(SessionError, match="still pending"):
            _on_demand.write_trigger(tmp_path, steps=2)
        _on_demand.write_trigger(tmp_path, steps=2, force=True)


def test_state_of_a_dead_process_is_dropped(tmp_path: Path) -> None:
    control = tmp_path / _on_demand.CONTROL_DIR
    control.mkdir()
    import socket

    (control / "x.rank0.h_1.state.json").write_text(json.dumps(
        {"pid": 2**22 + 12345, "host": socket.gethostname(), "capturing": "old", "armed_at": 0}))
    _on_demand.write_trigger(tmp_path, steps=1)  # not refused by the stale "capturing" state
    assert not list(control.glob("*.state.json"))


def test_signal_triggers_and_a_second_signal_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    calls = []

    def earlier(signum: int, frame: object) -> None:
        calls.append(signum)

    previous = signal.signal(signal.SIGUSR1, earlier)
    try:
        with npp.on_demand(output_dir=tmp_path, signal="USR1", steps=3, trace=False) as armed:
            os.kill(os.getpid(), signal.SIGUSR1)
            run_steps(armed, 1)
            assert armed.capturing
            with caplog.at_level(logging.WARNING, logger="npuprofile"):
                os.kill(os.getpid(), signal.SIGUSR1)
                run_steps(armed, 1)
            assert "refused" in caplog.text
            run_steps(armed, 5)
            assert [c["steps"] for c in armed.captures] == [3]
        assert calls == [signal.SIGUSR1, signal.SIGUSR1]  # the earlier handler still runs
        assert signal.getsignal(signal.SIGUSR1) is earlier  # restored on close
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_unselected_rank_never_polls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with npp.on_demand(output_dir=tmp_path, ranks=[0], poll_interval=0) as armed:
        _on_demand.write_trigger(tmp_path, steps=1)
        run_steps(armed, 3)
        assert not armed.selected and not armed.captures
    assert (tmp_path / _on_demand.CONTROL_DIR / "trigger.json").exists()
    assert not list((tmp_path / _on_demand.CONTROL_DIR).glob("*.state.json"))


def test_options_are_validated_when_arming(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="schedule"):
        npp.on_demand(output_dir=tmp_path, schedule="bogus")
    with pytest.raises(ConfigError, match="SIGKILL"):
        npp.on_demand(output_dir=tmp_path, signal="SIGKILL")
    with pytest.raises(ConfigError, match="not a signal"):
        npp.on_demand(output_dir=tmp_path, signal="SIGNOPE")
    with pytest.raises(ConfigError, match="poll_interval"):
        npp.on_demand(output_dir=tmp_path, poll_interval=-1)
    monkeypatch.setenv("NPUPROFILE_ON_DEMAND_STEPS", "0")
    with pytest.raises(ConfigError, match="NPUPROFILE_ON_DEMAND_STEPS"):
        npp.on_demand(output_dir=tmp_path)
    monkeypatch.setenv("NPUPROFILE_ON_DEMAND_STEPS", "7")
    with npp.on_demand(output_dir=tmp_path, trace=False) as armed:
        assert armed.steps_per_capture == 7


def test_run_id_comes_from_the_launcher() -> None:
    assert launcher_run_id({"TORCHELASTIC_RUN_ID": "abc"}) == "abc"
    assert launcher_run_id({"TORCHELASTIC_RUN_ID": "none"}) is None
    assert launcher_run_id({"SLURM_JOB_ID": "42", "SLURM_STEP_ID": "3"}) == "42.3"
    assert default_run_id({"SLURM_JOB_ID": "42"}) == "42"
    assert default_run_id({}) != default_run_id({})  # no launcher, no process group: fresh each time
