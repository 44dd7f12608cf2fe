"""``npuprofile summarize``, ``report`` and ``demo`` run as a user runs them: a subprocess."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests._trace_factory import REGIONS, shared_traces, write_ascend_layout

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env = {k: v for k, v in env.items() if not k.startswith("NPUPROFILE_")}
    return subprocess.run([sys.executable, "-m", "npuprofile", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


@pytest.fixture
def traces() -> dict[str, Any]:
    return shared_traces()


def test_summarize_prints_tables(traces: dict[str, Any]) -> None:
    result = cli("summarize", str(traces["plain"]), "--top", "4")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for title in ("Regions", "Steps", "Top CPU ops by self time"):
        assert title in out
    for name in REGIONS:
        assert name in out
    assert result.stderr == ""  # no progress bar when stderr is not a terminal
    op_table = out.split("Top CPU ops by self time")[1].split("\n\n")[0]
    assert len([line for line in op_table.splitlines() if line.startswith("aten::")]) == 4


def test_summarize_json_and_csv(traces: dict[str, Any], tmp_path: Path) -> None:
    result = cli("summarize", str(traces["packed"]), "--json", "--top", "3")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {r["name"] for r in data["regions"]} == set(REGIONS)
    assert len(data["cpu_ops"]) == 3 and data["steps"]
    result = cli("summarize", str(traces["plain"].parent), "--csv", "-o", str(tmp_path / "s.csv"))
    assert result.returncode == 0, result.stderr
    assert str(tmp_path / "s.csv") in result.stdout
    rows = list(csv.DictReader(io.StringIO((tmp_path / "s.csv").read_text())))
    assert {r["section"] for r in rows} == {"region", "step", "op"}


def test_summarize_directory_with_torch_npu_layout(tmp_path: Path) -> None:
    write_ascend_layout(tmp_path)
    result = cli("summarize", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["sources"][0]["layout"] == "array"
    assert {o["name"] for o in data["device_ops"]} == {"MatMul_kernel", "Add_kernel", "hcom_allReduce_"}


def _user_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("npuprofile ")
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("command", ["summarize", "report"])
def test_user_mistakes_are_one_line(command: str, tmp_path: Path, traces: dict[str, Any]) -> None:
    _user_error(cli(command, str(tmp_path / "missing.json")), "no such file", "missing.json")
    _user_error(cli(command, str(tmp_path)), "no trace files found")
    (tmp_path / "notes.json").write_text("shopping list")
    _user_error(cli(command, str(tmp_path / "notes.json")), "not a trace")
    (tmp_path / "config.json").write_text('{"lr": 0.1}')
    _user_error(cli(command, str(tmp_path / "config.json")), "JSON but not a trace")
    (tmp_path / "empty.json").write_text("")
    _user_error(cli(command, str(tmp_path / "empty.json")), "empty file")
    data = traces["packed"].read_bytes()
    (tmp_path / "cut.pt.trace.json.gz").write_bytes(data[: len(data) // 3])
    _user_error(cli(command, str(tmp_path / "cut.pt.trace.json.gz")), "truncated gzip")
    _user_error(cli(command, str(traces["plain"]), "--top", "0"), "--top=0")


def test_summarize_json_and_csv_exclude_each_other(traces: dict[str, Any]) -> None:
    result = cli("summarize", str(traces["plain"]), "--json", "--csv")
    assert result.returncode == 2 and "not allowed with argument" in result.stderr


def test_report_writes_one_self_contained_file(traces: dict[str, Any], tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.html"
    result = cli("report", str(traces["plain"]), "-o", str(target))
    assert result.returncode == 0, result.stderr
    assert f"report: {target}" in result.stdout
    html = target.read_text()
    assert html.startswith("<!DOCTYPE html>")
    for name in REGIONS:
        assert name in html
    for remote in ("http://", "https://", "<script", "<link", "src="):
        assert remote not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert html.count("<svg") >= 3
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]  # no temporary left behind


def test_demo_writes_traces_summary_and_report(tmp_path: Path) -> None:
    result = cli("demo", "--steps", "4", "-o", str(tmp_path / "demo"), timeout=300)
    assert result.returncode == 0, result.stderr
    written = {}
    for line in result.stdout.splitlines():
        label, _, path = line.partition(":")
        if label in ("trace", "summary", "analysis", "report") and path.strip().startswith("/"):
            written.setdefault(label, []).append(Path(path.strip()))
    assert set(written) == {"trace", "summary", "analysis", "report"}
    for paths in written.values():
        assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    analysis = json.loads(next(p for p in written["analysis"] if p.suffix == ".json").read_text())
    assert {"forward", "attention", "mlp"} <= {r["name"] for r in analysis["regions"]}
    assert analysis["metadata"]["backend"] == "cpu"
    assert "Steps (from the trace)" in result.stdout
    assert "attention" in written["report"][0].read_text()
