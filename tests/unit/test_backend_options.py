"""The one resolver of backend options (npuprofile.backends.options): types, sources, errors."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npuprofile.backends.options import env_var, normalize_options, option_parsers, resolve_options
from npuprofile.errors import ConfigError

PREFIX = "NPUPROFILE_SAMPLE_"


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


@dataclasses.dataclass(frozen=True)
class Sample:
    """Options of every supported kind."""

    flag: bool = False
    count: int = 0
    ratio: float = 1.0
    label: str = "x"
    mode: Literal["fast", "slow", "auto"] = "auto"
    color: Color = Color.RED
    limit: float | None = None
    tags: tuple[str, ...] = ()
    level: int = dataclasses.field(default=1, metadata={"parse": lambda value, source: _level(value, source)})

    def __post_init__(self) -> None:
        normalize_options(self, "sample")


def _level(value: Any, source: str) -> int:
    """A field-specific parser: only 1..3."""
    if value in (1, 2, 3, "1", "2", "3"):
        return int(value)
    raise ConfigError(f"{source}={value!r} is not allowed; allowed: 1, 2, 3")


def resolve(value: Any = None, environ: dict[str, str] | None = None) -> Sample:
    return resolve_options(Sample, value, environ or {}, PREFIX, name="sample")


# -- values and their text forms ------------------------------------------------------------------

_TRUE = ["1", "true", "yes", "on", "TRUE", " Yes "]
_FALSE = ["0", "false", "no", "off", "False", "OFF "]
_words = st.text(alphabet=st.characters(categories=("L", "N"), max_codepoint=0x2FF), min_size=1, max_size=8)


@st.composite
def values_and_texts(draw: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Random field values, and the same values as environment strings."""
    flag = draw(st.booleans())
    count = draw(st.integers(-10**12, 10**12))
    ratio = draw(st.floats(allow_nan=False, allow_infinity=False))
    label = draw(_words)
    mode = draw(st.sampled_from(["fast", "slow", "auto"]))
    color = draw(st.sampled_from(list(Color)))
    limit = draw(st.none() | st.floats(allow_nan=False, allow_infinity=False))
    tags = tuple(draw(st.lists(_words, max_size=4)))
    level = draw(st.integers(1, 3))
    values = {"flag": flag, "count": count, "ratio": ratio, "label": label, "mode": mode, "color": color,
              "limit": limit, "tags": tags, "level": level}
    case = draw(st.sampled_from([str.lower, str.upper, str.title]))
    texts = {
        "flag": draw(st.sampled_from(_TRUE if flag else _FALSE)),
        "count": draw(st.sampled_from(["{}", " {} "])).format(count),
        "ratio": repr(ratio),
        "label": label,
        "mode": case(mode),
        "color": case(draw(st.sampled_from([color.name, color.value]))),
        "limit": draw(st.sampled_from(["none", "None"])) if limit is None else repr(limit),
        "tags": ",".join(tags) if tags else "",
        "level": str(level),
    }
    return values, texts


@settings(max_examples=200, deadline=None)
@given(data=values_and_texts(), from_env=st.sets(st.sampled_from([f.name for f in dataclasses.fields(Sample)])))
def test_values_round_trip_as_keywords_and_as_env_strings(data: Any, from_env: set[str]) -> None:
    values, texts = data
    expected = Sample(**values)
    assert resolve(values) == expected
    environ = {env_var(PREFIX, name): text for name, text in texts.items() if name in from_env and text}
    given_ = {name: value for name, value in values.items() if name not in from_env}
    resolved = resolve(given_, environ)
    for name, value in values.items():
        if name in from_env and not texts[name]:
            value = getattr(Sample(), name)  # an empty variable is unset: the default
        assert getattr(resolved, name) == value, name
    # keywords win over variables
    assert resolve(values, {env_var(PREFIX, name): text for name, text in texts.items() if text}) == expected


_BAD = {
    "flag": st.sampled_from(["maybe", "2", "yess", "tru"]),
    "count": st.sampled_from(["1.5", "ten", "0x10", "1e3"]),
    "ratio": st.sampled_from(["fast", "nan", "inf", "1,5"]),
    "mode": _words.filter(lambda word: word.strip().lower() not in ("fast", "slow", "auto")),
    "color": _words.filter(lambda word: word.strip().lower() not in ("red", "green")),
    "limit": st.sampled_from(["off", "-inf", "x"]),
    "level": st.sampled_from(["0", "4", "high"]),
}


@settings(max_examples=200, deadline=None)
@given(field=st.sampled_from(sorted(_BAD)), data=st.data())
def test_bad_env_values_always_name_the_variable_and_the_value(field: str, data: Any) -> None:
    text = data.draw(_BAD[field])
    variable = env_var(PREFIX, field)
    with pytest.raises(ConfigError) as caught:
        resolve(None, {variable: text})
    message = str(caught.value)
    assert f"{variable}={text!r}" in message
    assert "allowed:" in message


@settings(max_examples=100, deadline=None)
@given(field=st.sampled_from(sorted(_BAD)), data=st.data())
def test_bad_keyword_values_name_the_option(field: str, data: Any) -> None:
    text = data.draw(_BAD[field])
    with pytest.raises(ConfigError) as caught:
        resolve({field: text})
    assert f"sample {field}={text!r}" in str(caught.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"count": True}, "sample count=True is not an integer"),
        ({"ratio": float("nan")}, "sample ratio=nan is not a number; allowed: a finite number"),
        ({"label": 3}, "sample label=3 is not a string"),
        ({"tags": 3}, "sample tags=3 is not allowed; allowed: a comma-separated str or a list"),
        ({"tags": ["a", 4]}, "sample tags=4 is not a string"),
        ({"mode": True}, "sample mode=True is not allowed; allowed: fast, slow, auto"),
        ({"colour": "red"}, "sample option(s) ['colour'] unknown; allowed: flag, count, ratio, label, mode"),
        ([("flag", True)], "sample=[('flag', True)] is not allowed; allowed: None, a dict or "),
    ],
)
def test_wrong_types_and_names_are_refused(value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(value)
    assert message in str(caught.value)


def test_sources_in_order_object_then_keyword_then_variable_then_default() -> None:
    given_ = Sample(count=5)
    assert resolve(given_, {env_var(PREFIX, "count"): "9"}) is given_
    assert resolve({"count": 7}, {env_var(PREFIX, "count"): "9"}).count == 7
    assert resolve(None, {env_var(PREFIX, "count"): "9"}).count == 9
    assert resolve(None, {env_var(PREFIX, "count"): "   "}).count == 0
    assert env_var(PREFIX, "count") == "NPUPROFILE_SAMPLE_COUNT"


def test_building_options_directly_parses_the_same_way() -> None:
    made = Sample(flag="yes", count="3", mode="FAST", color="green", limit="none", tags="a, b", level="2")
    assert (made.flag, made.count, made.mode, made.color, made.limit, made.tags, made.level) == (
        True, 3, "fast", Color.GREEN, None, ("a", "b"), 2)
    with pytest.raises(ConfigError, match="sample level=7 is not allowed; allowed: 1, 2, 3"):
        Sample(level=7)


def test_unsupported_annotations_are_a_programming_error() -> None:
    @dataclasses.dataclass(frozen=True)
    class Odd:
        mapping: dict = dataclasses.field(default_factory=dict)  # type: ignore[type-arg]

    with pytest.raises(TypeError, match="annotation .* is not supported"):
        option_parsers(Odd)
    with pytest.raises(TypeError, match="is not a dataclass"):
        option_parsers(int)
