"""Session options: defaults < environment variables < keyword arguments.

Everything is parsed and validated once, into a frozen :class:`Config`, before
any profiling starts. A bad value raises :class:`~npuprofile.errors.ConfigError`
naming the argument or variable, the value, and what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from npuprofile.backends.base import ACTIVITY_KINDS
from npuprofile.core.env import ENV_PREFIX, enabled_from_env, env_name, parse_bool
from npuprofile.errors import ConfigError
from npuprofile.sessions import remote as _remote
from npuprofile.sessions.coords import Coords, coords_dict, parse_coords

__all__ = ["ENV_PREFIX", "enabled_from_env", "env_name", "parse_bool"]

#: The longest run id (it also prefixes the run ids of on-demand and controller captures).
RUN_ID_MAX = 200
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,%d}$" % (RUN_ID_MAX - 1))


#: The largest whole number an option takes (steps, schedule phases, ranks): it fits every
#: profiler's C integer and every JSON reader.
MAX_INT = 2**31 - 1
#: The longest duration an option takes, in seconds (one day).
MAX_SECONDS = 86400.0
#: The longest a signal may wait for sessions to be saved (``flush_timeout``), in seconds.
MAX_FLUSH_SECONDS = 3600.0
#: ``flush_timeout`` when neither the keyword nor ``NPUPROFILE_FLUSH_TIMEOUT`` sets it, in seconds.
DEFAULT_FLUSH_TIMEOUT = 10.0
#: Room kept under the system's path limit for the names a session writes below ``output_dir``.
_NAME_ROOM = 512
_PATH_MAX = 4096
_NAME_MAX = 255


def parse_int(value: Any, source: str, minimum: int = 0, maximum: int = MAX_INT) -> int:
    """Parse an integer from ``minimum`` to ``maximum``."""
    allowed = f"allowed: a whole number >= {minimum} and <= {maximum}"
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"{source}={value!r} is not an integer; {allowed}")
    if isinstance(value, str) and len(value) > 40:  # int() of a huge digit string is slow and pointless
        raise ConfigError(f"{source}={value[:40]!r}... is not allowed; {allowed}")
    try:
        number = int(value.strip()) if isinstance(value, str) else value
    except ValueError:
        raise ConfigError(f"{source}={value!r} is not an integer; {allowed}") from None
    if number < minimum:
        raise ConfigError(f"{source}={value!r} is too small; {allowed}")
    if number > maximum:
        raise ConfigError(f"{source}={value!r} is too large; {allowed}")
    return int(number)


def parse_seconds(value: Any, source: str, minimum: float = 0.0, maximum: float = MAX_SECONDS) -> float:
    """Parse a duration in seconds from ``minimum`` to ``maximum`` (a number or a numeric string)."""
    allowed = f"allowed: seconds from {minimum:g} to {maximum:g}"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{source}={value!r} is not a duration; {allowed}")
    try:
        seconds = float(value)
    except (ValueError, OverflowError):
        raise ConfigError(f"{source}={value!r} is not a duration; {allowed}") from None
    if not minimum <= seconds <= maximum:  # also refuses NaN
        raise ConfigError(f"{source}={value!r} is not allowed; {allowed}")
    return seconds


def parse_flush_timeout(value: Any, source: str) -> float:
    """Parse ``flush_timeout``: seconds from 0 to :data:`MAX_FLUSH_SECONDS`."""
    return parse_seconds(value, source, 0.0, MAX_FLUSH_SECONDS)


def parse_choice(value: Any, source: str, choices: Iterable[str]) -> str:
    """Parse one of a fixed set of words, case-insensitively."""
    allowed = tuple(choices)
    if isinstance(value, str) and value.strip().lower() in allowed:
        return value.strip().lower()
    raise ConfigError(f"{source}={value!r} is not allowed; allowed: {', '.join(allowed)}")


@dataclasses.dataclass(frozen=True)
class Schedule:
    """When the tracing profiler records, in steps (the same cycle as ``torch.profiler.schedule``).

    Each cycle skips ``wait`` steps, warms up for ``warmup`` steps, then records
    ``active`` steps and writes one trace. ``repeat=0`` repeats the cycle until
    the session ends; ``skip_first`` steps are skipped once at the start.
    """

    wait: int = 0
    warmup: int = 0
    active: int = 1
    repeat: int = 0
    skip_first: int = 0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            minimum = 1 if field.name == "active" else 0
            parse_int(value, f"schedule {field.name}", minimum)

    @property
    def cycle(self) -> int:
        """Steps in one wait/warmup/active cycle."""
        return self.wait + self.warmup + self.active

    def records(self, step: int) -> bool:
        """Whether step ``step`` (counted from 0) falls in an active phase: the trace holds it."""
        step -= self.skip_first
        if step < 0 or (self.repeat and step // self.cycle >= self.repeat):
            return False
        return step % self.cycle >= self.wait + self.warmup

    def recorded_steps(self, total_steps: int) -> int:
        """How many of ``total_steps`` steps fall in an active phase."""
        steps = max(0, total_steps - self.skip_first)
        full, rest = divmod(steps, self.cycle)
        if self.repeat:
            if full >= self.repeat:
                return self.repeat * self.active
        return full * self.active + max(0, rest - self.wait - self.warmup)

    def to_dict(self) -> dict[str, int]:
        """The schedule as plain numbers."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


def schedule(
    *, wait: int = 0, warmup: int = 0, active: int = 1, repeat: int = 0, skip_first: int = 0
) -> Schedule:
    """Build a :class:`Schedule`: skip ``wait``, warm up ``warmup``, record ``active`` steps."""
    return Schedule(wait=wait, warmup=warmup, active=active, repeat=repeat, skip_first=skip_first)


def parse_schedule(value: Any, source: str) -> Schedule | None:
    """Parse a schedule from a :class:`Schedule`, ``None``, a mapping or ``"wait,warmup,active[,repeat]"``."""
    if value is None or isinstance(value, Schedule):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {f.name for f in dataclasses.fields(Schedule)}
        if unknown:
            raise ConfigError(
                f"{source} has unknown keys {sorted(unknown)}; allowed: wait, warmup, active, repeat, skip_first"
            )
        return Schedule(**{k: parse_int(v, f"{source}[{k!r}]", 1 if k == "active" else 0) for k, v in value.items()})
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        if value.strip().lower() in ("", "none", "off"):
            return None
        if len(parts) not in (3, 4):
            raise ConfigError(
                f"{source}={value!r} is not a schedule; allowed: 'wait,warmup,active[,repeat]', e.g. '1,1,3'"
            )
        names = ("wait", "warmup", "active", "repeat")
        numbers = {
            name: parse_int(part, f"{source} {name}", 1 if name == "active" else 0)
            for name, part in zip(names, parts)
        }
        return Schedule(**numbers)
    raise ConfigError(
        f"{source}={value!r} is not a schedule; allowed: npuprofile.schedule(...), a dict, "
        "'wait,warmup,active[,repeat]' or None"
    )


def parse_ranks(value: Any, source: str) -> tuple[int, ...] | None:
    """Parse a rank selection: ``None``/``"all"`` for every rank, else integers (``"0,3"``)."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("", "all", "*"):
            return None
        items: list[Any] = [p for p in text.replace(" ", "").split(",") if p]
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [value]
    elif isinstance(value, Iterable):
        items = list(value)
    else:
        raise ConfigError(f"{source}={value!r} is not a rank list; allowed: 'all' or integers like '0,3'")
    if not items:
        raise ConfigError(f"{source}={value!r} selects no rank; allowed: 'all' or integers like '0,3'")
    return tuple(sorted({parse_int(item, source) for item in items}))


def parse_output_dir(value: Any, source: str) -> Path:
    """Parse the output directory: it must be a directory we can write, or creatable.

    A path with a NUL byte, one that cannot be encoded as a file name, or one
    too long to hold the names a session writes below it is refused too.
    """
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigError(f"{source}={value!r} is not a path; allowed: a directory path")
    text = os.fspath(value)
    if not isinstance(text, str) or text == "":
        raise ConfigError(f"{source}={value!r} is not a path; allowed: a directory path")
    if "\0" in text:
        raise ConfigError(f"{source}={_shown(text)} contains a NUL byte; allowed: a directory path without NUL bytes")
    path = Path(text).expanduser()
    _check_path_length(path, source)
    try:
        probe = path
        while not probe.exists():
            if probe.parent == probe:
                break
            probe = probe.parent
        return _check_writable_dir(path, probe, text, source)
    except OSError as exc:
        raise ConfigError(f"{source}={_shown(text)}: cannot be used ({exc.strerror or exc}); "
                          "allowed: a writable directory") from None


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 200 else f"{text[:80]!r}...({len(text)} characters)"


def _check_path_length(path: Path, source: str) -> None:
    """The directory must be encodable and leave room for the names a session writes below it."""
    try:
        encoded = os.fsencode(os.path.abspath(path))
    except (UnicodeError, ValueError) as exc:
        raise ConfigError(f"{source}={_shown(str(path))} cannot be encoded as a file name ({exc}); "
                          "allowed: a directory path") from None
    longest = max((len(part) for part in encoded.split(b"/")), default=0)
    if longest > _NAME_MAX:
        raise ConfigError(f"{source}={_shown(str(path))} has a component of {longest} bytes; "
                          f"allowed: components of at most {_NAME_MAX} bytes")
    if len(encoded) > _PATH_MAX - _NAME_ROOM:
        raise ConfigError(f"{source}={_shown(str(path))} is {len(encoded)} bytes long; allowed: at most "
                          f"{_PATH_MAX - _NAME_ROOM} bytes (room is kept for the file names below it)")


def _check_writable_dir(path: Path, probe: Path, text: str, source: str) -> Path:
    if probe == path and path.exists() and not path.is_dir():
        raise ConfigError(f"{source}={text!r} is a file, not a directory; allowed: a writable directory")
    if not probe.is_dir():
        raise ConfigError(f"{source}={text!r} lies under the file {str(probe)!r}; allowed: a writable directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{source}={text!r} is not writable ({str(probe)!r} denies it); allowed: a writable directory")
    return path


def parse_output_target(value: Any, source: str) -> Path | _remote.RemoteDir:
    """Parse the output directory: a local directory (see :func:`parse_output_dir`) or a URI such as ``s3://b/x``.

    A URI needs ``fsspec`` (``pip install npuprofile[remote]``); without it the
    URI is an error naming it, never a local directory named ``s3:``.
    """
    if isinstance(value, str) and _remote.is_uri(value):
        return _remote.parse_remote(value, source)
    return parse_output_dir(value, source)


def parse_run_id(value: Any, source: str) -> str | None:
    """Parse a run id: letters, digits, ``_ . -``, at most 200 characters (it becomes part of file names)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _RUN_ID_RE.match(value):
        raise ConfigError(
            f"{source}={value!r} is not a run id; allowed: 1-{RUN_ID_MAX} letters, digits, '_', '.', '-' "
            "starting with a letter or digit"
        )
    return value


def parse_activities(value: Any, source: str) -> tuple[str, ...] | None:
    """Parse ``activities``: ``None`` (all the backend records), or a selection of ``ACTIVITY_KINDS`` (host, device)."""
    if value is None:
        return None
    items: list[Any]
    if isinstance(value, str):
        if value.strip().lower() in ("", "all", "default"):
            return None
        items = [part.strip().lower() for part in value.split(",") if part.strip()]
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = [item.strip().lower() if isinstance(item, str) else item for item in value]
    else:
        items = [value]
    unknown = [item for item in items if item not in ACTIVITY_KINDS]
    if unknown or not items:
        raise ConfigError(
            f"{source}={value!r} is not allowed; allowed: None (all the backend records) or a non-empty "
            f"selection of {ACTIVITY_KINDS!r}"
        )
    return tuple(kind for kind in ACTIVITY_KINDS if kind in items)


def parse_profiler_kwargs(value: Any, source: str) -> dict[str, Any] | None:
    """Parse ``profiler_kwargs``: a dict of keyword names (from a variable: a JSON object); checked later per backend."""
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ConfigError(
                f"{source}={value!r} is not a JSON object ({exc}); allowed: e.g. '{{\"acc_events\": true}}'"
            ) from None
    if not isinstance(value, Mapping) or not all(isinstance(key, str) and key.isidentifier() for key in value):
        raise ConfigError(f"{source}={value!r} is not allowed; allowed: a dict of keyword names to values")
    return dict(value) or None


def parse_str(value: Any, source: str) -> str:
    """Parse a non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{source}={value!r} is not allowed; allowed: a non-empty string")
    return value.strip()


@dataclasses.dataclass(frozen=True)
class Option:
    """One session option: its default and how a raw value is parsed."""

    name: str
    default: Any
    parse: Callable[[Any, str], Any]


def _bool_option(name: str, default: bool = False) -> Option:
    return Option(name, default, parse_bool)


OPTIONS: tuple[Option, ...] = (
    _bool_option("enabled", True),
    Option("backend", "auto", lambda v, s: parse_str(v, s).lower()),
    Option("output_dir", "npuprofile-traces", parse_output_target),
    _bool_option("trace", True),
    _bool_option("record_shapes"),
    _bool_option("with_stack"),
    _bool_option("profile_memory"),
    _bool_option("with_flops"),
    _bool_option("with_modules"),
    Option("schedule", None, parse_schedule),
    _bool_option("gzip"),
    _bool_option("strict"),
    _bool_option("compiled_ranges"),
    Option("ranks", None, parse_ranks),
    Option("run_id", None, parse_run_id),
    Option("coords", None, parse_coords),
    Option("activities", None, parse_activities),
    _bool_option("memory_snapshot"),
    Option("profiler_kwargs", None, parse_profiler_kwargs),
    Option("flush_timeout", DEFAULT_FLUSH_TIMEOUT, parse_flush_timeout),
)
OPTION_NAMES = tuple(option.name for option in OPTIONS)


@dataclasses.dataclass(frozen=True)
class Config:
    """Resolved, validated session options (see :func:`resolve`)."""

    enabled: bool = True
    backend: str = "auto"
    output_dir: Path = Path("npuprofile-traces")
    trace: bool = True
    record_shapes: bool = False
    with_stack: bool = False
    profile_memory: bool = False
    with_flops: bool = False
    with_modules: bool = False
    schedule: Schedule | None = None
    gzip: bool = False
    strict: bool = False
    compiled_ranges: bool = False
    ranks: tuple[int, ...] | None = None
    run_id: str | None = None
    #: This process's place in the job's parallel splits (``(("tp", 0), ("dp", 1))``), in file names and summaries.
    coords: Coords | None = None
    #: What the profiler records (a selection of ``ACTIVITY_KINDS``); ``None``: everything the backend records.
    activities: tuple[str, ...] | None = None
    #: Record the device allocator's history and write ``<stem>.memory-snapshot.pickle``.
    memory_snapshot: bool = False
    #: Extra keywords for the backend's profiler (checked against its signature when a session is made).
    profiler_kwargs: dict[str, Any] | None = dataclasses.field(default=None, hash=False)
    #: The remote directory (a URI) files are uploaded to; ``output_dir`` is then a local staging directory.
    upload_to: str | None = None
    #: Seconds SIGTERM waits for the running sessions to be saved before the process ends by it anyway.
    flush_timeout: float = DEFAULT_FLUSH_TIMEOUT

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view of the options."""
        out = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        out["output_dir"] = str(self.output_dir)
        out["schedule"] = self.schedule.to_dict() if self.schedule else None
        out["ranks"] = list(self.ranks) if self.ranks is not None else None
        out["coords"] = coords_dict(self.coords) if self.coords is not None else None
        out["activities"] = list(self.activities) if self.activities is not None else None
        if self.profiler_kwargs is not None:
            out["profiler_kwargs"] = {key: _plain(value) for key, value in self.profiler_kwargs.items()}
        return out


def _plain(value: Any) -> Any:
    """A JSON-ready stand-in for an option value (its repr when it is no plain value)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    return repr(value)


def resolve(environ: Mapping[str, str] | None = None, **kwargs: Any) -> Config:
    """Build a :class:`Config`: keyword arguments win over ``NPUPROFILE_*`` variables, which win over defaults.

    A keyword argument given as ``None`` counts as not given.
    """
    env = os.environ if environ is None else environ
    unknown = set(kwargs) - set(OPTION_NAMES)
    if unknown:
        raise ConfigError(f"unknown option(s) {sorted(unknown)}; allowed: {', '.join(OPTION_NAMES)}")
    values: dict[str, Any] = {}
    for option in OPTIONS:
        given = kwargs.get(option.name)
        variable = env_name(option.name)
        if given is not None:
            values[option.name] = option.parse(given, option.name)
        elif env.get(variable, "").strip() != "":
            values[option.name] = option.parse(env[variable], variable)
        else:
            values[option.name] = option.parse(option.default, option.name) if option.default is not None else None
    target = values["output_dir"]
    if isinstance(target, _remote.RemoteDir):
        values["output_dir"], values["upload_to"] = target.staging, target.uri
    return Config(**values)
