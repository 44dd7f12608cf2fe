"""@profiled on every kind of callable: behaviour, metadata and region statistics."""

from __future__ import annotations

import asyncio
import functools
import inspect
import pickle
import subprocess
import sys
from typing import Any

import pytest
import torch

import npuprofile as npp
from npuprofile.errors import RegionError


@npp.profiled
def module_level(x: int, *, scale: int = 2) -> int:
    """Doubles."""
    return x * scale


@npp.profiled("named-region", sync=True)
def named(x: int) -> int:
    return x + 1


@npp.profiled(name="kw-region")
def keyword_named(x: int) -> int:
    return x - 1


class Model(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)

    @npp.profiled
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)

    @npp.profiled
    @classmethod
    def build(cls) -> "Model":
        return cls()

    @classmethod
    @npp.profiled
    def build_inner(cls) -> "Model":
        return cls()

    @npp.profiled
    @staticmethod
    def helper(x: int) -> int:
        return x * 3

    @staticmethod
    @npp.profiled("static-inner")
    def helper_inner(x: int) -> int:
        return x * 4


def counts(summary: npp.Summary) -> dict[str, int]:
    return {r.name: r.count for r in summary.regions}


def test_metadata_is_kept() -> None:
    assert module_level.__name__ == "module_level"
    assert module_level.__qualname__ == "module_level"
    assert module_level.__doc__ == "Doubles."
    assert module_level.__wrapped__(3) == 6
    assert inspect.signature(module_level) == inspect.signature(module_level.__wrapped__)
    assert list(inspect.signature(module_level).parameters) == ["x", "scale"]
    assert inspect.isfunction(module_level)
    assert callable(module_level)


def test_pickles_by_reference_like_a_function() -> None:
    restored = pickle.loads(pickle.dumps(module_level))
    assert restored is module_level
    assert restored(5) == 10


def test_idle_calls_return_results_and_record_nothing() -> None:
    assert module_level(4, scale=3) == 12
    with npp.session(trace=False) as s:
        pass
    assert s.summary().regions == []


def test_regions_named_and_counted_in_session() -> None:
    with npp.session(trace=False) as s:
        for _ in range(3):
            module_level(1)
        named(1)
        keyword_named(1)
    assert counts(s.summary()) == {"module_level": 3, "named-region": 1, "kw-region": 1}


def test_methods_classmethods_staticmethods() -> None:
    with npp.session(trace=False) as s:
        model = Model.build()
        Model.build_inner()
        model(torch.ones(2, 4))
        assert Model.helper(2) == 6
        assert model.helper(2) == 6
        assert Model.helper_inner(2) == 8
    got = counts(s.summary())
    assert got == {
        "Model.build": 1,
        "Model.build_inner": 1,
        "Model.forward": 1,
        "Model.helper": 2,
        "static-inner": 1,
    }
    assert isinstance(Model.__dict__["build"], classmethod)
    assert isinstance(Model.__dict__["helper"], staticmethod)
    assert list(inspect.signature(Model.forward).parameters) == ["self", "x"]
    assert list(inspect.signature(Model().forward).parameters) == ["x"]


def test_async_function_times_the_await() -> None:
    @npp.profiled
    async def slow(delay: float) -> str:
        await asyncio.sleep(delay)
        return "done"

    assert inspect.iscoroutinefunction(slow)
    with npp.session(trace=False) as s:
        assert asyncio.run(slow(0.02)) == "done"
    stats = s.summary().region(slow.__qualname__)
    assert stats.count == 1
    assert stats.total_ns >= 15_000_000


def test_generator_each_resume_is_a_region_and_send_throw_work() -> None:
    @npp.profiled("gen")
    def echo():
        received = []
        try:
            while True:
                value = yield len(received)
                received.append(value)
        except ValueError:
            yield "caught"
        return received

    assert inspect.isgeneratorfunction(echo)
    with npp.session(trace=False) as s:
        gen = echo()
        assert next(gen) == 0
        assert gen.send("a") == 1
        assert gen.throw(ValueError("x")) == "caught"
        with pytest.raises(StopIteration):
            next(gen)
    assert s.summary().region("gen").count == 4


def test_async_generator() -> None:
    @npp.profiled("agen")
    async def numbers(n: int):
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    async def consume() -> list[int]:
        return [i async for i in numbers(3)]

    with npp.session(trace=False) as s:
        assert asyncio.run(consume()) == [0, 1, 2]
    assert s.summary().region("agen").count == 4  # three items + the final resume


def test_exception_propagates_unchanged_and_region_is_recorded() -> None:
    @npp.profiled
    def boom() -> None:
        raise KeyError("kaboom")

    with npp.session(trace=False) as s:
        with pytest.raises(KeyError, match="kaboom") as info:
            boom()
    assert info.traceback[-1].name == "boom"
    assert s.summary().region(boom.__qualname__).count == 1


@pytest.mark.parametrize("bad", [42, None, "not callable".upper])
def test_decorating_bad_targets(bad: object) -> None:
    if callable(bad):
        assert npp.profiled(bad)() == "NOT CALLABLE"
        return
    with pytest.raises(RegionError, match="callable"):
        npp.profiled(bad) if bad is not None else npp.profiled()(bad)


@pytest.mark.parametrize("kwargs", [{"name": ""}, {"name": 3}, {"sync": "yes"}])
def test_bad_decorator_arguments(kwargs: dict) -> None:
    with pytest.raises(RegionError):
        npp.profiled(**kwargs)


def test_name_given_twice() -> None:
    with pytest.raises(RegionError, match="twice"):
        npp.profiled("a", name="b")


def test_functools_partial_and_builtin_callables() -> None:
    wrapped = npp.profiled("partial")(functools.partial(pow, 2))
    with npp.session(trace=False) as s:
        assert wrapped(5) == 32
    assert s.summary().region("partial").count == 1


def test_disabled_at_import_returns_function_itself(tmp_path) -> None:
    code = (
        "import npuprofile as npp\n"
        "def f(x): return x\n"
        "g = npp.profiled(f)\n"
        "h = npp.profiled('n')(f)\n"
        "print(g is f and h is f)\n"
        "with npp.session(output_dir=r'%s') as s:\n"
        "    with npp.profile_region('x'): pass\n"
        "print(s.summary().regions == [] and s.trace_paths == [])\n" % tmp_path
    )
    env = {"NPUPROFILE_ENABLED": "0", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]
    assert list(tmp_path.iterdir()) == []


def every_kind(a, b=[], /, c=2, *rest, d, e=None, **extra):  # noqa: B006 - a shared default on purpose
    b.append(a)
    return (a, b, c, rest, d, e, extra)


def test_wrapper_takes_the_functions_own_parameters_and_defaults() -> None:
    decorated = npp.profiled(every_kind)
    assert decorated.__defaults__ is every_kind.__defaults__
    assert decorated.__kwdefaults__ is every_kind.__kwdefaults__
    assert inspect.signature(decorated) == inspect.signature(every_kind)
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        ((1,), {"d": 4}), ((1, [0], 3, 9, 9), {"d": 4, "e": 5, "z": 6}), ((1,), {"c": 7, "d": 4, "a": "kw"}),
    ]
    with npp.session(trace=False) as s:
        for args, kwargs in calls:
            assert decorated(*args, **kwargs) == every_kind(*args, **kwargs)
    assert s.summary().region("every_kind").count == len(calls)
    assert every_kind.__defaults__[0] == [1, 1, 1, 1]  # decorated and direct calls share the one default list
    for bad_args, bad_kwargs in [((), {"d": 1}), ((1,), {}), ((1, [], 3), {"d": 1, "c": 4})]:
        with pytest.raises(TypeError) as direct:
            every_kind(*bad_args, **bad_kwargs)
        with pytest.raises(TypeError) as wrapped:
            decorated(*bad_args, **bad_kwargs)
        assert str(wrapped.value) == str(direct.value)


def test_parameters_named_like_the_wrappers_own_still_work() -> None:
    @npp.profiled
    def clash(_npp_func: int, _npp_name: int = 2) -> int:
        return _npp_func * _npp_name

    with npp.session(trace=False) as s:
        assert clash(3) == 6 and clash(_npp_func=1, _npp_name=5) == 5
    assert s.summary().region(clash.__qualname__).count == 2
