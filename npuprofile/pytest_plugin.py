"""A pytest plugin that fails a test when its profiled regions got significantly slower than a baseline.

Installed with npuprofile (entry point ``pytest11``) and inert unless a test
is marked::

    @pytest.mark.npuprofile(baseline="perf/baseline.json", threshold=0.05)
    def test_forward(npuprofile_session):
        model(batch)  # regions recorded by the timer-only session the fixture runs

The summary a marked test is judged by is, in this order:

1. that of the ``npuprofile_session`` fixture, a timer-only session started
   before the test and stopped after it; else
2. that of the last npuprofile session the test itself started (``with
   npp.session(trace=False): ...``, or ``npp.bench(...)``), stopped if still
   running.

It is compared with the baseline (``npp.compare``); any row ``slower`` fails
the test with the comparison table. ``pytest --npuprofile-update-baseline``
writes each marked test's summary as its baseline instead. A relative
baseline path is taken from pytest's root directory; a missing baseline fails
the test and says how to record one.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pytest

if TYPE_CHECKING:
    from npuprofile.sessions.session import Session
    from npuprofile.summary.model import Summary

MARKER = "npuprofile"
UPDATE_OPTION = "--npuprofile-update-baseline"
_WRITTEN = pytest.StashKey["dict[Path, str]"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("npuprofile", "npuprofile performance baselines")
    group.addoption(UPDATE_OPTION, action="store_true", default=False,
                    help="write the summary of each test marked npuprofile(baseline=...) as its baseline "
                         "instead of comparing with it")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(baseline, threshold=0.05, confidence=0.95): fail the test when a region of its npuprofile "
        "session is significantly slower than in the baseline summary (see npuprofile.pytest_plugin)",
    )
    config.stash[_WRITTEN] = {}


@pytest.fixture
def npuprofile_session() -> Iterator[Session]:
    """A timer-only npuprofile session running for the test (``trace=False``); a marked test is judged by it."""
    import npuprofile

    session = npuprofile.session(trace=False).start()
    try:
        yield session
    finally:
        session.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return (yield)
    gate = _Gate.of(marker, item)
    from npuprofile.sessions.session import Session

    started: list[Session] = []
    original = Session.start

    def start(session: Session) -> Session:
        started.append(session)
        return original(session)

    patch = pytest.MonkeyPatch()
    patch.setattr(Session, "start", start)
    try:
        result = yield
    finally:
        patch.undo()
    gate.check(_summary_of(item, started))
    return result


def _summary_of(item: pytest.Item, started: list[Session]) -> Summary:
    fixture = item.funcargs.get("npuprofile_session") if hasattr(item, "funcargs") else None
    session = fixture if fixture is not None else (started[-1] if started else None)
    if session is None:
        pytest.fail(f"{item.nodeid} is marked {MARKER}(...) but ran no npuprofile session: use the "
                    "npuprofile_session fixture, or start a session (npp.session(trace=False)) in the test",
                    pytrace=False)
    if session.state == "running":
        session.stop()
    return session.summary()


class _Gate:
    """The marker's settings for one test: baseline path, threshold, confidence; checks or writes the baseline."""

    def __init__(self, item: pytest.Item, baseline: Path, threshold: Any, confidence: Any) -> None:
        from npuprofile.analysis.compare import parse_fraction

        self.item = item
        self.baseline = baseline
        self.threshold = parse_fraction(threshold, "threshold")
        self.confidence = parse_fraction(confidence, "confidence")
        self.update = bool(item.config.getoption(UPDATE_OPTION))

    @classmethod
    def of(cls, marker: pytest.Mark, item: pytest.Item) -> _Gate:
        from npuprofile.analysis.compare import DEFAULT_CONFIDENCE, DEFAULT_THRESHOLD
        from npuprofile.errors import ConfigError

        options = dict(marker.kwargs)
        if marker.args:
            options.setdefault("baseline", marker.args[0])
        unknown = set(options) - {"baseline", "threshold", "confidence"}
        if unknown or "baseline" not in options:
            pytest.fail(f"{item.nodeid}: the {MARKER} marker needs baseline=PATH and takes threshold= and "
                        f"confidence=; got {sorted(options)}", pytrace=False)
        baseline = Path(options["baseline"])
        if not baseline.is_absolute():
            baseline = item.config.rootpath / baseline
        try:
            return cls(item, baseline, options.get("threshold", DEFAULT_THRESHOLD),
                       options.get("confidence", DEFAULT_CONFIDENCE))
        except ConfigError as exc:
            pytest.fail(f"{item.nodeid}: {MARKER} marker: {exc}", pytrace=False)

    def check(self, summary: Summary) -> None:
        """Write the baseline (update mode), or fail the test when a row is significantly slower than it."""
        from npuprofile.analysis.compare import compare
        from npuprofile.summary import json

        if self.update:
            written = self.item.config.stash[_WRITTEN]
            if self.baseline in written:
                pytest.fail(f"{self.item.nodeid} and {written[self.baseline]} both write the baseline "
                            f"{self.baseline}; give each test a baseline of its own", pytrace=False)
            written[self.baseline] = self.item.nodeid
            self.baseline.parent.mkdir(parents=True, exist_ok=True)
            json.render(summary, self.baseline)
            return
        if not self.baseline.is_file():
            pytest.fail(f"no npuprofile baseline at {self.baseline}; record one with pytest {UPDATE_OPTION}",
                        pytrace=False)
        result = compare(json.load(self.baseline), summary, threshold=self.threshold, confidence=self.confidence)
        if result.regressions:
            names = ", ".join(f"{row.kind} {row.name!r}" for row in result.regressions)
            pytest.fail(f"npuprofile: slower than the baseline {self.baseline}: {names}\n\n{result}", pytrace=False)
