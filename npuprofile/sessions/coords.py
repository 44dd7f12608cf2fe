"""Where a process sits in a parallel job (``tp=0, dp=1, pp=0``) and the stage of a step, as names.

Engines split a model several ways at once (tensor, data, pipeline, expert
parallel...). ``coords`` name a process's place in each split: short
lower-case keys and whole numbers, written into file names as
``tp0-dp1-pp0`` (key, then number, joined by ``-``). Keys carry no digits so
that the written form reads back unambiguously. A stage (``"prefill"``,
``"decode"``) names the kind of engine step a capture recorded.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from npuprofile.errors import ConfigError

__all__ = [
    "MAX_COORDS", "MAX_VALUE", "WRITTEN", "Coords", "coords_dict", "format_coords", "parse_coords", "parse_stage",
    "read_coords",
]

#: Parallel coordinates: ``(key, value)`` pairs in the order given.
Coords = tuple[tuple[str, int], ...]

MAX_COORDS = 8
MAX_VALUE = 999_999
# A key ends with a letter, so ``host_100`` (a host name and pid) never reads as one.
_KEY_TEXT = r"[a-z](?:[a-z_]{0,10}[a-z])?"
_KEY = re.compile(rf"^{_KEY_TEXT}$")
#: The written form of coordinates (``tp0-dp1``), for file-name parsers.
WRITTEN = rf"{_KEY_TEXT}\d+(?:-{_KEY_TEXT}\d+)*"
_WRITTEN = re.compile(rf"^{WRITTEN}$")
_PAIR = re.compile(rf"({_KEY_TEXT})(\d+)")
_STAGE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,31}$")
_ALLOWED = (
    "a dict such as {'tp': 0, 'dp': 1} or the text 'tp=0,dp=1': up to 8 keys of 1-12 lower-case "
    f"letters or '_' (starting and ending with a letter), each a whole number 0-{MAX_VALUE}"
)


def parse_coords(value: Any, source: str) -> Coords | None:
    """Parse coordinates from a mapping, ``(key, value)`` pairs, or ``"tp=0,dp=1"`` (``None``/``""``: none)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    pairs: Iterable[Any]
    if isinstance(value, Mapping):
        pairs = value.items()
    elif isinstance(value, str):
        pairs = [_split_pair(part, value, source) for part in value.split(",") if part.strip()]
    elif isinstance(value, (list, tuple)):
        pairs = value
    else:
        raise ConfigError(f"{source}={value!r} is not coordinates; allowed: {_ALLOWED}")
    parsed: list[tuple[str, int]] = []
    for pair in pairs:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ConfigError(f"{source}={value!r} is not coordinates; allowed: {_ALLOWED}")
        key, number = pair
        if not isinstance(key, str) or not _KEY.match(key):
            raise ConfigError(f"{source}={value!r}: key {key!r} is not allowed; allowed: {_ALLOWED}")
        if any(key == seen for seen, _ in parsed):
            raise ConfigError(f"{source}={value!r}: key {key!r} appears twice; allowed: {_ALLOWED}")
        parsed.append((key, _parse_value(number, key, value, source)))
    if not parsed:
        return None
    if len(parsed) > MAX_COORDS:
        raise ConfigError(f"{source}={value!r} has {len(parsed)} keys; allowed: {_ALLOWED}")
    return tuple(parsed)


def _split_pair(part: str, value: str, source: str) -> tuple[str, str]:
    key, sep, number = part.partition("=")
    if not sep:
        raise ConfigError(f"{source}={value!r}: {part.strip()!r} is not 'key=number'; allowed: {_ALLOWED}")
    return key.strip(), number.strip()


def _parse_value(number: Any, key: str, value: Any, source: str) -> int:
    if isinstance(number, str) and number.isdigit():
        number = int(number)
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= MAX_VALUE:
        raise ConfigError(f"{source}={value!r}: {key}={number!r} is not allowed; allowed: {_ALLOWED}")
    return number


def format_coords(coords: Coords | None) -> str:
    """The written form: ``tp0-dp1-pp0`` (empty for none)."""
    return "-".join(f"{key}{number}" for key, number in coords or ())


def coords_dict(coords: Coords | None) -> dict[str, int]:
    """The coordinates as a plain dict (JSON-ready, order kept)."""
    return dict(coords or ())


def read_coords(text: str) -> dict[str, int] | None:
    """Coordinates back from their written form (``None`` when ``text`` is not one)."""
    if not _WRITTEN.match(text):
        return None
    return {key: int(number) for key, number in _PAIR.findall(text)}


def parse_stage(value: Any, source: str) -> str | None:
    """Parse a stage name: 1-32 letters, digits or ``-``, starting with a letter, not shaped like coordinates."""
    if value is None:
        return None
    if not isinstance(value, str) or not _STAGE.match(value) or _WRITTEN.match(value):
        raise ConfigError(
            f"{source}={value!r} is not a stage name; allowed: None or 1-32 letters, digits and '-' starting "
            "with a letter and not ending in a digit right after letters (that reads as coordinates, e.g. 'tp0')"
        )
    return value
