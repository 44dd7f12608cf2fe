"""The adapter registry: registration, auto selection, errors, entry points."""

from __future__ import annotations

import sys
import types

import pytest

import npuprofile as npp
from npuprofile.backends import registry as _registry
from npuprofile.backends.cpu import CpuAdapter
from npuprofile.errors import BackendError, BackendUnavailableError, ConfigError, UnknownBackendError


class Unavailable(CpuAdapter):
    name = "ghost"

    def probe(self):
        return "no ghost device here"


class Preferred(CpuAdapter):
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
        npp.backends.register("cpu", CpuAdapter)
    npp.backends.register("cpu", Preferred, replace=True)
    assert isinstance(npp.backends.get("cpu"), Preferred)


@pytest.mark.parametrize("name", ["auto", "has space", "", 3])
def test_bad_names(name) -> None:
    with pytest.raises(ConfigError):
        npp.backends.register(name, CpuAdapter)


def test_factory_must_return_adapter() -> None:
    npp.backends.register("broken", lambda: object())
    with pytest.raises(BackendError, match="not an npuprofile Adapter"):
        npp.backends.get("broken")


def test_probe_exception_becomes_reason() -> None:
    class Exploding(CpuAdapter):
        def probe(self):
            raise OSError("libdevice.so: cannot open shared object file")

    npp.backends.register("exploding", Exploding)
    registry = npp.backends.get.__self__
    assert "libdevice.so" in registry._adapter(registry._entries["exploding"]).unavailable_reason()
    assert "exploding" not in npp.backends.available()


def test_entry_points_register_third_party_adapters(monkeypatch) -> None:
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
    with npp.session(backend="thirdparty", trace=False) as s:
        with npp.profile_region("plugin"):
            pass
    assert s.summary().metadata["backend"] == "thirdparty"


def test_core_never_names_a_backend() -> None:
    """Core modules must not branch on backend names (adapters own the differences)."""
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
