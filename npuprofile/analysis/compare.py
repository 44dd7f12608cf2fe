"""Compare two runs: every region, op, kernel and the step itself, with a confidence interval and a verdict.

``compare(base, new)`` takes two summaries (or files: a session summary JSON, a
trace, a directory of traces) and matches their rows by kind and name. Each
pair that has enough samples on both sides gets Welch's interval of the
relative change of its mean (:mod:`npuprofile.analysis.welch`); the intervals
hold together at ``confidence`` over all the rows tested (Bonferroni), so the
chance that any row of a comparison of two runs of the same code is flagged
stays below ``1 - confidence``. A row is ``slower`` (``faster``) when its whole
interval lies above (below) zero and the change exceeds ``threshold``.

Each side may be several runs (a list of sources, or a directory of summaries):
with two runs or more on both sides the run is the sample
(:mod:`npuprofile.analysis.compare_runs`), so the intervals see how much runs
of the same code differ from each other.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence, Union

from npuprofile.analysis.compare_rows import BASES, ROW_KINDS, STEP, Measure, measures
from npuprofile.analysis.compare_runs import MIN_RUNS, RUN, run_measures
from npuprofile.analysis.welch import ratio_interval
from npuprofile.errors import ConfigError
from npuprofile.summary.model import BENCH, Rendered, Summary

if TYPE_CHECKING:
    from npuprofile.sessions.session import Session

__all__ = ["ComparedRow", "Comparison", "Side", "compare", "load_side", "parse_fraction", "top_ops"]

SLOWER = "slower"
FASTER = "faster"
NO_CHANGE = "no change"
TOO_FEW = "too few samples"
ONLY_IN_BASE = "only in base"
ONLY_IN_NEW = "only in new"
VERDICTS = (SLOWER, FASTER, NO_CHANGE, TOO_FEW, ONLY_IN_BASE, ONLY_IN_NEW)

#: Samples per side (steps or calls) a row needs before it is tested.
MIN_SAMPLES = 5
DEFAULT_THRESHOLD = 0.05
DEFAULT_CONFIDENCE = 0.95

Source = Union[str, "os.PathLike[str]", Summary, Rendered, "Session"]
#: One side of a comparison: one run, or several (a list or tuple of sources).
Sources = Union[Source, Sequence[Source]]


@dataclasses.dataclass(frozen=True)
class ComparedRow:
    """One row of a comparison.

    ``base`` and ``new`` are mean nanoseconds per ``per`` (``"step"``,
    ``"repeat"``, ``"call"``, or ``"run"``: the mean of per-run means); ``change`` is ``new / base - 1`` and
    ``[ci_low, ci_high]`` its confidence interval (``None`` when not tested).
    ``base_samples``/``new_samples`` count the samples the test used (or had):
    steps, repeats or calls, or runs where ``per`` is ``"run"``;
    ``note`` says why a row was not tested.
    """

    kind: str
    name: str
    verdict: str
    base: float | None
    new: float | None
    change: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    per: str | None = None
    base_total_ns: float | None = None
    new_total_ns: float | None = None
    base_count: int | None = None
    new_count: int | None = None
    base_samples: int = 0
    new_samples: int = 0
    rank: int | None = None
    note: str = ""

    @property
    def tested(self) -> bool:
        """Whether the row got a confidence interval."""
        return self.ci_low is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (nanoseconds; changes as fractions, 0.25 = 25% slower)."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Side:
    """One side compared: where it came from and its summary.

    A side of several runs lists their summaries in ``runs`` (``summary`` is
    the first of them); a side of one run has ``runs`` empty.
    """

    label: str
    summary: Summary
    runs: tuple[Summary, ...] = ()

    @property
    def run_count(self) -> int:
        """How many runs the side holds."""
        return max(1, len(self.runs))


@dataclasses.dataclass(frozen=True, eq=False)
class Comparison:
    """Two runs compared row by row.

    ``str(comparison)`` is a table, :meth:`to_dict` the JSON layout ``npuprofile
    compare --json`` prints; :attr:`regressions` are the rows significantly
    slower by more than the threshold.
    """

    base: Side
    new: Side
    rows: list[ComparedRow]
    threshold: float
    confidence: float
    #: Confidence of each row's own interval: ``1 - (1 - confidence) / tested rows``.
    row_confidence: float
    min_samples: int = MIN_SAMPLES
    min_runs: int = MIN_RUNS

    @property
    def over_runs(self) -> bool:
        """Whether the rows were tested with the run as the sample (several runs on both sides)."""
        return self.base.run_count > 1 and self.new.run_count > 1

    @property
    def regressions(self) -> list[ComparedRow]:
        """Rows significantly slower by more than the threshold."""
        return [row for row in self.rows if row.verdict == SLOWER]

    @property
    def improvements(self) -> list[ComparedRow]:
        """Rows significantly faster by more than the threshold."""
        return [row for row in self.rows if row.verdict == FASTER]

    @property
    def tested(self) -> int:
        """How many rows got a confidence interval."""
        return sum(row.tested for row in self.rows)

    def counts(self) -> dict[str, int]:
        """How many rows got each verdict (every verdict listed, zero included)."""
        return {verdict: sum(row.verdict == verdict for row in self.rows) for verdict in VERDICTS}

    def row(self, kind: str, name: str) -> ComparedRow:
        """The row of ``kind`` (``"region"``, ``"op"``, ``"kernel"``, ``"step"``) named ``name``."""
        for row in self.rows:
            if row.kind == kind and row.name == name:
                return row
        raise KeyError(f"no {kind} row named {name!r}; {kind} rows: {[r.name for r in self.rows if r.kind == kind]}")

    def to_dict(self) -> dict[str, Any]:
        """Everything, as plain JSON types: ``{"rows": [...], ...}``."""
        from npuprofile.summary import comparison

        return comparison.to_dict(self)

    def to_json(self, path: str | os.PathLike[str] | None = None, *, indent: int = 2) -> str:
        """The comparison as JSON; also written atomically to ``path`` when given."""
        from npuprofile.summary import comparison

        return comparison.render_json(self, path, indent=indent)

    def text(self) -> str:
        """The comparison as a readable table."""
        from npuprofile.summary import comparison

        return comparison.render_text(self)

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        counts = ", ".join(f"{v}={n}" for v, n in self.counts().items() if n)
        return f"<Comparison rows={len(self.rows)} {counts}>"


def compare(
    base: Sources,
    new: Sources,
    *,
    threshold: float | str = DEFAULT_THRESHOLD,
    confidence: float | str = DEFAULT_CONFIDENCE,
    min_samples: int = MIN_SAMPLES,
    min_runs: int = MIN_RUNS,
) -> Comparison:
    """Compare ``new`` with ``base``, row by row.

    ``base`` and ``new`` are each a summary (``Session.summary()``, a trace
    summary, ``bench()``'s result, a :class:`~npuprofile.Session`) or a path: a
    summary JSON npuprofile wrote, a trace file, or a directory of traces; or
    several runs: a list or tuple of those, or a directory holding several
    ``*summary.json`` and no traces. ``threshold`` is the smallest relative
    change that counts (``0.05`` or ``"5%"``); ``confidence`` is the chance
    that no row of the comparison is flagged when nothing changed (``0.95`` or
    ``"95%"``). With one run per side a row needs ``min_samples`` samples
    (steps, or calls) on each side to be tested. With two runs or more on both
    sides each run is one sample (its mean per step, else per call) and a row
    needs ``min_runs`` runs on each side; one run on one side and several on
    the other is refused.
    """
    threshold = parse_fraction(threshold, "threshold")
    confidence = parse_fraction(confidence, "confidence")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence={confidence!r} is not allowed; allowed: strictly between 0 and 1 (e.g. 95%)")
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 2:
        raise ConfigError(f"min_samples={min_samples!r} is not allowed; allowed: a whole number of 2 or more")
    if isinstance(min_runs, bool) or not isinstance(min_runs, int) or min_runs < 2:
        raise ConfigError(f"min_runs={min_runs!r} is not allowed; allowed: a whole number of 2 or more")
    base_side, new_side = _load_sides(base, new)
    over_runs = base_side.run_count > 1 and new_side.run_count > 1
    if over_runs:
        per_step, minimum = RUN, min_runs
        pairs = _pairs(run_measures(base_side.runs), run_measures(new_side.runs))
    else:
        per_step = "repeat" if BENCH in (base_side.summary.kind, new_side.summary.kind) else STEP
        minimum = min_samples
        pairs = _pairs(measures(base_side.summary), measures(new_side.summary))
    tests = {key: _basis(b, n, minimum) for key, (b, n) in pairs.items() if b is not None and n is not None}
    tested = sum(1 for basis in tests.values() if basis is not None)
    row_confidence = 1.0 - (1.0 - confidence) / max(tested, 1)
    rows = []
    for key, (b, n) in pairs.items():
        basis = tests.get(key)
        rows.append(_row(b, n, basis, row_confidence, threshold, minimum, per_step, over_runs))
    return Comparison(base_side, new_side, _ordered(rows), threshold, confidence, row_confidence, min_samples,
                      min_runs)


def parse_fraction(value: float | str, name: str) -> float:
    """A fraction between 0 and 1 from ``0.05``, ``"0.05"`` or ``"5%"``."""
    allowed = f"{name}={value!r} is not allowed; allowed: a fraction from 0 to 1 (0.05) or a percentage (5%)"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(allowed)
    text = str(value).strip()
    try:
        fraction = float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        raise ConfigError(allowed) from None
    if not 0.0 <= fraction <= 1.0:  # also refuses NaN
        raise ConfigError(allowed)
    return fraction


def load_side(source: Source) -> Side:
    """The summary of one run, ``source``, and a label for it (see :func:`compare`)."""
    from npuprofile.sessions.session import Session

    if isinstance(source, Session):
        source = source.summary()
    if isinstance(source, Rendered):
        summary = source.model
        run_id = summary.run.run_id
        return Side(f"{summary.kind} summary" + (f" {run_id}" if run_id else ""), summary)
    if not isinstance(source, (str, os.PathLike)):
        raise ConfigError(f"cannot compare {source!r} of type {type(source).__name__}; allowed: a Summary, "
                          "a bench() result, a Session, or the path of a summary JSON, a trace or a directory")
    return Side(os.fspath(source), _read(Path(source)))


def _load_sides(base: Sources, new: Sources) -> tuple[Side, Side]:
    """Both sides, each of one run or several; one run against several is refused before anything is read."""
    runs = {"base": _run_sources(base, "base"), "new": _run_sources(new, "new")}
    if (len(runs["base"]) > 1) != (len(runs["new"]) > 1):
        many = "base" if len(runs["base"]) > 1 else "new"
        one = "new" if many == "base" else "base"
        given = base if many == "base" else new
        if isinstance(given, (str, os.PathLike)):  # a directory of several summaries against one run
            names = ", ".join(Path(p).name for p in runs[many])  # type: ignore[arg-type]
            from npuprofile.errors import TraceError

            raise TraceError(f"{os.fspath(given)}: no traces, and several summaries to choose from ({names}); "
                             f"name one of them, or give {one} several runs too")
        raise ConfigError(f"{many} has {len(runs[many])} runs and {one} has 1; allowed: one run on each side, "
                          "or two runs or more on both (the run is then the sample)")
    return _side_of(runs["base"], base), _side_of(runs["new"], new)


def _run_sources(sources: Sources, side: str) -> list[Source]:
    """The runs of one side: the items of a list or tuple, the summaries of a directory of them, or the source."""
    if isinstance(sources, (list, tuple)):
        if not sources:
            raise ConfigError(f"{side}=[] is not allowed; allowed: one run or more")
        return [run for source in sources for run in _run_sources(source, side)]
    if isinstance(sources, (str, os.PathLike)):
        saved = _summaries_of_directory(Path(sources))
        if len(saved) > 1:
            return list(saved)
    return [sources]  # type: ignore[list-item]


def _summaries_of_directory(path: Path) -> list[Path]:
    """The ``*summary.json`` files of a directory without traces (none for anything else)."""
    from npuprofile.analysis.events import find_traces
    from npuprofile.errors import TraceError

    if not path.is_dir():
        return []
    try:
        find_traces(path)
    except TraceError:
        return sorted(path.glob("*summary.json"))
    return []


def _side_of(runs: list[Source], given: Sources) -> Side:
    if len(runs) == 1:
        return load_side(runs[0])
    sides = [load_side(run) for run in runs]
    label = os.fspath(given) if isinstance(given, (str, os.PathLike)) else ", ".join(side.label for side in sides)
    return Side(label, sides[0].summary, tuple(side.summary for side in sides))


def _read(path: Path) -> Summary:
    from npuprofile.analysis.events import find_traces
    from npuprofile.analysis.summarize import summarize
    from npuprofile.errors import TraceError
    from npuprofile.summary import json

    if path.is_file() and _is_summary_file(path):
        return json.load(path)
    if path.is_dir():
        try:
            find_traces(path)
        except TraceError:
            saved = sorted(path.glob("*summary.json"))
            if len(saved) == 1:
                return json.load(saved[0])
            if saved:
                names = ", ".join(p.name for p in saved)
                raise TraceError(f"{path}: no traces, and several summaries to choose from ({names}); "
                                 "name one of them") from None
            raise TraceError(f"{path}: no trace files and no *summary.json in it") from None
    return summarize(path, top=0)  # every op: rows cut at a top N would show up as missing on one side


def _is_summary_file(path: Path) -> bool:
    """A summary npuprofile wrote: ``*summary.json``, or any ``.json`` that opens with ``schema_version``."""
    if path.name.endswith("summary.json"):
        return True
    if path.suffix != ".json":
        return False
    with path.open("rb") as handle:
        return b'"schema_version"' in handle.read(256)


def top_ops(summary: Summary, top: int) -> Summary:
    """``summary`` with only the ``top`` ops of each kind by self time (a comparison reads every op)."""
    kept: list[Any] = []
    for kind in dict.fromkeys(op.kind for op in summary.ops):
        kept += sorted(summary.ops_of(kind), key=lambda op: op.self_ns, reverse=True)[:top]
    return dataclasses.replace(summary, ops=kept)


def _pairs(base: dict[Any, Measure], new: dict[Any, Measure]) -> dict[Any, tuple[Measure | None, Measure | None]]:
    keys = list(base) + [key for key in new if key not in base]
    return {key: (base.get(key), new.get(key)) for key in keys}


def _basis(base: Measure, new: Measure, min_samples: int) -> str | None:
    """The first basis both sides have with enough samples and a positive mean."""
    for basis in BASES:
        b, n = base.samples.get(basis), new.samples.get(basis)
        if b is not None and n is not None and min(b.n, n.n) >= min_samples and b.mean > 0 and n.mean > 0:
            return basis
    return None


def _row(base: Measure | None, new: Measure | None, basis: str | None, row_confidence: float, threshold: float,
         min_samples: int, per_step: str, over_runs: bool) -> ComparedRow:
    if base is None or new is None:
        only = base if base is not None else new
        assert only is not None  # a pair has at least one side
        in_base = base is not None
        return ComparedRow(only.kind, only.name, ONLY_IN_BASE if in_base else ONLY_IN_NEW,
                           base=only.mean_ns if in_base else None, new=None if in_base else only.mean_ns, per="call",
                           base_total_ns=only.total_ns if in_base else None,
                           new_total_ns=None if in_base else only.total_ns,
                           base_count=only.count if in_base else None, new_count=None if in_base else only.count,
                           rank=only.rank, base_samples=_most_samples(base) if over_runs and base else 0,
                           new_samples=_most_samples(new) if over_runs and new else 0)
    common = dict(kind=base.kind, name=base.name, rank=base.rank, base_count=base.count, new_count=new.count)
    if basis is None:
        zero = _zero_sides(base, new, min_samples)
        verdict = NO_CHANGE if len(zero) == 2 else TOO_FEW
        note = "" if len(zero) == 2 else _too_few_note(base, new, min_samples, zero, over_runs)
        change = 0.0 if len(zero) == 2 else _change(base.mean_ns, new.mean_ns)
        return ComparedRow(verdict=verdict, base=base.mean_ns, new=new.mean_ns, change=change,
                           per=RUN if over_runs else "call",
                           base_total_ns=base.total_ns, new_total_ns=new.total_ns, base_samples=_most_samples(base),
                           new_samples=_most_samples(new), note=note, **common)  # type: ignore[arg-type]
    b, n = base.samples[basis], new.samples[basis]
    interval = ratio_interval(b, n, row_confidence)
    verdict = NO_CHANGE
    if interval.low > 0.0 and interval.change > threshold:
        verdict = SLOWER
    elif interval.high < 0.0 and interval.change < -threshold:
        verdict = FASTER
    per = per_step if basis == STEP or over_runs else basis
    base_total, new_total = (base.total_ns, new.total_ns) if over_runs else (b.total, n.total)
    return ComparedRow(verdict=verdict, base=b.mean, new=n.mean, change=interval.change, ci_low=interval.low,
                       ci_high=interval.high, per=per, base_total_ns=base_total, new_total_ns=new_total,
                       base_samples=b.n, new_samples=n.n, **common)  # type: ignore[arg-type]


def _change(base: float, new: float) -> float | None:
    return new / base - 1.0 if base > 0 else None


def _most_samples(measure: Measure) -> int:
    return max((m.n for m in measure.samples.values()), default=0)


def _describe(measure: Measure) -> str:
    if not measure.samples:
        return "totals only"
    return ", ".join(f"{m.n} per {basis}" for basis, m in measure.samples.items())


def _zero_sides(base: Measure, new: Measure, min_samples: int) -> list[str]:
    """The sides whose samples, on a basis both sides have enough of, average zero (no ratio to test)."""
    for basis in BASES:
        b, n = base.samples.get(basis), new.samples.get(basis)
        if b is not None and n is not None and min(b.n, n.n) >= min_samples:
            return [side for side, m in (("base", b), ("new", n)) if m.mean <= 0]
    return []


def _too_few_note(base: Measure, new: Measure, min_samples: int, zero: list[str], over_runs: bool) -> str:
    if zero:
        return f"the mean is zero on the {zero[0]} side: a relative change cannot be tested"
    if over_runs:
        return (f"needs {min_samples} runs per side, base has {_most_samples(base)}, new has {_most_samples(new)} "
                "(runs that have the row on one basis, per step or per call, in all of them)")
    return (f"needs {min_samples} samples per side, per step or per call; "
            f"base: {_describe(base)}; new: {_describe(new)}")


def _ordered(rows: list[ComparedRow]) -> list[ComparedRow]:
    """By kind (step, regions, ops, kernels), then by the larger total time, longest first."""
    kinds = list(ROW_KINDS)

    def key(row: ComparedRow) -> tuple[int, float, str]:
        size = max(row.base_total_ns or 0.0, row.new_total_ns or 0.0)
        return kinds.index(row.kind) if row.kind in kinds else len(kinds), -size, row.name

    return sorted(rows, key=key)

