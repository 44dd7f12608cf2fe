"""``npuprofile compare`` and ``npuprofile report --compare`` run as a user would: verdicts, exit status, files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import npuprofile as npp
from tests._compare_runs import WORKLOAD, manual_run, write_trace
from tests.fakes import register_manual


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "npuprofile", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two saved runs: ``new`` has the "work" region a quarter slower, "noisy" only noise."""
    folder = tmp_path_factory.mktemp("runs")
    adapter = register_manual(npp.backends)
    base = manual_run(WORKLOAD, seed=1, adapter=adapter)
    new = manual_run(WORKLOAD, seed=2, slower={"work": 1.25}, adapter=adapter)
    npp.backends.reset()
    paths = {"base": folder / "base.summary.json", "new": folder / "new.summary.json"}
    base.to_json(paths["base"])
    new.to_json(paths["new"])
    return paths


def verdict_of(stdout: str, name: str) -> str:
    line = next(line for line in stdout.splitlines() if line.split()[:1] == [name])
    return line.split("  ")[-1].strip()


def test_a_quarter_slower_fails_the_gate(runs: dict[str, Path]) -> None:
    result = run_cli("compare", str(runs["base"]), str(runs["new"]), "--threshold", "5%", "--fail-on-regression")
    assert result.returncode == 1, result.stderr
    assert verdict_of(result.stdout, "work") == "slower"
    assert verdict_of(result.stdout, "noisy") == "no change"


def test_swapped_it_is_faster_and_passes(runs: dict[str, Path]) -> None:
    result = run_cli("compare", str(runs["new"]), str(runs["base"]), "--fail-on-regression")
    assert result.returncode == 0, result.stderr
    assert verdict_of(result.stdout, "work") == "faster"
    assert verdict_of(result.stdout, "noisy") == "no change"


def test_without_the_flag_a_regression_exits_zero(runs: dict[str, Path]) -> None:
    assert run_cli("compare", str(runs["base"]), str(runs["new"])).returncode == 0


def test_json_rows(runs: dict[str, Path], tmp_path: Path) -> None:
    result = run_cli("compare", str(runs["base"]), str(runs["new"]), "--json", "--threshold", "0.05")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    rows = {(r["kind"], r["name"]): r for r in data["rows"]}
    assert set(rows) == {("step", "step"), ("region", "work"), ("region", "noisy"), ("region", "steady")}
    work = rows[("region", "work")]
    assert work["verdict"] == "slower" and work["ci_low"] > 0 and 0.2 < work["change"] < 0.3
    assert work["new"] / work["base"] == pytest.approx(1 + work["change"])
    assert data["base"]["source"] == str(runs["base"]) and data["threshold"] == 0.05
    written = run_cli("compare", str(runs["base"]), str(runs["new"]), "--json", "-o", str(tmp_path / "c.json"))
    assert written.stdout.strip() == f"comparison: {tmp_path / 'c.json'}"
    assert json.loads((tmp_path / "c.json").read_text())["rows"] == data["rows"]


@pytest.mark.parametrize(("args", "message"), [
    (("missing.summary.json", "{new}"), "no such file or directory"),
    (("{base}", "{new}", "--threshold", "5"), "threshold='5' is not allowed"),
    (("{base}", "{new}", "--confidence", "100%"), "confidence=1.0 is not allowed"),
    (("{base}", "{new}", "--min-samples", "1"), "min_samples=1 is not allowed"),
])
def test_bad_input_is_one_line_and_exit_2(runs: dict[str, Path], args: tuple[str, ...], message: str) -> None:
    result = run_cli("compare", *(a.format(base=runs["base"], new=runs["new"]) for a in args))
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("npuprofile compare: error:")


def test_report_compares_side_by_side(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "diff.html"
    result = run_cli("report", str(runs["new"]), "--compare", str(runs["base"]), "-o", str(out))
    assert result.returncode == 0, result.stderr
    page = out.read_text()
    assert '<section id="compare">' in page and "Compared with the base run" in page
    assert page.count('data-verdict="slower"') >= 1 and str(runs["base"]) in page


def test_report_of_traces_compares_every_op_and_charts_the_top_ones(tmp_path: Path) -> None:
    kernels = [f"kernel_{i}" for i in range(20)]
    base = write_trace(tmp_path / "base.pt.trace.json", steps=6, seed=1, kernels=kernels)
    new = write_trace(tmp_path / "new.pt.trace.json", steps=6, seed=2, kernels=kernels[2:])
    out = tmp_path / "diff.html"
    result = run_cli("report", str(new), "--compare", str(base), "--top", "5", "-o", str(out))
    assert result.returncode == 0, result.stderr
    page = out.read_text()
    compared = page[page.index('<section id="compare">'):page.index("</section>", page.index('id="compare"'))]
    assert compared.count(">only in base</span>") == 2 and compared.count("<td>kernel</td>") == 20
    device = page[page.index('<section id="device-ops">'):]
    assert device[:device.index("</section>")].count("<tr>") == 1 + 5  # header and the top five
