"""Real traces of GPU runs recorded by others compare without error: rows matched, one-sided kernels listed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from npuprofile.analysis.compare import ONLY_IN_BASE, ONLY_IN_NEW, TOO_FEW, VERDICTS, compare
from tests.real_traces import SKIP_REASON, real_traces_root

ROOT = real_traces_root()  # at import: the shared fixture clears NPUPROFILE_* before each test
pytestmark = pytest.mark.skipif(ROOT is None, reason=SKIP_REASON)

#: Same ResNet-50 training on one V100, DataLoader workers 0 and 4; a trace-diff pair (A100 rank vs V100 rank).
PAIRS = [("cuda/kineto_resnet50_w0", "cuda/kineto_resnet50_w4"),
         ("cuda/hta_trace_diff_control", "cuda/hta_trace_diff_test")]


def pair(base: str, new: str) -> tuple[Path, Path]:
    assert ROOT is not None
    paths = ROOT / base, ROOT / new
    missing = [str(p) for p in paths if not p.is_dir()]
    if missing:
        pytest.skip(f"real trace folder(s) {', '.join(missing)} not in {ROOT}")
    return paths


@pytest.mark.parametrize(("base", "new"), PAIRS)
def test_two_gpu_runs_compare_row_by_row(base: str, new: str) -> None:
    result = compare(*pair(base, new))
    kinds = {row.kind for row in result.rows}
    assert {"step", "op", "kernel"} <= kinds
    matched = [row for row in result.rows if row.base is not None and row.new is not None]
    assert len([r for r in matched if r.kind == "kernel"]) >= 50 and len([r for r in matched if r.kind == "op"]) >= 50
    one_sided = [row for row in result.rows if row.kind == "kernel" and row.verdict in (ONLY_IN_BASE, ONLY_IN_NEW)]
    assert one_sided and all((row.base is None) == (row.verdict == ONLY_IN_NEW) for row in one_sided)
    step = result.row("step", "step")
    assert step.tested and step.base_samples == step.new_samples == 6
    assert all(row.verdict == TOO_FEW for row in matched if row.kind in ("op", "kernel"))  # totals only, said so
    assert all(row.verdict in VERDICTS for row in result.rows)
    assert json.loads(result.to_json())["rows"] and str(result)


def test_the_workers_pair_finds_the_loader_change() -> None:
    result = compare(*pair(*PAIRS[0]))
    assert result.row("step", "step").verdict == "faster"  # four loader workers: shorter steps
    single = [r.name for r in result.rows if r.verdict == ONLY_IN_BASE and "SingleProcessDataLoaderIter" in r.name]
    assert single  # the single-process loader ran only without workers


def test_the_command_line_compares_real_traces() -> None:
    base, new = pair(*PAIRS[1])
    result = subprocess.run([sys.executable, "-m", "npuprofile", "compare", str(base), str(new), "--json",
                             "--fail-on-regression"], capture_output=True, text=True, timeout=300)
    data = json.loads(result.stdout)
    assert result.returncode == (1 if data["regressions"] else 0), result.stderr
    regions = [row for row in data["rows"] if row["kind"] == "region"]
    assert len(regions) == 35 and sum(row["ci_low"] is not None for row in regions) >= 30
