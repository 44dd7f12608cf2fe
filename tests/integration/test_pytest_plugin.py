"""The pytest plugin, run by pytest itself (``pytester``): baselines written, kept, and broken by a slowdown."""

from __future__ import annotations

import configparser
import json
from pathlib import Path

import pytest
import torch  # noqa: F401

# Loaded here, once: pytester's in-process runs drop the modules they import, and a module imported afresh
# has classes of its own (torch cannot be imported twice at all).
import npuprofile.analysis.compare  # noqa: F401
import npuprofile.pytest_plugin  # noqa: F401
import npuprofile.sessions.session  # noqa: F401
import npuprofile.summary.comparison  # noqa: F401
import npuprofile.summary.json  # noqa: F401
import tests.fakes  # noqa: F401

pytest_plugins = ["pytester"]

CONFTEST = """
import pytest

import npuprofile as npp
from tests.fakes import register_manual


@pytest.fixture(autouse=True)
def clock():
    adapter = register_manual(npp.backends)
    yield adapter.clock
    npp.backends.reset()
"""

#: A test whose "work" region takes FACTOR times 2 ms per step and whose "noisy" region only varies.
MARKED = """
import random

import pytest

import npuprofile as npp


def workload(session, clock, factor, seed):
    rng = random.Random(seed)
    for _ in session.steps(range(30)):
        with npp.profile_region("work"):
            clock.advance(int(2e6 * factor * rng.lognormvariate(0, 0.05)))
        with npp.profile_region("noisy"):
            clock.advance(int(1e6 * rng.lognormvariate(0, 0.15)))


@pytest.mark.npuprofile(baseline="perf/model.json", threshold=0.05)
def test_model(npuprofile_session, clock):
    workload(npuprofile_session, clock, {factor}, {seed})


@pytest.mark.npuprofile(baseline="perf/own.json", threshold="5%")
def test_own_session(clock):
    with npp.session(trace=False) as session:
        workload(session, clock, {factor}, {seed} + 1)


def test_unmarked(npuprofile_session, clock):
    workload(npuprofile_session, clock, 3.0, 0)
"""


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("NPUPROFILE_BACKEND", "manual")
    # The plugin is loaded by name below; installed entry points would register it a second time.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeconftest(CONFTEST)
    return pytester


def run(project: pytest.Pytester, factor: float, seed: int, *args: str) -> pytest.RunResult:
    project.makepyfile(test_perf=MARKED.format(factor=factor, seed=seed))
    return project.runpytest("-p", "npuprofile.pytest_plugin", "-p", "no:cacheprovider", *args)


def test_baselines_are_written_then_kept_then_a_slowdown_fails(project: pytest.Pytester) -> None:
    first = run(project, 1.0, 1)
    first.assert_outcomes(passed=1, failed=2)
    first.stdout.fnmatch_lines(["*no npuprofile baseline at *model.json; record one with pytest "
                                "--npuprofile-update-baseline*"])

    run(project, 1.0, 1, "--npuprofile-update-baseline").assert_outcomes(passed=3)
    saved = json.loads((project.path / "perf" / "model.json").read_text())
    assert saved["schema_version"] == 2 and {r["name"] for r in saved["regions"]} == {"work", "noisy"}
    assert (project.path / "perf" / "own.json").is_file()

    run(project, 1.0, 2).assert_outcomes(passed=3)  # the same code, other noise

    slow = run(project, 1.25, 3)
    slow.assert_outcomes(passed=1, failed=2)
    slow.stdout.fnmatch_lines(["*npuprofile: slower than the baseline *model.json: *region 'work'*",
                               "*work*step*slower*", "*noisy*step*no change*"])

    run(project, 0.8, 4).assert_outcomes(passed=3)  # faster never fails


def test_a_marked_test_without_a_session_fails_saying_what_to_do(project: pytest.Pytester) -> None:
    project.makepyfile(test_none="""
import pytest

@pytest.mark.npuprofile(baseline="perf/none.json")
def test_nothing():
    pass
""")
    result = project.runpytest("-p", "npuprofile.pytest_plugin")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*marked npuprofile(...) but ran no npuprofile session: use the "
                                 "npuprofile_session fixture*"])


@pytest.mark.parametrize(("marker", "message"), [
    ("npuprofile()", "needs baseline=PATH"),
    ("npuprofile(baseline='b.json', treshold=0.1)", "got ['baseline', 'treshold']"),
    ("npuprofile(baseline='b.json', threshold='5')", "threshold='5' is not allowed"),
])
def test_bad_markers_fail_naming_the_problem(project: pytest.Pytester, marker: str, message: str) -> None:
    project.makepyfile(test_bad=f"""
import pytest

@pytest.mark.{marker}
def test_bad(npuprofile_session):
    pass
""")
    result = project.runpytest("-p", "npuprofile.pytest_plugin")
    result.assert_outcomes(failed=1)
    assert message in result.stdout.str()


def test_two_tests_cannot_write_one_baseline(project: pytest.Pytester) -> None:
    project.makepyfile(test_twice="""
import pytest

@pytest.mark.npuprofile(baseline="perf/shared.json")
def test_one(npuprofile_session):
    pass

@pytest.mark.npuprofile(baseline="perf/shared.json")
def test_two(npuprofile_session):
    pass
""")
    result = project.runpytest("-p", "npuprofile.pytest_plugin", "--npuprofile-update-baseline")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*both write the baseline *shared.json; give each test a baseline of its own*"])


def test_the_plugin_is_inert_unless_used(project: pytest.Pytester) -> None:
    project.makepyfile(test_plain="def test_plain():\n    assert True\n")
    result = project.runpytest("-p", "npuprofile.pytest_plugin", "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.npuprofile(baseline, threshold=0.05, confidence=0.95)*"])
    project.runpytest("-p", "npuprofile.pytest_plugin").assert_outcomes(passed=1)
    assert not (project.path / "perf").exists()


def test_the_package_declares_the_plugin_entry_point() -> None:
    setup = configparser.ConfigParser()
    setup.read(Path(__file__).resolve().parents[2] / "setup.cfg")
    entries = dict(line.split(" = ") for line in setup["options.entry_points"]["pytest11"].strip().splitlines())
    assert entries == {"npuprofile": "npuprofile.pytest_plugin"}
