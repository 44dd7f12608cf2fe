"""Reading ``NPUPROFILE_*`` environment variables: the few helpers needed at import time."""

from __future__ import annotations

import os
from typing import Any, Mapping

from npuprofile.errors import ConfigError

ENV_PREFIX = "NPUPROFILE_"

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def env_name(option: str) -> str:
    """The environment variable that mirrors keyword argument ``option``."""
    return ENV_PREFIX + option.upper()


def parse_bool(value: Any, source: str) -> bool:
    """Parse a boolean given as a bool or as one of the usual words."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise ConfigError(
        f"{source}={value!r} is not a boolean; allowed: {', '.join(_TRUE + _FALSE)} (or True/False)"
    )


def enabled_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``NPUPROFILE_ENABLED`` leaves profiling on (it is read once, at import)."""
    env = os.environ if environ is None else environ
    raw = env.get(env_name("enabled"), "").strip()
    return True if raw == "" else parse_bool(raw, env_name("enabled"))

