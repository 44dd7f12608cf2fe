"""Backend options: one resolver for every backend's frozen options dataclass.

A backend declares its options as a frozen dataclass; each field is parsed by
its annotated type, or by the parser named in the field's metadata
(``dataclasses.field(metadata={"parse": fn})``, ``fn(value, source)``) for
spellings a plain type cannot express. Supported annotations: ``bool``,
``int``, ``float``, ``str``, ``Literal[...]`` and ``enum.Enum`` subclasses
(choices, matched case-insensitively), ``X | None`` and ``tuple[X, ...]``
(a comma-separated string, or a list).

Values come from the ``session(<backend>=...)`` keyword (an options object is
used as given; dict keys win) and from ``<PREFIX><FIELD>`` environment
variables, else the default. Every error is a
:class:`~npuprofile.errors.ConfigError` naming the keyword or variable, the
value, and what is allowed.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from typing import Any, Callable, Mapping, TypeVar

from npuprofile.core.env import parse_bool
from npuprofile.errors import ConfigError

__all__ = ["env_var", "normalize_options", "option_parsers", "resolve_options"]

T = TypeVar("T")
Parser = Callable[[Any, str], Any]

_NONE_WORDS = ("none", "")
_PARSERS: dict[type[Any], dict[str, Parser]] = {}


def env_var(prefix: str, field: str) -> str:
    """The environment variable of one option field: ``<prefix><FIELD>``."""
    return prefix + field.upper()


def resolve_options(cls: type[T], value: Any, environ: Mapping[str, str], prefix: str, *, name: str) -> T:
    """Resolve options of type ``cls`` from a session keyword value and the environment.

    ``value`` is ``None``, a mapping of field names, or a ``cls`` instance
    (returned as given). For each field the mapping's value wins, then a
    non-empty ``<prefix><FIELD>`` variable, then the field's default. ``name``
    (the backend's name) starts every error message.
    """
    if isinstance(value, cls):
        return value
    if value is not None and not isinstance(value, Mapping):
        raise ConfigError(
            f"{name}={value!r} is not allowed; allowed: None, a dict or {cls.__module__}.{cls.__qualname__}"
        )
    given = dict(value or {})
    parsers = option_parsers(cls)
    unknown = sorted(set(given) - set(parsers), key=str)
    if unknown:
        raise ConfigError(f"{name} option(s) {unknown} unknown; allowed: {', '.join(parsers)}")
    fields: dict[str, Any] = {}
    for field, parse in parsers.items():
        variable = env_var(prefix, field)
        if field in given:
            fields[field] = parse(given[field], f"{name} {field}")
        elif environ.get(variable, "").strip():
            fields[field] = parse(environ[variable], variable)
    return cls(**fields)


def normalize_options(options: Any, name: str) -> None:
    """Parse every field of a frozen options dataclass in place (call it from ``__post_init__``).

    Code that builds the options object directly gets the same spellings and
    the same errors as keywords and variables.
    """
    for field, parse in option_parsers(type(options)).items():
        object.__setattr__(options, field, parse(getattr(options, field), f"{name} {field}"))


def option_parsers(cls: type[Any]) -> dict[str, Parser]:
    """Field name -> parser, for an options dataclass, in field order (worked out once per class)."""
    parsers = _PARSERS.get(cls)
    if parsers is None:
        parsers = _PARSERS[cls] = _make_parsers(cls)
    return parsers


def _make_parsers(cls: type[Any]) -> dict[str, Parser]:
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"{cls!r} is not a dataclass; backend options must be a frozen dataclass")
    hints: dict[str, Any] | None = None
    parsers: dict[str, Parser] = {}
    for field in dataclasses.fields(cls):
        parse = field.metadata.get("parse")
        if parse is None:
            if hints is None:
                hints = typing.get_type_hints(cls)
            parse = parser_for(hints[field.name], f"{cls.__qualname__}.{field.name}")
        parsers[field.name] = parse
    return parsers


def parser_for(annotation: Any, where: str) -> Parser:
    """The parser of one annotated type (``where`` names the field in the error for an unsupported type)."""
    simple = _SIMPLE.get(annotation)
    if simple is not None:
        return simple
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return _choices(args)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _enum(annotation)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [arg for arg in args if arg is not type(None)]
        if len(rest) == 1:
            return _optional(parser_for(rest[0], where))
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _sequence(parser_for(args[0], where))
    raise TypeError(
        f"option {where}: annotation {annotation!r} is not supported; use bool, int, float, str, Literal, "
        "an Enum, X | None, tuple[X, ...], or give a parser in the field's metadata"
    )


# -- parsers by type ---------------------------------------------------------------------------


def parse_integer(value: Any, source: str) -> int:
    """A whole number, given as an ``int`` or as text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ConfigError(f"{source}={value!r} is not an integer; allowed: a whole number")


def parse_number(value: Any, source: str) -> float:
    """A finite number, given as an ``int``, a ``float`` or as text."""
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise ConfigError(f"{source}={value!r} is not a number; allowed: a finite number")
    return number


def parse_text(value: Any, source: str) -> str:
    """Any string, as given."""
    if isinstance(value, str):
        return value
    raise ConfigError(f"{source}={value!r} is not a string; allowed: a str")


_SIMPLE: dict[Any, Parser] = {bool: parse_bool, int: parse_integer, float: parse_number, str: parse_text}


def _choices(choices: tuple[Any, ...]) -> Parser:
    by_word = {str(choice).lower(): choice for choice in choices}
    allowed = ", ".join(str(choice) for choice in choices)

    def parse(value: Any, source: str) -> Any:
        if isinstance(value, str) and value.strip().lower() in by_word:
            return by_word[value.strip().lower()]
        if not isinstance(value, (str, bool)) and value in choices:
            return value
        raise ConfigError(f"{source}={value!r} is not allowed; allowed: {allowed}")

    return parse


def _enum(cls: type[enum.Enum]) -> Parser:
    by_word: dict[str, enum.Enum] = {}
    for member in cls:
        by_word[member.name.lower()] = member
        by_word[str(member.value).lower()] = member
    allowed = ", ".join(member.name.lower() for member in cls)

    def parse(value: Any, source: str) -> Any:
        if isinstance(value, cls):
            return value
        if isinstance(value, str) and value.strip().lower() in by_word:
            return by_word[value.strip().lower()]
        raise ConfigError(f"{source}={value!r} is not allowed; allowed: {allowed}")

    return parse


def _optional(inner: Parser) -> Parser:
    def parse(value: Any, source: str) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS):
            return None
        return inner(value, source)

    return parse


def _sequence(item: Parser) -> Parser:
    def parse(value: Any, source: str) -> tuple[Any, ...]:
        if isinstance(value, str):
            parts: list[Any] = [part.strip() for part in value.split(",")] if value.strip() else []
        elif isinstance(value, (list, tuple)):
            parts = list(value)
        else:
            raise ConfigError(f"{source}={value!r} is not allowed; allowed: a comma-separated str or a list")
        return tuple(item(part, source) for part in parts)

    return parse
