"""Contract test: what the NPU backend and the fake torch_npu use exists in the real torch_npu.

The published wheels are downloaded (``pip download --no-deps``) into the
git-ignored ``.cache/wheels/`` and their Python sources are read with ``ast``;
nothing from them is imported. The names checked come from the backend's own
declaration, :data:`npuprofile.backends.npu.api.TORCH_NPU_API`, so the test
follows the code. Without network the test fails; set ``NPUPROFILE_OFFLINE=1``
to skip it instead.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from npuprofile.backends.npu.api import EXPERIMENTAL_OPTIONAL, TORCH_NPU_API, ApiUse
from npuprofile.backends.npu.backend import NpuOptions, experimental_kwargs
from npuprofile.errors import ConfigError
from tests.npu_fixtures import fake_torch_npu  # noqa: F401
from tests.wheel_api import NATIVE, Found, Param, WheelApi

pytestmark = pytest.mark.network

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "wheels"
CURRENT = "2.14.0"
OLDER = "2.5.1"
# Python sources are the same for every platform tag: pin one so the download does not depend on this machine.
_PIN = ["--only-binary=:all:", "--implementation", "cp", "--python-version", "3.11",
        "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
        "--platform", "manylinux2014_x86_64"]


def _wheel(version: str) -> Path:
    cached = sorted(CACHE.glob(f"torch_npu-{version}-*.whl"))
    if cached:
        return cached[0]
    CACHE.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               f"torch-npu=={version}", "-d", str(CACHE), *_PIN]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        failure = done.stderr.strip().splitlines()[-1:] if done.returncode else []
    except (OSError, subprocess.TimeoutExpired) as exc:
        failure = [f"{type(exc).__name__}: {exc}"]
    cached = sorted(CACHE.glob(f"torch_npu-{version}-*.whl"))
    if cached and not failure:
        return cached[0]
    message = (f"could not download torch-npu=={version} with `{' '.join(command[2:7])} ...`: "
               f"{' '.join(failure) or 'no wheel saved'}. Set NPUPROFILE_OFFLINE=1 to skip this contract test.")
    if os.environ.get("NPUPROFILE_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        pytest.skip(message)
    pytest.fail(message)


@pytest.fixture(scope="module")
def current() -> WheelApi:
    return WheelApi(_wheel(CURRENT))


@pytest.fixture(scope="module")
def older() -> WheelApi:
    return WheelApi(_wheel(OLDER))


def _locate(api: WheelApi, use: ApiUse) -> tuple[str, Found] | None:
    for path in (use.path, *use.also):
        found = api.resolve(path)
        if found is not None:
            return path, found
    return None


def _problems(api: WheelApi, use: ApiUse, *, with_optional: bool) -> list[str]:
    """What is wrong with one declared use in one wheel (empty when it holds)."""
    located = _locate(api, use)
    if located is None:
        return [f"{use.path}: not found"]
    path, found = located
    problems = []
    if use.value is not None:
        try:
            actual = api.value(found)
        except LookupError as exc:
            return [f"{path}: {exc}"]
        if actual != use.value:
            problems.append(f"{path} = {actual!r}, we rely on {use.value!r}")
    if use.suffix is not None:
        literals = {n.value for n in ast.walk(api.tree(found.module))
                    if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        if not any(text.endswith(use.suffix) for text in literals):
            problems.append(f"{path}: no string literal ending with {use.suffix!r}")
    wanted = use.params + (use.optional if with_optional else ())
    if wanted or use.keyword_only:
        params = api.params(found) if found.kind != NATIVE else None
        if params is None:
            return problems + [f"{path}: signature not readable ({found.kind})"]
        by_name = {p.name: p for p in params}
        takes_any = any(p.kind == "var_keyword" for p in params)
        for name in wanted:
            param = by_name.get(name)
            if param is None and not takes_any:
                problems.append(f"{path}: no parameter {name!r} (has {', '.join(by_name)})")
            elif param is not None and param.kind in ("positional_only", "var_positional"):
                problems.append(f"{path}: {name!r} cannot be passed by keyword")
        if use.keyword_only and any(p.kind != "keyword_only" for p in params if p.kind != "var_keyword"):
            problems.append(f"{path}: not keyword-only as declared")
    return problems


def test_declared_table_covers_what_the_backend_calls() -> None:
    """The table is the single source: every torch_npu attribute the NPU backend's modules touch is declared."""
    prefixes = {"profiler": "torch_npu.profiler", "npu": "torch_npu.npu", "mstx": "torch_npu.npu.mstx"}
    package = Path(importlib.import_module("npuprofile.backends.npu").__file__).parent
    sources = sorted(package.glob("*.py"))
    assert {path.name for path in sources} >= {"backend.py", "api.py", "offline.py"}
    used = set()
    nodes = [node for path in sources for node in ast.walk(ast.parse(path.read_text()))]
    for node in nodes:
        if isinstance(node, ast.Attribute):
            owner = node.value
            name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else None
            if name in prefixes:
                used.add(f"{prefixes[name]}.{node.attr}")
    declared = {use.path for use in TORCH_NPU_API}
    missing = sorted(path for path in used if not any(d == path or d.startswith(path + ".") for d in declared))
    assert {"torch_npu.profiler.profile", "torch_npu.npu.Event", "torch_npu.npu.mstx.range_start"} <= used
    assert missing == []


def test_current_release_has_everything_we_use(current: WheelApi) -> None:
    problems = [p for use in TORCH_NPU_API for p in _problems(current, use, with_optional=True)]
    assert problems == []


def test_older_release_lacks_only_what_we_check_at_run_time(older: WheelApi) -> None:
    problems = [p for use in TORCH_NPU_API for p in _problems(older, use, with_optional=False)]
    assert problems == []
    config = older.resolve("torch_npu.profiler._ExperimentalConfig")
    assert config is not None
    accepted = frozenset(p.name for p in older.params(config) or [])
    missing_optional = [name for name in EXPERIMENTAL_OPTIONAL if name not in accepted]
    assert missing_optional == ["mstx"], "2.5.1 predates mstx; if this changes, pick an older release"
    # the defaults work there unchanged ...
    assert set(experimental_kwargs(NpuOptions(), accepted)) <= accepted
    # ... and asking for mstx is named (strict) or dropped with one warning (lenient), never a TypeError
    with pytest.raises(ConfigError, match=r"\['mstx'\] not supported by torch_npu 2.5.1 \(use msprof_tx=True there\)"):
        experimental_kwargs(NpuOptions(mstx=True), accepted, version=OLDER)
    dropped: list[str] = []
    kwargs = experimental_kwargs(NpuOptions(mstx=True, strict_options=False), accepted, version=OLDER,
                                 on_drop=dropped.append)
    assert "mstx" not in kwargs and set(kwargs) <= accepted and len(dropped) == 1


def _fake_object(path: str) -> Any:
    parts = path.split(".")
    target: Any = importlib.import_module(parts[0])
    for part in parts[1:]:
        if not hasattr(target, part):
            target = importlib.import_module(f"{target.__name__}.{part}")
        else:
            target = getattr(target, part)
    return target


def _fake_params(obj: Any) -> list[Param]:
    kinds = {
        inspect.Parameter.POSITIONAL_ONLY: "positional_only",
        inspect.Parameter.POSITIONAL_OR_KEYWORD: "positional_or_keyword",
        inspect.Parameter.KEYWORD_ONLY: "keyword_only",
        inspect.Parameter.VAR_POSITIONAL: "var_positional",
        inspect.Parameter.VAR_KEYWORD: "var_keyword",
    }
    params = [Param(p.name, kinds[p.kind]) for p in inspect.signature(obj).parameters.values()]
    return params[1:] if params and params[0].name in ("self", "cls") else params


def test_fake_mirrors_the_current_release(current: WheelApi, fake_torch_npu: Any) -> None:
    """Every name the backend uses exists in the fake with the real signature and value."""
    problems = []
    for use in TORCH_NPU_API:
        if use.suffix is not None or ".analysis." in use.path or use.path == "torch_npu.__version__":
            continue  # file layout and analysis internals: the fake writes the layout, checked elsewhere
        located = _locate(current, use)
        assert located is not None, use.path
        _, found = located
        try:
            obj = _fake_object(use.path)
        except (AttributeError, ImportError) as exc:
            problems.append(f"{use.path}: missing in the fake ({exc})")
            continue
        if use.value is not None and obj != current.value(found):
            problems.append(f"{use.path}: fake has {obj!r}, real has {current.value(found)!r}")
        if found.kind in ("class", "function"):
            real = [(p.name, p.kind) for p in current.params(found) or []]
            fake = [(p.name, p.kind) for p in _fake_params(obj)]
            if real != fake:
                problems.append(f"{use.path}: fake signature {fake} != real {real}")
    assert problems == []


def test_fake_layout_constants_match_the_real_ones(current: WheelApi, fake_torch_npu: Any) -> None:
    from torch_npu.profiler._constant import Constant as FakeConstant

    for name in ("OUTPUT_DIR", "TRACE_VIEW", "MAX_WORKER_NAME_LENGTH", "LEVEL1", "AicMetricsNone", "Text", "Db"):
        found = current.resolve(f"torch_npu.profiler.analysis.prof_common_func._constant.Constant.{name}")
        assert found is not None, name
        assert getattr(FakeConstant, name) == current.value(found), name


def test_lenient_drop_logs_one_warning(caplog: Any) -> None:
    caplog.set_level(logging.WARNING, logger="npuprofile")
    experimental_kwargs(NpuOptions(mstx=True, strict_options=False), {"msprof_tx", "profiler_level"})
    assert [r.levelname for r in caplog.records] == ["WARNING"]
