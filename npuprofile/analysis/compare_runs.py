"""Rows of several runs of one side, with the run as the sample.

Within one run, a row's samples are its steps (or calls); they cannot see what
changes from one process to the next (clock speed, cache, other jobs). With
several runs per side, each run gives one sample per row: the mean of the
quantity a single run would be tested on (time per step, else per call), the
same basis on every run. Welch's interval over those per-run means then holds
the between-run variation too.

A row missing from a run is missing there (that run gives no sample of it),
except a region on the per-step basis in a run whose steps carry regions: it
ran in none of that run's steps, so it counts 0 per step, as a region absent
from one step counts 0 there.
"""

from __future__ import annotations

from typing import Sequence

from npuprofile.analysis.compare_rows import BASES, CALL, REGION, STEP, Measure, measures
from npuprofile.analysis.welch import Moments
from npuprofile.summary.model import Summary

#: The basis reported for rows tested over runs.
RUN = "run"
#: Runs per side (each side needing two or more) a row needs before it is tested over runs.
MIN_RUNS = 3

Key = tuple[str, str, "int | None"]


def run_measures(runs: Sequence[Summary]) -> dict[Key, Measure]:
    """Every row of any of ``runs``, its samples by basis being one mean per run (see the module's text).

    A basis is kept for a row only when every run that has the row has it on
    that basis; calls, totals and counts are added over the runs, ``mean_ns``
    is the mean of the runs' own means.
    """
    per_run = [measures(run) for run in runs]
    keys = list(dict.fromkeys(key for rows in per_run for key in rows))
    result: dict[Key, Measure] = {}
    for key in keys:
        present = [rows[key] for rows in per_run if key in rows]
        first = present[0]
        samples: dict[str, Moments] = {}
        for basis in BASES:
            values = [_run_value(rows.get(key), run, key, basis) for rows, run in zip(per_run, runs)]
            if all(value is not None for value, rows in zip(values, per_run) if key in rows):
                samples[basis] = Moments.of(value for value in values if value is not None)
        means = [m.mean_ns for m in present]
        result[key] = Measure(first.kind, first.name, first.rank, sum(m.count for m in present),
                              sum(m.total_ns for m in present), sum(means) / len(means), samples)
    return result


def _run_value(measure: Measure | None, run: Summary, key: Key, basis: str) -> float | None:
    """One run's mean of a row on ``basis``; ``None`` where the run cannot give one."""
    if measure is None:
        carries_regions = any(step.regions for step in run.steps)
        return 0.0 if key[0] == REGION and basis == STEP and carries_regions else None
    if basis == STEP:
        moments = measure.samples.get(STEP)
        return moments.mean if moments is not None and moments.n > 0 else None
    assert basis == CALL
    return measure.mean_ns if measure.count > 0 else None
