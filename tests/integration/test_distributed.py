"""Real multi-process torch.distributed jobs (gloo, one process per rank) on this machine.

Each job is started once per module (fixtures) and several tests read its output.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from npuprofile.analysis.events import iter_events
from npuprofile.analysis.merge import merge_traces
from npuprofile.cli.main import main as cli_main
from tests.conftest import load_trace

ROOT = Path(__file__).resolve().parents[2]
JOB = Path(__file__).resolve().parents[1] / "dist_job.py"
STEM = re.compile(r"^(?P<run>.+?)\.rank(?P<rank>\d+)\.(?P<host>.+?)_(?P<pid>\d+)\.")
WORLD = 3
STEPS = 4
SLOW_RANK = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_job(scenario: str, out: Path, world: int, **extra: str) -> list[subprocess.Popen[str]]:
    """Start one process per rank; the environment is what torchrun would give (no launcher run id)."""
    out.mkdir(parents=True, exist_ok=True)
    port = str(free_port())
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("NPUPROFILE_", "TORCHELASTIC_", "SLURM_"))}
    procs = []
    for rank in range(world):
        env = dict(base, RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=port,
                   PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **extra)
        procs.append(subprocess.Popen([sys.executable, str(JOB), scenario, str(out)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs


def finish(procs: list[subprocess.Popen[str]], timeout: float = 120) -> list[tuple[int, str]]:
    results = []
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for other in procs:
                other.kill()
            raise
        results.append((proc.returncode, err))
    return results


def assert_ranks_ok(results: list[tuple[int, str]]) -> None:
    """Every rank exited 0; else fail with every rank's status and the end of its stderr (the first failure
    of a collective often shows only on another rank)."""
    if any(code != 0 for code, _ in results):
        report = "\n".join(f"--- rank {rank} exited {code}:\n{err[-3000:]}" for rank, (code, err) in enumerate(results))
        raise AssertionError(f"a rank failed:\n{report}")


def traces_of(directory: Path) -> dict[int, list[Path]]:
    found: dict[int, list[Path]] = {}
    for path in sorted(directory.glob("*.pt.trace.json")):
        match = STEM.match(path.name)
        assert match, path.name
        found.setdefault(int(match["rank"]), []).append(path)
    return found


@pytest.fixture(scope="module")
def steps_job(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("steps_job")
    out, selected = root / "all", root / "selected"
    results = finish(start_job("steps", out, WORLD, STEPS=str(STEPS), SLOW_RANK=str(SLOW_RANK),
                               SELECT="1", SELECT_DIR=str(selected)))
    assert_ranks_ok(results)
    return {"out": out, "selected": selected}


# -- per-rank files -----------------------------------------------------------------------


def test_every_rank_writes_its_own_files_under_one_run_id(steps_job: dict[str, Any]) -> None:
    out = steps_job["out"]
    sessions = [json.loads((out / f"session.rank{r}.json").read_text()) for r in range(WORLD)]
    run_ids = {s["run_id"] for s in sessions}
    assert len(run_ids) == 1, run_ids  # agreed through the process group's store, no launcher id
    (run_id,) = run_ids
    traces = traces_of(out)
    assert sorted(traces) == list(range(WORLD))
    for rank, paths in traces.items():
        assert len(paths) == 1
        assert STEM.match(paths[0].name)["run"] == run_id
        assert load_trace(paths[0])["distributedInfo"]["rank"] == rank
        stem = paths[0].name.split(".")[0:3]
        assert len(list(out.glob(".".join(stem) + ".summary.json"))) == 1
    every_file = [p for p in out.iterdir() if p.name.startswith(run_id)]
    assert {int(STEM.match(p.name)["rank"]) for p in every_file} == set(range(WORLD))
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_only_selected_ranks_write(steps_job: dict[str, Any]) -> None:
    selected = steps_job["selected"]
    written = [p.name for p in selected.iterdir() if p.name != "all_ranks.json"]
    assert written and all(".rank1." in name for name in written), written
    gathered = json.loads((selected / "all_ranks.json").read_text())
    assert list(gathered["per_rank"]) == ["1"]
    flags = {entry["rank"]: entry["selected"] for entry in gathered["metadata"]["ranks"]}
    assert flags == {0: False, 1: True, 2: False}
    assert gathered["stragglers"] == []  # one profiled rank: nobody to compare with


# -- statistics across ranks -----------------------------------------------------------------


def test_gathered_statistics_count_every_rank_and_flag_the_straggler(steps_job: dict[str, Any]) -> None:
    out = steps_job["out"]
    gathered = json.loads((out / "all_ranks.json").read_text())
    counted = STEPS - 1  # warmup=1 leaves the first step out
    assert sorted(gathered["per_rank"]) == [str(r) for r in range(WORLD)]
    for rank in range(WORLD):
        regions = {r["name"]: r for r in gathered["per_rank"][str(rank)]}
        assert regions["compute"]["count"] == counted
        assert regions["allreduce"]["count"] == counted
        own = json.loads(next(out.glob(f"*.rank{rank}.*.summary.json")).read_text())
        own_compute = next(r for r in own["regions"] if r["name"] == "compute")
        assert own_compute["total_ns"] == regions["compute"]["total_ns"]
    aggregate = {r["name"]: r for r in gathered["regions"]}
    assert aggregate["compute"]["count"] == counted * WORLD
    assert aggregate["compute"]["total_ns"] == sum(
        next(r for r in gathered["per_rank"][str(k)] if r["name"] == "compute")["total_ns"] for k in range(WORLD)
    )
    stragglers = {s["region"]: s for s in gathered["stragglers"]}
    assert stragglers["compute"]["rank"] == SLOW_RANK
    assert stragglers["compute"]["excess"] > 0
    text = (out / "all_ranks.txt").read_text()
    flagged = [line for line in text.splitlines() if line.startswith("compute") and line.rstrip().endswith("slowest")]
    assert len(flagged) == 1 and flagged[0].split()[1] == str(SLOW_RANK)


# -- merge -------------------------------------------------------------------------------------


def test_merged_trace_has_one_lane_per_rank_and_every_event(steps_job: dict[str, Any], tmp_path: Path) -> None:
    out = steps_job["out"]
    merged_path = tmp_path / "merged.json"
    assert cli_main(["merge", str(out), "-o", str(merged_path), "--quiet"]) == 0
    merged = json.loads(merged_path.read_text())  # valid JSON
    events = merged["traceEvents"]
    names = {e["pid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e["name"] == "process_name"}
    assert names == {r: f"rank {r}" for r in range(WORLD)}
    assert {e["pid"] for e in events} == set(range(WORLD))
    traces = traces_of(out)
    for rank, (path,) in traces.items():
        source = [e for e in iter_events(path) if e.get("ph") != "M"]
        lane = [e for e in events if e["pid"] == rank and e.get("ph") != "M"]
        assert sorted((e["name"], e.get("dur")) for e in lane) == sorted((e["name"], e.get("dur")) for e in source)
    files = merged["npuprofileMerge"]["files"]
    assert sorted(f["metadata"]["distributedInfo"]["rank"] for f in files) == list(range(WORLD))


def test_merged_clocks_line_up_collectives(steps_job: dict[str, Any], tmp_path: Path) -> None:
    """An all-reduce cannot end on any rank before it has started on every rank."""
    result = merge_traces(sum(traces_of(steps_job["out"]).values(), []), tmp_path / "m.json")
    events = load_trace(result.output)["traceEvents"]
    reductions = {}
    for rank in range(WORLD):
        spans = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                       if e["pid"] == rank and e.get("name") == "allreduce" and e.get("ph") == "X")
        assert len(spans) == STEPS
        reductions[rank] = spans
    for step in range(STEPS):
        latest_start = max(reductions[r][step][0] for r in range(WORLD))
        earliest_end = min(reductions[r][step][1] for r in range(WORLD))
        assert latest_start <= earliest_end + 1000  # microseconds of slack for clock reads


def test_merge_gzip_output_matches_plain(steps_job: dict[str, Any], tmp_path: Path) -> None:
    plain = merge_traces(sum(traces_of(steps_job["out"]).values(), []), tmp_path / "m.json")
    packed = tmp_path / "m.json.gz"
    assert cli_main(["merge", str(steps_job["out"]), "-o", str(packed), "-q"]) == 0
    assert packed.read_bytes()[:2] == b"\x1f\x8b"
    assert load_trace(packed)["traceEvents"] == load_trace(plain.output)["traceEvents"]


# -- a rank dies ---------------------------------------------------------------------------------


def test_a_dead_rank_leaves_the_others_complete_and_mergeable(tmp_path: Path) -> None:
    out = tmp_path / "die"
    results = finish(start_job("die", out, 2, STEPS="8", DIE_RANK="1", DIE_AFTER="5"))
    assert results[1][0] == 3  # os._exit(3)
    traces = traces_of(out)
    assert sorted(traces) == [0, 1]
    assert len(traces[1]) == 2  # the two complete 2-step cycles before it died
    for paths in traces.values():
        for path in paths:
            load_trace(path)  # every file written is complete JSON
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    merged = merge_traces(sum(traces.values(), []), tmp_path / "merged.json")
    lanes = {e["pid"] for e in load_trace(merged.output)["traceEvents"]}
    assert lanes == {0, 1}
    assert merged.events_in == sum(1 for paths in traces.values() for p in paths for _ in iter_events(p))


# -- on demand ------------------------------------------------------------------------------------


def wait_for(predicate: Any, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def states(out: Path) -> list[dict[str, Any]]:
    result = []
    for path in (out / "npuprofile-on-demand").glob("*.state.json"):
        try:
            result.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            pass
    return result


def test_on_demand_job_file_trigger_signal_and_refusal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "od"
    procs = start_job("on_demand", out, 2, OD_STEPS="3", OD_SIGNAL="SIGUSR1", MAX_STEPS="3000")
    try:
        wait_for(lambda: len(states(out)) == 2, what="both ranks to arm")
        assert cli_main(["trigger", str(out), "--steps", "25"]) == 0
        assert cli_main(["trigger", str(out), "--steps", "5"]) == 2  # refused: pending or running
        assert "trigger refused" in capsys.readouterr().err
        wait_for(lambda: all(s["capturing"] for s in states(out)), what="both ranks to capture")
        wait_for(lambda: all(not s["capturing"] and s["handled"] for s in states(out)), what="the capture to end")
        file_runs = {m["run"] for m in (STEM.match(p.name) for p in out.glob("*.pt.trace.json"))}
        assert len(file_runs) == 1
        for proc in procs:
            os.kill(proc.pid, signal.SIGUSR1)
        wait_for(lambda: len(list(out.glob("*-sig*.summary.json"))) == 2, what="the signal captures")
    finally:
        (out / "stop").write_text("")
    results = finish(procs)
    assert_ranks_ok(results)
    for rank in range(2):
        captures = json.loads((out / f"done.rank{rank}.json").read_text())["captures"]
        assert [c["steps"] for c in captures] == [25, 3]
    for summary_path in out.glob("*.summary.json"):
        summary = json.loads(summary_path.read_text())
        compute = next(r for r in summary["regions"] if r["name"] == "compute")
        assert compute["count"] == summary["metadata"]["steps"]
    (file_run,) = file_runs
    merged = merge_traces([p for p in out.glob("*.pt.trace.json") if p.name.startswith(file_run + ".")],
                          tmp_path / "capture.json")
    assert merged.ranks == [0, 1]
    assert not states(out)  # state files removed when the job disarmed


# -- a controller per rank, with coordinates ---------------------------------------------------------


def test_two_ranks_with_coords_capture_the_same_window(tmp_path: Path) -> None:
    out = tmp_path / "ctl"
    results = finish(start_job("controller", out, 2))
    assert_ranks_ok(results)
    captures = [json.loads((out / f"capture.rank{r}.json").read_text()) for r in range(2)]
    assert captures[0]["run_id"] == captures[1]["run_id"]  # one run id agreed by the ranks
    paths = []
    for rank, capture in enumerate(captures):
        (trace,) = [Path(f) for f in capture["files"] if f.endswith(".pt.trace.json")]
        assert trace.name.startswith(f"{capture['run_id']}.rank{rank}.tp{rank}-dp0.")
        names = sorted(e["name"] for e in load_trace(trace)["traceEvents"]
                       if e.get("name", "").startswith("ProfilerStep#"))
        assert names == ["ProfilerStep#2", "ProfilerStep#3", "ProfilerStep#4"]
        (summary,) = [json.loads(Path(f).read_text()) for f in capture["files"] if f.endswith(".summary.json")]
        assert summary["metadata"]["coords"] == {"tp": rank, "dp": 0} and len(summary["steps"]) == 3
        assert next(r for r in summary["regions"] if r["name"] == "allreduce")["count"] == 3
        paths.append(trace)
    merged = tmp_path / "merged.json"
    assert cli_main(["merge", *map(str, paths), "-o", str(merged), "--group-by", "tp", "-q"]) == 0
    events = load_trace(merged)["traceEvents"]
    lanes = {e["pid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e["name"] == "process_name"}
    assert lanes == {0: "tp0 | rank 0 dp0", 1: "tp1 | rank 1 dp0"}
    gathered = json.loads((out / "all_ranks.json").read_text())
    assert {entry["rank"]: entry["coords"] for entry in gathered["metadata"]["ranks"]} == {
        0: {"tp": 0, "dp": 0}, 1: {"tp": 1, "dp": 0}}
    rows = (out / "all_ranks.txt").read_text().splitlines()
    assert rows[0].split()[:3] == ["region", "rank", "coords"]
    assert any(line.split()[:3] == ["compute", "1", "tp1-dp0"] for line in rows)
