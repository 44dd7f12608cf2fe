"""The command line, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "npuprofile", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_demo_writes_trace_and_summary(tmp_path) -> None:
    out = tmp_path / "demo"
    result = run_cli("demo", "--steps", "4", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "layer.0" in result.stdout and "attention" in result.stdout
    traces = list(out.glob("*.pt.trace.json"))
    assert len(traces) == 1
    names = {e.get("name") for e in json.loads(traces[0].read_text())["traceEvents"]}
    assert {"forward", "layer.0", "attention", "mlp"} <= names
    (summary,) = out.glob("*.summary.json")
    data = json.loads(summary.read_text())
    # the demo's schedule waits one step and warms up one: the summary counts the 2 traced steps
    assert {r["name"]: r["count"] for r in data["regions"]}["forward"] == 2
    assert sorted(e["name"] for e in json.loads(traces[0].read_text())["traceEvents"]
                  if str(e.get("name")).startswith("ProfilerStep#")) == ["ProfilerStep#2", "ProfilerStep#3"]
    assert [step["index"] for step in data["steps"]] == [2, 3]
    assert str(traces[0]) in result.stdout


def test_backends_lists_cpu() -> None:
    result = run_cli("backends", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["cpu"]["available"] is True and "torch" in rows["cpu"]["versions"]


def test_user_error_is_one_line_and_nonzero(tmp_path) -> None:
    result = run_cli("demo", "--backend", "tpu", "-o", str(tmp_path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "unknown backend 'tpu'" in result.stderr and len(result.stderr.strip().splitlines()) == 1
