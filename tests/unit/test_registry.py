"""The backend registry: registration (objects, classes, factories, dotted paths), auto selection, errors, entry points."""

from __future__ import annotations

import sys
import types

import pytest

import npuprofile as npp
from npuprofile.backends import registry as _registry
from npuprofile.backends.cpu import CpuBackend
from npuprofile.errors import BackendError, BackendUnavailableError, ConfigError, UnknownBackendError


class Unavailable(CpuBackend):
    name = "ghost"

    def probe(self):
        return "no ghost device here"


class Preferred(CpuBackend):
    name = "preferred"


def test_builtin_cpu_and_auto() -> None:
    assert "cpu" in npp.backends.names()
    assert "cpu" in npp.backends.available()
    assert npp.backends.get("cpu").name == "cpu"
    assert npp.backends.get("auto").is_available()


def test_auto_picks_highest_priority_available() -> None:
    npp.backends.register("ghost", Unavailable, priority=100)
    npp.backends.register("preferred", Preferred, priority=50)
    assert npp.backends.get("auto").name == "preferred"
    assert npp.backends.names()[:2] == ["ghost", "preferred"]
    assert "ghost" not in npp.backends.available()


def test_unavailable_backend_says_why() -> None:
    npp.backends.register("ghost", Unavailable)
    with pytest.raises(BackendUnavailableError, match="no ghost device here"):
        npp.backends.get("ghost")
    info = {i.name: i for i in npp.backends.describe()}["ghost"]
    assert info.available is False and info.reason == "no ghost device here"


def test_unknown_and_taken_names() -> None:
    with pytest.raises(UnknownBackendError, match="known: auto, .*cpu"):
        npp.backends.get("nope")
    with pytest.raises(BackendError, match="already registered"):
        npp.backends.register("cpu", CpuBackend)
    npp.backends.register("cpu", Preferred, replace=True)
    assert isinstance(npp.backends.get("cpu"), Preferred)


@pytest.mark.parametrize("name", ["auto", "has space", "", 3])
def test_bad_names(name) -> None:
    with pytest.raises(ConfigError):
        npp.backends.register(name, CpuBackend)


def test_factory_must_return_a_backend() -> None:
    npp.backends.register("broken", lambda: object())
    with pytest.raises(BackendError, match="not an npuprofile Backend"):
        npp.backends.get("broken")


def test_probe_exception_becomes_reason() -> None:
    class Exploding(CpuBackend):
        def probe(self):
            raise OSError("libdevice.so: cannot open shared object file")

    npp.backends.register("exploding", Exploding)
    assert "libdevice.so" in npp.backends.load("exploding").unavailable_reason()
    assert "exploding" not in npp.backends.available()


def test_entry_points_register_third_party_backends(monkeypatch) -> None:
    module = types.ModuleType("thirdparty_backend")

    def factory():
        return Preferred()

    factory.priority = 7
    module.factory = factory
    monkeypatch.setitem(sys.modules, "thirdparty_backend", module)

    from importlib.metadata import EntryPoint

    points = [
        EntryPoint("thirdparty", "thirdparty_backend:factory", _registry.ENTRY_POINT_GROUP),
        EntryPoint("brokenplugin", "missing_module_xyz:factory", _registry.ENTRY_POINT_GROUP),
    ]
    monkeypatch.setattr("importlib.metadata.entry_points", lambda group: points if group == _registry.ENTRY_POINT_GROUP else [])
    npp.backends.reset()
    assert "thirdparty" in npp.backends.names()
    assert "brokenplugin" not in npp.backends.names()
    assert {i.name: i.priority for i in npp.backends.describe()}["thirdparty"] == 7
    assert npp.backends.entries["thirdparty"].origin == "entry point"
    with npp.session(backend="thirdparty", trace=False) as s:
        with npp.profile_region("plugin"):
            pass
    assert s.summary().metadata["backend"] == "thirdparty"


def test_core_never_names_a_backend() -> None:
    """Core modules must not branch on backend names (backends own the differences)."""
    import pathlib
    import re

    package = pathlib.Path(npp.__file__).parent
    layers = ("core", "sessions")
    paths = [path for layer in layers for path in sorted((package / layer).rglob("*.py"))]
    assert len(paths) > 10, "the layered packages were not found"
    offenders = []
    for path in paths:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"""["'](npu|cuda|cpu)["']""", line):
                offenders.append(f"{path.relative_to(package)}:{number}: {line.strip()}")
    assert offenders == []


# -- entries as data, third parties by dotted path ---------------------------------------------------

PLUGIN = '''
"""A third-party backend: one module, one registration."""
import dataclasses

from npuprofile.backends.cpu import CpuBackend
from npuprofile.backends.options import normalize_options


@dataclasses.dataclass(frozen=True)
class PluginOptions:
    label: str = "none"
    depth: int = 1

    def __post_init__(self):
        normalize_options(self, "plugin")


class PluginBackend(CpuBackend):
    description = "a CPU backend from a plugin module"
    options_class = PluginOptions
    opened = []

    def open_trace(self, config, options, sink):
        PluginBackend.opened.append(options)
        return super().open_trace(config, options, sink)
'''


def test_third_party_backend_registered_by_dotted_path(tmp_path, monkeypatch) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "plugin_backend.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "pkg.plugin_backend", raising=False)
    npp.backends.register("plugin", "pkg.plugin_backend.PluginBackend", priority=5, hint="pip install pkg")
    assert "pkg.plugin_backend" not in sys.modules, "a dotted path is imported on first use, not at registration"
    entry = npp.backends.entries["plugin"]
    assert (entry.target, entry.priority, entry.hint, entry.origin) == (
        "pkg.plugin_backend.PluginBackend", 5, "pip install pkg", "registered")
    assert npp.backends.names().index("plugin") < npp.backends.names().index("cpu")
    monkeypatch.setenv("NPUPROFILE_PLUGIN_DEPTH", "3")
    with npp.session(backend="plugin", output_dir=tmp_path / "out", plugin={"label": "x"}) as s:
        with npp.profile_region("plugin-region"):
            pass
    plugin = sys.modules["pkg.plugin_backend"]
    assert plugin.PluginBackend.opened == [plugin.PluginOptions(label="x", depth=3)]
    assert s.backend.name == "plugin" and s.backend.install_hint == "pip install pkg"
    assert s.summary().metadata["backend_options"] == {"label": "x", "depth": 3}
    assert s.summary().region("plugin-region").count == 1
    assert s.trace_paths and all(p.exists() for p in s.trace_paths)
    monkeypatch.setenv("NPUPROFILE_PLUGIN_DEPTH", "deep")
    with pytest.raises(ConfigError, match="NPUPROFILE_PLUGIN_DEPTH='deep' is not an integer"):
        npp.session(backend="plugin")


def test_a_dotted_path_that_cannot_be_imported_is_unavailable_with_its_hint() -> None:
    npp.backends.register("missing", "no_such_module_xyz.Backend", priority=50, hint="pip install xyz-backend")
    assert "missing" in npp.backends.names()
    info = {i.name: i for i in npp.backends.describe()}["missing"]
    assert info.available is False
    assert info.reason.startswith("cannot import no_such_module_xyz.Backend: ModuleNotFoundError")
    assert info.reason.endswith("(pip install xyz-backend)")
    with pytest.raises(BackendUnavailableError, match=r"pip install xyz-backend"):
        npp.backends.get("missing")
    assert npp.backends.get("auto").name == "cpu", "auto skips it"
    # its options cannot be checked here; like any other backend's, they are ignored when it is not chosen
    assert npp.session(backend="cpu", missing={"anything": 1}, trace=False).backend.name == "cpu"


@pytest.mark.parametrize("target", ["", "nodots", "pkg.", "pkg.mod:", 3, None])
def test_bad_targets_are_refused(target) -> None:
    with pytest.raises(ConfigError, match="not a dotted path|not callable"):
        npp.backends.register("bad", target)


def test_builtins_are_data_and_the_view_is_read_only() -> None:
    assert dict(_registry.BUILTINS["npu"]) == {
        "class": "npuprofile.backends.npu.backend.NpuBackend", "priority": 20, "hint": "pip install npuprofile[npu]",
    }
    assert list(npp.backends.entries) == ["npu", "cuda", "cpu"]
    assert all(npp.backends.entries[name].origin == "builtin" for name in npp.backends.entries)
    with pytest.raises(TypeError):
        npp.backends.entries["cpu"] = None
    with pytest.raises(TypeError):
        _registry.BUILTINS["cpu"]["priority"] = 99
    npp.backends.register("extra", Preferred, priority=3)
    assert "extra" in npp.backends.entries, "the view is live"
    npp.backends.unregister("extra")
    assert "extra" not in npp.backends.entries


def test_registering_a_backend_object_or_class() -> None:
    shared = Preferred()
    npp.backends.register("obj", shared)
    npp.backends.register("cls", Preferred)
    assert npp.backends.get("obj") is shared
    assert isinstance(npp.backends.get("cls"), Preferred) and npp.backends.get("cls") is not shared
    assert npp.backends.get("cls") is npp.backends.get("cls"), "one object per process"
    assert npp.backends.entries["cls"].target == f"{__name__}.Preferred"


def test_deprecated_names_warn_and_still_work() -> None:
    import npuprofile.backends.base as base
    import npuprofile.backends.cpu as cpu
    import npuprofile.backends.cuda as cuda
    import npuprofile.backends.npu as npu

    with pytest.warns(DeprecationWarning, match="npuprofile.Adapter is deprecated"):
        assert npp.Adapter is npp.Backend
    with pytest.warns(DeprecationWarning, match="Adapter is deprecated"):
        assert base.Adapter is base.Backend
    with pytest.warns(DeprecationWarning):
        assert cpu.CpuAdapter is CpuBackend
    with pytest.warns(DeprecationWarning):
        assert cuda.CudaAdapter is cuda.CudaBackend
    with pytest.warns(DeprecationWarning):
        assert npu.NpuAdapter is npu.NpuBackend
    with pytest.warns(DeprecationWarning, match="use npuprofile.backends.instances"):
        assert list(npp.backends.adapters()) == list(npp.backends.instances())
    with npp.session(backend="cpu", trace=False) as s:
        pass
    with pytest.warns(DeprecationWarning, match="Session.adapter is deprecated"):
        assert s.adapter is s.backend
    assert "Adapter" not in npp.__all__ and "Backend" in npp.__all__ and "Trace" in npp.__all__


def test_old_import_paths_keep_working_with_a_warning(monkeypatch) -> None:
    import importlib

    for name in ("npuprofile.adapters", "npuprofile.adapters.cuda", "npuprofile.adapters.npu"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.warns(DeprecationWarning, match="npuprofile.adapters is deprecated"):
        importlib.import_module("npuprofile.adapters")
    with pytest.warns(DeprecationWarning, match="npuprofile.adapters.cuda is deprecated"):
        old_cuda = importlib.import_module("npuprofile.adapters.cuda")
    from npuprofile.backends.cuda import CudaOptions

    assert old_cuda.CudaOptions is CudaOptions
    with pytest.warns(DeprecationWarning, match="npuprofile.adapters.npu is deprecated"):
        old_npu = importlib.import_module("npuprofile.adapters.npu")
    from npuprofile.backends.npu import TORCH_NPU_API, NpuBackend, NpuOptions

    assert old_npu.NpuOptions is NpuOptions and old_npu.TORCH_NPU_API is TORCH_NPU_API
    with pytest.warns(DeprecationWarning, match="NpuAdapter is deprecated"):
        assert old_npu.NpuAdapter is NpuBackend
