"""Comparing several runs per side, with the run as the sample: samples, verdicts, limits, sources, JSON."""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npuprofile.analysis.compare import NO_CHANGE, ONLY_IN_NEW, SLOWER, TOO_FEW, compare
from npuprofile.analysis.compare_rows import CALL, STEP
from npuprofile.analysis.compare_runs import RUN, run_measures
from npuprofile.cli.main import main as cli_main
from npuprofile.errors import ConfigError
from npuprofile.summary import json as summary_json
from npuprofile.summary.model import HOST, OpRow, RegionRow, StepRow, Summary


def run(work: list[int], *, op_ns: int | None = None, extra: str | None = None) -> Summary:
    """One run: a region "work" with the given time per step (and, optionally, an op and a second region)."""
    steps = [StepRow(i, value + 10, {"work": value, **({extra: 5} if extra else {})}) for i, value in enumerate(work)]
    mean = sum(work) / len(work)
    std = math.sqrt(sum((v - mean) ** 2 for v in work) / len(work))
    regions = [RegionRow("work", len(work), sum(work), sum(work), mean, std_ns=std)]
    if extra:
        regions.append(RegionRow(extra, len(work), 5 * len(work), 5 * len(work), 5.0, std_ns=0.0))
    ops = [OpRow("aten::mm", 4, self_host_ns=op_ns, total_host_ns=op_ns, kind=HOST)] if op_ns is not None else []
    return Summary(steps=steps, regions=regions, ops=ops)


def level(mean: float, seed: int, steps: int = 30, spread: float = 0.01) -> Summary:
    """A run whose "work" region takes about ``mean`` per step, with a small spread within the run."""
    rng = random.Random(seed)
    return run([round(mean * rng.gauss(1.0, spread)) for _ in range(steps)])


def test_each_run_gives_one_sample_the_mean_of_its_steps() -> None:
    runs = [run([10, 20, 30], op_ns=400), run([40, 40], op_ns=800), run([5, 7], op_ns=600)]
    work = run_measures(runs)[("region", "work", None)]
    assert work.samples[STEP].n == 3 and work.samples[STEP].mean == pytest.approx((20 + 40 + 6) / 3)
    assert work.samples[STEP].variance == pytest.approx(((20 - 22) ** 2 + (40 - 22) ** 2 + (6 - 22) ** 2) / 2)
    assert work.count == 7 and work.total_ns == 60 + 80 + 12
    op = run_measures(runs)[("op", "aten::mm", None)]  # an op's self time per call, one mean per run
    assert set(op.samples) == {CALL} and op.samples[CALL].mean == pytest.approx((100 + 200 + 150) / 3)


def test_a_region_absent_from_a_run_counts_zero_per_step_and_an_op_counts_as_missing() -> None:
    runs = [run([10, 10], op_ns=40, extra="rare"), run([10, 10], op_ns=40, extra="rare"), run([10, 10])]
    rows = run_measures(runs)
    assert rows[("region", "rare", None)].samples[STEP].n == 3
    assert rows[("region", "rare", None)].samples[STEP].mean == pytest.approx(10 / 3)
    assert rows[("region", "rare", None)].samples[CALL].n == 2  # per call, the run without it has no sample
    assert rows[("op", "aten::mm", None)].samples[CALL].n == 2


def test_drift_between_runs_turns_a_single_run_slowdown_into_no_change() -> None:
    base_levels, new_levels = [1000, 1200, 900, 1100], [1200, 950, 1050, 1150]
    base = [level(m, seed) for seed, m in enumerate(base_levels)]
    new = [level(m, 10 + seed) for seed, m in enumerate(new_levels)]
    single = compare(base[0], new[0]).row("region", "work")
    assert single.verdict == SLOWER and single.per == "step" and single.base_samples == 30
    over_runs = compare(base, new)
    work = over_runs.row("region", "work")
    assert work.verdict == NO_CHANGE and work.per == RUN and (work.base_samples, work.new_samples) == (4, 4)
    assert work.ci_low < 0 < work.ci_high
    assert work.base == pytest.approx(sum(r.region("work").mean_ns for r in base) / 4)


def test_a_slowdown_every_run_shows_is_slower_over_runs() -> None:
    base = [level(m, seed) for seed, m in enumerate([1000, 1010, 990, 1005])]
    new = [level(m, 10 + seed) for seed, m in enumerate([1250, 1262, 1240, 1255])]
    work = compare(base, new).row("region", "work")
    assert work.verdict == SLOWER and work.per == RUN and 0.2 < work.ci_low < work.change < work.ci_high < 0.3


def test_too_few_runs_names_the_runs_needed() -> None:
    base, new = [level(1000, 1), level(1010, 2)], [level(1250, 3), level(1260, 4)]
    work = compare(base, new).row("region", "work")
    assert work.verdict == TOO_FEW and "needs 3 runs per side, base has 2, new has 2" in work.note
    assert compare(base, new, min_runs=2).row("region", "work").verdict == SLOWER
    assert "a row needs 3 runs on each side" in compare(base, new).text()


@pytest.mark.parametrize("value", [1, 0, -3, True, 2.5, "3"])
def test_bad_min_runs_name_the_value_and_the_range(value) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"min_runs={value!r} is not allowed; allowed: a whole number "
                                                    "of 2 or more")):
        compare([level(1, 1)] * 3, [level(1, 2)] * 3, min_runs=value)


def test_one_run_against_several_is_refused() -> None:
    with pytest.raises(ConfigError, match="base has 2 runs and new has 1; allowed: one run on each side"):
        compare([level(1000, 1), level(1000, 2)], level(1000, 3))
    with pytest.raises(ConfigError, match=re.escape("new=[] is not allowed; allowed: one run or more")):
        compare(level(1000, 1), [])


def test_a_list_of_one_run_is_the_single_run_comparison() -> None:
    base, new = level(1000, 1), level(1250, 2)
    assert compare([base], (new,)).to_dict()["rows"] == compare(base, new).to_dict()["rows"]


def test_rows_in_only_some_runs_are_matched_and_listed() -> None:
    base = [run([10, 12, 11]) for _ in range(3)]
    new = [run([10, 12, 11], op_ns=40) for _ in range(3)]
    assert compare(base, new).row("op", "aten::mm").verdict == ONLY_IN_NEW


def _save(runs: list[Summary], folder: Path) -> Path:
    folder.mkdir()
    for i, summary in enumerate(runs):
        summary_json.render(summary, folder / f"run{i}.summary.json")
    return folder


def test_directories_of_runs_compare_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = _save([level(m, seed) for seed, m in enumerate([1000, 1010, 990])], tmp_path / "base")
    new = _save([level(m, 10 + seed) for seed, m in enumerate([1250, 1262, 1240])], tmp_path / "new")
    assert cli_main(["compare", str(base), str(new), "--json", "--fail-on-regression"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert (data["schema_version"], data["base_runs"], data["new_runs"], data["min_runs"]) == (1, 3, 3, 3)
    assert data["base"]["runs"] == 3 and data["base"]["steps"] == 90 and data["base"]["source"] == str(base)
    work = next(row for row in data["rows"] if row["name"] == "work")
    assert (work["per"], work["verdict"], work["base_samples"]) == ("run", "slower", 3)
    assert cli_main(["compare", str(base), str(new)]) == 0
    text = capsys.readouterr().out
    assert "3 runs, session" in text and "each run is one sample (3 base runs, 3 new runs)" in text
    assert cli_main(["compare", str(base), str(new), "--min-runs", "4"]) == 0
    assert "too few samples: a row needs 4 runs on each side" in capsys.readouterr().out
    assert cli_main(["compare", str(base), str(new), "--min-runs", "1"]) == 2
    assert "min_runs=1 is not allowed" in capsys.readouterr().err


def test_a_directory_of_runs_against_one_run_says_what_to_do(tmp_path: Path) -> None:
    base = _save([level(1000, 1), level(1000, 2)], tmp_path / "base")
    single = tmp_path / "one.summary.json"
    summary_json.render(level(1000, 3), single)
    assert cli_main(["compare", str(base), str(single)]) == 2


def test_single_run_json_counts_one_run_per_side() -> None:
    data = compare(level(1000, 1), level(1000, 2)).to_dict()
    assert (data["base_runs"], data["new_runs"], data["base"]["runs"]) == (1, 1, 1)


levels = st.lists(st.floats(min_value=500, max_value=2000), min_size=3, max_size=6)


@settings(max_examples=40, deadline=None)
@given(base_levels=levels, new_levels=levels)
def test_swapping_the_sides_mirrors_the_interval_over_runs(base_levels: list[float], new_levels: list[float]) -> None:
    base = [run([round(m), round(m) + 2, round(m) - 1]) for m in base_levels]
    new = [run([round(m), round(m) + 1, round(m) - 2]) for m in new_levels]
    forward, backward = compare(base, new).row("region", "work"), compare(new, base).row("region", "work")
    assert forward.per == backward.per == RUN
    assert (1 + forward.change) * (1 + backward.change) == pytest.approx(1.0)
    assert (1 + forward.ci_low) * (1 + backward.ci_high) == pytest.approx(1.0)
    assert (1 + forward.ci_high) * (1 + backward.ci_low) == pytest.approx(1.0)


@settings(max_examples=40, deadline=None)
@given(base_levels=levels)
def test_a_run_at_the_side_s_mean_leaves_the_mean_unchanged_and_the_interval_no_wider(base_levels: list[float]) -> None:
    base = [run([round(m)] * 4) for m in base_levels]
    new = [run([1000] * 4) for _ in range(3)]
    before = compare(base, new).row("region", "work")
    mean = sum(round(m) for m in base_levels) / len(base_levels)
    added = run([mean] * 4)  # type: ignore[list-item]
    after = compare([*base, added], new).row("region", "work")
    assert after.base == pytest.approx(before.base) and after.change == pytest.approx(before.change)
    assert after.base_samples == before.base_samples + 1
    assert after.ci_high - after.ci_low <= before.ci_high - before.ci_low + 1e-12
