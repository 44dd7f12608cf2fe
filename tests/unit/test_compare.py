"""Comparing two runs: matching rows, verdicts, sources, the result's views, and false alarms."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

import npuprofile as npp
from npuprofile.analysis import compare_rows, summarize
from npuprofile.analysis.compare import (
    FASTER,
    NO_CHANGE,
    ONLY_IN_BASE,
    ONLY_IN_NEW,
    SLOWER,
    TOO_FEW,
    VERDICTS,
    compare,
    parse_fraction,
    top_ops,
)
from npuprofile.analysis.compare_rows import Measure
from npuprofile.analysis.welch import Moments
from npuprofile.errors import ConfigError, TraceError
from npuprofile.summary.html import render_report
from npuprofile.summary.model import DEVICE, HOST, OpRow, RegionRow, StepRow, Summary
from tests._compare_runs import WORKLOAD, manual_run, write_trace
from tests.fakes import register_manual


@pytest.fixture
def adapter():
    return register_manual(npp.backends)


def verdicts(result) -> dict[tuple[str, str], str]:
    return {(row.kind, row.name): row.verdict for row in result.rows}


# -- the must-show runs -------------------------------------------------------------------------
def test_a_region_made_a_quarter_slower_is_slower_and_one_with_noise_only_is_not(adapter) -> None:
    base = manual_run(WORKLOAD, seed=1, adapter=adapter)
    new = manual_run(WORKLOAD, seed=2, slower={"work": 1.25}, adapter=adapter)
    result = compare(base, new, threshold=0.05)
    work, noise = result.row("region", "work"), result.row("region", "noisy")
    assert work.verdict == SLOWER and work.per == "step"
    assert 0.2 < work.change < 0.3 and 0 < work.ci_low < work.change < work.ci_high
    assert noise.verdict == NO_CHANGE and noise.ci_low < 0 < noise.ci_high
    assert result.regressions and {r.name for r in result.regressions} <= {"work", "step"}


def test_the_same_runs_swapped_say_faster(adapter) -> None:
    base = manual_run(WORKLOAD, seed=2, slower={"work": 1.25}, adapter=adapter)
    new = manual_run(WORKLOAD, seed=1, adapter=adapter)
    result = compare(base, new)
    assert result.row("region", "work").verdict == FASTER
    assert result.row("region", "noisy").verdict == NO_CHANGE
    assert result.regressions == [] and result.improvements


def test_ten_pairs_of_runs_of_the_same_code_flag_at_most_one_row(adapter) -> None:
    flagged = tested = 0
    for pair in range(10):
        base = manual_run(WORKLOAD, seed=100 + 2 * pair, adapter=adapter)
        new = manual_run(WORKLOAD, seed=101 + 2 * pair, adapter=adapter)
        result = compare(base, new)
        flagged += sum(row.verdict in (SLOWER, FASTER) for row in result.rows)
        tested += result.tested
    assert tested == 10 * 4  # three regions and the step, every pair
    assert flagged <= 1


# -- verdicts -------------------------------------------------------------------------------------
def test_a_certain_change_within_the_threshold_is_no_change(adapter) -> None:
    steady = {"steady": (1_000_000, 0.001)}
    base = manual_run(steady, seed=1, adapter=adapter)
    new = manual_run(steady, seed=2, slower={"steady": 1.03}, adapter=adapter)
    row = compare(base, new, threshold=0.05).row("region", "steady")
    assert row.ci_low > 0 and row.verdict == NO_CHANGE
    assert compare(base, new, threshold="1%").row("region", "steady").verdict == SLOWER


def test_rows_on_one_side_only_are_listed_as_such(adapter) -> None:
    base = manual_run({"shared": (1e6, 0.1), "removed": (1e6, 0.1)}, seed=1, adapter=adapter)
    new = manual_run({"shared": (1e6, 0.1), "added": (2e6, 0.1)}, seed=2, adapter=adapter)
    result = compare(base, new)
    removed, added = result.row("region", "removed"), result.row("region", "added")
    assert removed.verdict == ONLY_IN_BASE and removed.new is None and removed.base == pytest.approx(1e6, rel=0.1)
    assert added.verdict == ONLY_IN_NEW and added.base is None and added.new_count == 30
    assert result.row("region", "shared").verdict == NO_CHANGE
    assert [(r.kind, r.name) for r in result.regressions] == [("step", "step")]  # the added region costs time


def test_too_few_samples_says_how_many_are_needed(adapter) -> None:
    base = manual_run(WORKLOAD, seed=1, steps=3, adapter=adapter)
    new = manual_run(WORKLOAD, seed=2, steps=3, slower={"work": 2.0}, adapter=adapter)
    row = compare(base, new).row("region", "work")
    assert row.verdict == TOO_FEW and row.ci_low is None
    assert row.change == pytest.approx(1.0, rel=0.1)  # still shown, not judged
    assert "needs 5 samples per side" in row.note and "3 per step" in row.note
    assert compare(base, new, min_samples=3).row("region", "work").verdict == SLOWER


def test_ops_and_kernels_with_totals_only_are_not_judged() -> None:
    def summary(scale: float) -> Summary:
        ops = [OpRow("aten::mm", 100, self_host_ns=int(5e6 * scale), total_host_ns=int(6e6 * scale), kind=HOST),
               OpRow("gemm", 100, self_device_ns=int(9e6 * scale), total_device_ns=int(9e6 * scale), kind=DEVICE)]
        return Summary(ops=ops, kind="trace")

    result = compare(summary(1.0), summary(3.0))
    op, kernel = result.row("op", "aten::mm"), result.row("kernel", "gemm")
    assert op.verdict == kernel.verdict == TOO_FEW
    assert op.base == pytest.approx(5e4) and op.change == pytest.approx(2.0)
    assert "totals only" in kernel.note and result.regressions == []


def test_regions_without_steps_are_judged_per_call(adapter) -> None:
    def run(factor: float, seed: int) -> Summary:
        import random

        rng = random.Random(seed)
        with npp.session(backend="manual", trace=False) as session:
            for _ in range(40):
                with npp.profile_region("call"):
                    adapter.clock.advance(int(1e6 * factor * rng.uniform(0.9, 1.1)))
        return session.summary()

    result = compare(run(1.0, 1), run(1.3, 2))
    row = result.row("region", "call")
    assert row.per == "call" and row.base_samples == 40 and row.verdict == SLOWER
    assert [r.kind for r in result.rows] == ["region"]  # no steps, so no step row


def test_a_basis_is_used_only_when_both_sides_have_it() -> None:
    spread = RegionRow("r", 10, 10_000, 10_000, 1_000.0, std_ns=100.0, p50_ns=1_000.0)
    no_spread = RegionRow("r", 10, 20_000, 20_000, 2_000.0)
    result = compare(Summary(regions=[spread]), Summary(regions=[no_spread]))
    row = result.row("region", "r")
    assert row.verdict == TOO_FEW and "base: 10 per call; new: totals only" in row.note


def test_a_region_of_zero_time_on_both_sides_is_no_change() -> None:
    steps = [StepRow(i, 1_000, {"wrapper": 0}) for i in range(6)]
    zero = RegionRow("wrapper", 6, 6_000, 0, 1_000.0)
    row = compare(Summary(regions=[zero], steps=steps), Summary(regions=[zero], steps=steps)).row("region", "wrapper")
    assert row.verdict == NO_CHANGE and row.change == 0.0


def test_bench_results_compare_per_repeat(adapter) -> None:
    def bench(cost_ns: int) -> npp.BenchResult:
        return npp.bench(adapter.clock.advance, cost_ns, repeat=12, warmup=1, name="call", backend="manual")

    result = compare(bench(1_000_000), bench(1_500_000))
    row = result.row("region", "call")
    assert row.per == "repeat" and row.base_samples == 12 and row.change == pytest.approx(0.5)
    assert row.verdict == SLOWER


def test_trace_files_compare_by_steps_and_list_kernels_of_one_side(tmp_path: Path) -> None:
    base = write_trace(tmp_path / "base.pt.trace.json", steps=8, seed=1, kernels=("gemm", "relu"))
    new = write_trace(tmp_path / "new.pt.trace.json", steps=8, seed=2, kernels=("gemm", "gelu"), forward_us=1200)
    result = compare(base, new)
    forward = result.row("region", "forward")
    assert forward.per == "step" and forward.base_samples == 8 and forward.verdict == SLOWER
    assert result.row("kernel", "relu").verdict == ONLY_IN_BASE
    assert result.row("kernel", "gelu").verdict == ONLY_IN_NEW
    assert result.row("kernel", "gemm").verdict == TOO_FEW
    assert result.row("op", "aten::mm").base_count == 8
    assert result.base.label == str(base)


@given(st.lists(st.tuples(st.integers(1, 10**7), st.integers(0, 10**6)), min_size=1, max_size=12))
def test_a_run_compared_with_itself_never_changes(durations: list[tuple[int, int]]) -> None:
    steps = [StepRow(i, a + b, {"a": a, "b": b}) for i, (a, b) in enumerate(durations)]
    regions = [RegionRow("a", len(steps), sum(a for a, _ in durations), 0, 1.0, std_ns=3.0, p50_ns=1.0),
               RegionRow("b", len(steps), sum(b for _, b in durations), 0, 1.0)]
    summary = Summary(regions=regions, steps=steps, ops=[OpRow("op", 3, 30, 30)])
    result = compare(summary, summary, threshold=0)
    assert all(row.verdict in (NO_CHANGE, TOO_FEW) for row in result.rows)
    assert all(row.change in (None, 0.0) or row.change == pytest.approx(0.0) for row in result.rows)


# -- the result -----------------------------------------------------------------------------------
def test_json_layout(adapter, tmp_path: Path) -> None:
    result = compare(manual_run(WORKLOAD, seed=1, adapter=adapter),
                     manual_run(WORKLOAD, seed=2, slower={"work": 1.25}, adapter=adapter))
    data = json.loads(result.to_json(tmp_path / "cmp.json"))
    assert data == json.loads((tmp_path / "cmp.json").read_text()) == json.loads(json.dumps(result.to_dict()))
    assert data["kind"] == "comparison" and data["threshold"] == 0.05 and data["tested"] == 4
    assert data["row_confidence"] == pytest.approx(1 - 0.05 / 4)
    for row in data["rows"]:
        assert {"kind", "name", "base", "new", "change", "ci_low", "ci_high", "verdict"} <= set(row)
        assert row["kind"] in ("region", "op", "kernel", "step") and row["verdict"] in VERDICTS
    assert data["counts"]["slower"] == data["regressions"] == len(result.regressions)
    assert [r["kind"] for r in data["rows"]][0] == "step"


def test_text_has_a_table_per_kind_and_the_method(adapter) -> None:
    result = compare(manual_run(WORKLOAD, seed=1, adapter=adapter),
                     manual_run(WORKLOAD, seed=2, slower={"work": 1.25}, adapter=adapter))
    text = str(result)
    assert "Step (duration)" in text and "Regions" in text
    assert re.search(r"^work\s+step\s+2\.\d\dms\s+2\.\d\dms\s+\+2\d\.\d%\s+\[\+\d+\.\d%, \+\d+\.\d%\]\s+30/30\s+slower$",
                     text, re.M)
    assert "for all 4 tested rows together (98.8% each)" in text
    assert repr(result).startswith("<Comparison rows=4")


def test_report_shows_the_comparison_side_by_side(adapter) -> None:
    base = manual_run(WORKLOAD, seed=1, adapter=adapter)
    new = manual_run(WORKLOAD, seed=2, slower={"work": 1.25}, adapter=adapter)
    result = compare(base, new)
    page = render_report(new, comparison=result)
    section = page[page.index('<section id="compare">'):]
    section = section[:section.index("</section>")]
    assert section.count("<circle") == result.tested
    assert section.count('data-verdict="slower"') == len(result.regressions)
    assert "<td>work</td>" in section and "+2" in section
    assert '<section id="compare">' not in render_report(new)


def test_top_ops_keeps_the_largest_of_each_kind() -> None:
    ops = [OpRow(f"h{i}", 1, self_host_ns=i, kind=HOST) for i in range(5)] + \
          [OpRow(f"d{i}", 1, self_device_ns=i, kind=DEVICE) for i in range(5)]
    kept = top_ops(Summary(ops=ops), 2).ops
    assert [o.name for o in kept] == ["h4", "h3", "d4", "d3"]


def test_a_new_kind_of_row_is_one_function(monkeypatch: pytest.MonkeyPatch) -> None:
    def busy(summary: Summary) -> Iterator[Measure]:
        values = [float(step.regions.get("busy", 0)) for step in summary.steps]
        moments = Moments.of(values)
        yield Measure("device", "busy", None, moments.n, moments.total, moments.mean, {"step": moments})

    monkeypatch.setitem(compare_rows.ROW_KINDS, "device", busy)

    def summary(scale: float) -> Summary:
        return Summary(steps=[StepRow(i, 100, {"busy": int(scale * (50 + i % 3))}) for i in range(10)])

    row = compare(summary(1.0), summary(2.0)).row("device", "busy")
    assert row.verdict == SLOWER and row.change == pytest.approx(1.0, rel=0.01)


# -- sources --------------------------------------------------------------------------------------
def test_sources_are_summaries_files_directories_and_sessions(adapter, tmp_path: Path) -> None:
    base = manual_run(WORKLOAD, seed=1, adapter=adapter)
    base.to_json(tmp_path / "run.summary.json")
    base.to_json(tmp_path / "baseline.json")  # any name: the file opens with schema_version
    folder = tmp_path / "saved"
    folder.mkdir()
    base.to_json(folder / "x.summary.json")
    for source in (tmp_path / "run.summary.json", str(tmp_path / "baseline.json"), folder):
        result = compare(source, base)
        assert result.row("region", "work").change == pytest.approx(0.0)
        assert result.base.label == str(source)
    with npp.session(backend="manual", trace=False) as live:
        with npp.profile_region("work"):
            adapter.clock.advance(10)
    assert compare(base, live).row("region", "work").new == pytest.approx(10)


def test_trace_directory_is_summarized_with_every_op(tmp_path: Path) -> None:
    kernels = [f"k{i}" for i in range(30)]
    write_trace(tmp_path / "a.pt.trace.json", steps=6, seed=1, kernels=kernels)
    result = compare(tmp_path, tmp_path)
    assert len([r for r in result.rows if r.kind == "kernel"]) == 30 > len(summarize(tmp_path).device_ops)


def _bad_source(case: str, root: Path) -> Path:
    if case == "missing":
        return root / "missing.json"
    folder = root / case
    folder.mkdir()
    if case == "two summaries":
        for name in ("a", "b"):
            (folder / f"{name}.summary.json").write_text("{}")
    if case == "not a summary":
        (folder / "bad.summary.json").write_text("[1, 2]")
        return folder / "bad.summary.json"
    return folder


@pytest.mark.parametrize(("case", "message"), [
    ("missing", "missing.json: no such file or directory"),
    ("empty", "empty: no trace files and no *summary.json in it"),
    ("two summaries", "several summaries to choose from (a.summary.json, b.summary.json)"),
    ("not a summary", "bad.summary.json: not an npuprofile summary"),
])
def test_bad_sources_raise_trace_errors_naming_them(tmp_path: Path, case: str, message: str) -> None:
    with pytest.raises(TraceError, match=re.escape(message)):
        compare(_bad_source(case, tmp_path), Summary())


def test_sources_of_other_types_are_refused() -> None:
    with pytest.raises(ConfigError, match="cannot compare 42 of type int"):
        compare(42, Summary())  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "expected"), [("5%", 0.05), (0.05, 0.05), ("0.05", 0.05), (" 12.5% ", 0.125),
                                                 (0, 0.0), ("100%", 1.0), (1, 1.0)])
def test_fractions_are_parsed(value, expected: float) -> None:
    assert parse_fraction(value, "threshold") == pytest.approx(expected)


@pytest.mark.parametrize("value", ["5", "abc", -0.1, True, "150%", float("nan"), None, "%"])
def test_bad_fractions_name_the_value(value) -> None:
    with pytest.raises(ConfigError, match=r"threshold=.* is not allowed; allowed: a fraction"):
        parse_fraction(value, "threshold")


@pytest.mark.parametrize("kwargs", [{"confidence": 1.0}, {"confidence": 0}, {"min_samples": 1},
                                    {"min_samples": True}, {"threshold": "x"}])
def test_bad_settings_are_refused(kwargs) -> None:
    with pytest.raises(ConfigError):
        compare(Summary(), Summary(), **kwargs)


def test_compare_is_public() -> None:
    assert npp.compare is compare and "compare" in npp.__all__ and "Comparison" in npp.__all__
    assert dataclasses.is_dataclass(npp.Comparison)
