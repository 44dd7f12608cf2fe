"""Streaming reader of Chrome trace files: torch's ``.pt.trace.json[.gz]`` and torch_npu's ``trace_view.json``.

Memory stays bounded by the read chunk, not by the file: the file is read in
chunks, each chunk is cut at an event boundary and the events in it are parsed
in one call to ``orjson``. A cut is only accepted when the bytes between the
previous boundary and the cut parse as a JSON array's items, which is proof that
the cut lies between two events (a cut inside a string or inside a nested object
cannot parse), so odd layouts and odd strings are handled exactly; they only
cost a retry. On a 220 MB trace, ``orjson`` in chunks read events about 3x
faster than ``json.load`` and about 2x faster than ``ijson`` (``yajl2_c``), in
constant memory; see ``benchmarks/analysis.py``.

Public API (stable; other modules build on it):

- :func:`iter_events(path, progress=None)` -> iterator of event dicts. ``ts`` and
  ``dur`` are floats in microseconds whatever the layout (torch_npu writes them
  as strings).
- :class:`TraceFile(path)`: one trace file. ``events(progress=None)`` streams its
  events; ``metadata`` holds the top-level keys other than ``traceEvents``
  (``deviceProperties``, ``distributedInfo``, ``baseTimeNanoseconds``, ...): the
  keys before the events are known after the first event is read, all of them
  once the events are consumed (:meth:`TraceFile.read_metadata` reads them
  without keeping events). ``layout`` is ``"torch"`` (an object with
  ``traceEvents``) or ``"array"`` (a top-level array, as in ``trace_view.json``).
- :func:`find_traces(path)` -> list of trace files: the file itself, or the
  traces under a directory, found with the backends' trace layouts (see
  :mod:`npuprofile.analysis.locate`).
- ``progress`` callbacks receive ``(bytes_done, bytes_total)`` of the file on
  disk after each chunk.

Every problem with a file (missing, not a trace, truncated gzip, bad JSON)
raises :class:`npuprofile.errors.TraceError` with a one-line message naming the
file.

Memory stays bounded whatever the input: one event may take at most
:data:`MAX_ITEM_BYTES` of JSON text, the top-level keys before (or after) the
events at most :data:`MAX_HEAD_BYTES`, and JSON may nest at most
:data:`MAX_DEPTH` levels (the parser's own limit); a file beyond a limit ends
with a :class:`TraceLimitError` naming the file and the limit. Whitespace is
skipped at C speed wherever JSON allows it between events. The reader checks
no field types (the analysis skips and counts events whose fields it cannot
use); only the array layout's string timestamps must be numbers.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

import orjson

from npuprofile.analysis.locate import find_traces
from npuprofile.errors import TraceError

__all__ = ["TraceFile", "TraceLimitError", "iter_events", "find_traces", "Progress", "MAX_ITEM_BYTES",
           "MAX_HEAD_BYTES", "MAX_DEPTH"]

Progress = Callable[[int, int], None]

CHUNK_BYTES = 1 << 20
#: The most JSON text one event may take (4 MB: parsed into at most ~150 MB of objects).
MAX_ITEM_BYTES = 4 << 20
#: The most JSON text the top-level keys before (or after) the events may take.
MAX_HEAD_BYTES = 16 << 20
#: The deepest nesting of JSON arrays and objects (orjson's own limit).
MAX_DEPTH = 1024
_MB = 1 << 20
_WS = b" \t\r\n"
_NOT_WS = re.compile(rb"[^ \t\r\n]")
_EVENTS_KEY = b'"traceEvents"'


class TraceLimitError(TraceError):
    """A trace goes beyond one of the analysis's limits (event size, nesting, open events); names the limit."""


def iter_events(path: str | os.PathLike[str], progress: Progress | None = None) -> Iterator[dict[str, Any]]:
    """Stream the events of one trace file (``ts``/``dur`` as float microseconds)."""
    return TraceFile(path).events(progress)


class TraceFile:
    """One Chrome trace file, read as a stream.

    >>> trace = TraceFile("run.pt.trace.json")       # doctest: +SKIP
    >>> for event in trace.events(): ...             # doctest: +SKIP
    >>> trace.metadata["deviceProperties"]           # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise TraceError(f"{self.path}: no such file")
        if not self.path.is_file():
            raise TraceError(f"{self.path}: not a file")
        self.size = self.path.stat().st_size
        self.compressed = _is_gzip(self.path)
        self.layout: str | None = None
        self.metadata: dict[str, Any] = {}
        self.events_read = 0
        #: Whole microseconds taken off every ``ts`` of a file that writes them as strings (0 otherwise).
        self.ts_origin_us = 0

    def __repr__(self) -> str:
        return f"<TraceFile {str(self.path)!r} layout={self.layout} events_read={self.events_read}>"

    def read_metadata(self) -> dict[str, Any]:
        """All top-level keys other than ``traceEvents`` (reads the whole file, keeps no events)."""
        for _ in self.events():
            pass
        return self.metadata

    def events(self, progress: Progress | None = None) -> Iterator[dict[str, Any]]:
        """Stream the events (a fresh pass over the file each call)."""
        self.metadata = {}
        self.events_read = 0
        self.ts_origin_us = 0
        try:
            with open(self.path, "rb") as raw:
                stream: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if self.compressed else raw  # type: ignore[assignment]
                reader = _Reader(stream, raw, self.size, progress)
                yield from self._parse(reader)
        except TraceError:
            raise
        except MemoryError:
            raise TraceLimitError(f"{self.path}: out of memory while reading (limit: {_size(MAX_ITEM_BYTES)} "
                                  "per event)") from None
        except EOFError:
            raise TraceError(f"{self.path}: truncated gzip file (compressed data ended early)") from None
        except (gzip.BadGzipFile, zlib.error) as exc:
            raise TraceError(f"{self.path}: corrupt gzip file ({exc})") from None
        except OSError as exc:
            raise TraceError(f"{self.path}: cannot read ({exc.strerror or exc})") from None

    # -- layouts ----------------------------------------------------------------------
    def _parse(self, reader: "_Reader") -> Iterator[dict[str, Any]]:
        first = reader.skip_ws()
        if first == b"":
            raise TraceError(f"{self.path}: empty file, not a trace")
        if first == b"[":
            self.layout = "array"
            reader.pos += 1
            yield from self._items(reader, normalise=True)
            reader.skip_ws()
            if reader.peek() != b"":
                raise TraceError(f"{self.path}: not a trace (unexpected data after the event array)")
            reader.report()
            return
        if first != b"{":
            raise TraceError(f"{self.path}: not a trace (expected a JSON object or array, found {first!r})")
        self.layout = "torch"
        self._read_head(reader)
        reader.skip_ws()
        if reader.peek() != b"[":
            raise TraceError(f"{self.path}: not a trace (traceEvents is not an array)")
        reader.pos += 1
        yield from self._items(reader, normalise=None)
        self._read_tail(reader)
        reader.report()

    def _read_head(self, reader: "_Reader") -> None:
        """Parse the keys before ``traceEvents``; leave the reader just after its colon."""
        search_from = reader.pos
        while True:
            at = reader.find(_EVENTS_KEY, search_from, MAX_HEAD_BYTES)
            if at < 0:
                self._not_a_trace(reader)
            head = reader.buffer[reader.pos:at]
            # The key is real only if everything before it closes as an object.
            probe = head.rstrip(_WS)
            probe = probe + b"}" if probe.endswith(b"{") else probe.rstrip(b",") + b"}"
            try:
                parsed = orjson.loads(probe)
            except orjson.JSONDecodeError:
                search_from = at + 1
                continue
            if isinstance(parsed, dict):
                self.metadata.update(parsed)
                break
            search_from = at + 1
        reader.pos = at + len(_EVENTS_KEY)
        reader.skip_ws()
        if reader.peek() != b":":
            raise TraceError(f"{self.path}: bad JSON after \"traceEvents\"")
        reader.pos += 1

    def _not_a_trace(self, reader: "_Reader") -> None:
        text = bytes(reader.buffer[reader.pos:])
        if reader.eof and len(text) < MAX_HEAD_BYTES:
            try:
                value = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise TraceError(f"{self.path}: not valid JSON ({_short(exc)})") from None
            kind = "an object" if isinstance(value, dict) else f"a {type(value).__name__}"
            raise TraceError(f"{self.path}: JSON but not a trace ({kind} without \"traceEvents\")")
        if not reader.eof:
            raise TraceLimitError(f"{self.path}: no \"traceEvents\" key in the first {_size(MAX_HEAD_BYTES)} "
                                  f"(limit: {_size(MAX_HEAD_BYTES)} of top-level keys before the events)")
        raise TraceError(f"{self.path}: not a trace (no \"traceEvents\" key)")

    def _bad_events(self, rest: bytes, reason: Any) -> None:
        """Explain why the rest of the event array does not parse; always raises."""
        try:
            items = orjson.loads(b"[" + rest)
        except orjson.JSONDecodeError:
            raise TraceError(f"{self.path}: bad or truncated JSON in the events ({reason})") from None
        kinds = sorted({type(item).__name__ for item in items if not isinstance(item, dict)})
        raise TraceError(f"{self.path}: not a trace (events must be objects, found {', '.join(kinds)})")

    def _read_tail(self, reader: "_Reader") -> None:
        """Parse the keys after the events array (``traceName`` and friends)."""
        if reader.skip_ws() == b"}":  # the usual end: nothing but whitespace may follow
            reader.pos += 1
            if reader.skip_ws() != b"":
                raise TraceError(f"{self.path}: bad JSON after the events (data after the closing '}}')")
            return
        reader.compact()
        reader.fill(MAX_HEAD_BYTES + 1)
        if len(reader.buffer) > MAX_HEAD_BYTES:
            raise TraceLimitError(f"{self.path}: more than {_size(MAX_HEAD_BYTES)} after the events "
                                  f"(limit: {_size(MAX_HEAD_BYTES)} of top-level keys after the events)")
        rest = bytes(reader.buffer[reader.pos:]).strip(_WS)
        if not rest.startswith(b","):
            raise TraceError(f"{self.path}: bad JSON after the events (expected ',' or '}}', got {rest[:20]!r})")
        try:
            tail = orjson.loads(b"{" + rest[1:])
        except orjson.JSONDecodeError as exc:
            raise TraceError(f"{self.path}: bad JSON after the events ({_short(exc)})") from None
        if isinstance(tail, dict):
            self.metadata.update(tail)

    def _items(self, reader: "_Reader", normalise: bool | None) -> Iterator[dict[str, Any]]:
        """Yield the items of a JSON array whose ``[`` was just consumed; consume its ``]``."""
        size = CHUNK_BYTES
        origin: int | None = None
        separator = False  # the last cut ended right after an item: a ',' (or the ']') comes next
        while True:
            head = reader.skip_ws()
            if head == b"]":
                reader.pos += 1
                return
            if separator:
                if head != b",":
                    raise TraceError(f"{self.path}: bad JSON in the events at byte {reader.offset} "
                                     f"(expected ',' or ']' after an event, found {head!r})")
                reader.pos += 1
                separator = False
                continue
            reader.fill(size)
            buffer = reader.buffer
            start = reader.pos
            items, end, separator = _parse_slice(buffer, start, reader.eof)
            if items is None:
                if reader.eof:
                    self._bad_events(bytes(buffer[start:start + MAX_ITEM_BYTES]), end)
                if size >= MAX_ITEM_BYTES:
                    self._too_large(reader.offset, end)
                size *= 2  # no cut parsed in this window: look further
                continue
            size = CHUNK_BYTES
            reader.pos = end
            if normalise is None and items:
                normalise = isinstance(items[0].get("ts") if isinstance(items[0], dict) else None, str)
            count = 0
            for event in items:
                if not isinstance(event, dict):
                    raise TraceError(f"{self.path}: not a trace (an event is a {type(event).__name__}, not an object)")
                if normalise:
                    try:
                        origin = _normalise(event, origin)
                        self.ts_origin_us = origin or 0
                    except ValueError as exc:
                        raise TraceError(f"{self.path}: {exc}") from None
                count += 1
            self.events_read += count
            reader.report()
            yield from items
            del items  # before the next chunk is parsed, so only one chunk of events is alive
            reader.compact()

    def _too_large(self, offset: int, reason: Any) -> None:
        """No end of an event within the limit from ``offset``: say which limit, or why the JSON is bad; raises."""
        if str(reason).startswith("nested deeper"):
            raise TraceLimitError(f"{self.path}: an event at byte {offset} is {reason}")
        raise TraceLimitError(f"{self.path}: no end of an event in the {_size(MAX_ITEM_BYTES)} from byte {offset}: "
                              f"an event larger than the limit, or not JSON ({reason}; "
                              f"limit: {_size(MAX_ITEM_BYTES)} per event)")


def _parse_slice(buffer: bytearray, start: int, eof: bool) -> tuple[list[Any] | None, Any, bool]:
    """Parse the array items in ``buffer[start:cut]`` for the last cut that parses.

    Returns ``(items, resume, separator)``: ``resume`` is just after the
    separating comma (or at the closing bracket), or, when the window ends in
    whitespace after the last item (``separator`` True), just after that item.
    ``(None, reason, False)`` when no cut in the window parses.
    """
    stop = len(buffer)
    tries = 0
    error: Any = "no event boundary found"
    while tries < 16:
        cut, after, separator = _last_cut(buffer, start, stop, eof)
        if cut < 0:
            break
        tries += 1
        try:
            items = orjson.loads(b"[" + buffer[start:cut] + b"]")
        except orjson.JSONDecodeError as exc:
            error = _short(exc)
            stop = cut - 1
            continue
        return items, after, separator
    return None, error, False


def _last_cut(buffer: bytearray, start: int, stop: int, eof: bool) -> tuple[int, int, bool]:
    """The last position in ``buffer[start:stop]`` that may end an item.

    A cut is a ``}`` followed by ``,`` and ``{`` (between two events), by ``]``
    (the last event), or, before the end of the input, by nothing but
    whitespace up to the end of the window (the separator is read next).
    Returns ``(index after the '}', index to resume at, separator still to read)``.
    """
    find = buffer.rfind
    while True:
        brace = find(b"}", start, stop)
        if brace < 0:
            return -1, -1, False
        at = _solid(buffer, brace + 1)
        if at < 0:
            if not eof:
                return brace + 1, brace + 1, True
        else:
            mark = buffer[at]
            if mark == 0x5D:  # ']'
                return brace + 1, at, False
            if mark == 0x2C:  # ','
                following = _solid(buffer, at + 1)
                if following < 0 and not eof:
                    return brace + 1, at + 1, False
                if following >= 0 and buffer[following] == 0x7B:  # '{'
                    return brace + 1, at + 1, False
        stop = brace


def _solid(buffer: bytearray, pos: int) -> int:
    """The index of the first byte at or after ``pos`` that is not JSON whitespace, or -1 (at C speed)."""
    found = _NOT_WS.search(buffer, pos, pos + 64)  # the usual case: a few bytes of indentation
    if found is not None:
        return found.start()
    # A long run: drop whitespace from growing pieces in C (~600 MB/s), so the cost follows the run's length.
    at, step = pos + 64, 4096
    while at < len(buffer):
        solid = buffer[at:at + step].translate(None, _WS)
        if solid:
            return buffer.find(solid[:1], at)
        at += step
        step = min(step * 4, _MB)
    return -1


def _normalise(event: dict[str, Any], origin: int | None) -> int | None:
    """torch_npu writes ``ts`` (and sometimes ``dur``) as strings of microseconds.

    A ``ts`` of about 1.7e15 leaves a float no room below 0.25 us, so ``ts`` is
    given relative to ``origin``, the whole microseconds of the file's first
    string ``ts`` (set here, and returned), with its fraction parsed apart.
    """
    ts = event.get("ts")
    if ts.__class__ is str:
        if origin is None:
            origin = _whole_us(ts)
        try:
            event["ts"] = _exact_us(ts, origin)
        except ValueError:
            raise ValueError(f"event {event.get('name')!r} has a non-numeric ts: {ts!r}") from None
    elif origin and (ts.__class__ is float or ts.__class__ is int):
        event["ts"] = ts - origin
    dur = event.get("dur")
    if dur.__class__ is str:
        try:
            event["dur"] = float(dur)
        except ValueError:
            raise ValueError(f"event {event.get('name')!r} has a non-numeric dur: {dur!r}") from None
    return origin


def _whole_us(text: str) -> int:
    """The whole part of a plain decimal string (0 for any other form)."""
    head = text.strip().partition(".")[0]
    return int(head) if head.lstrip("+-").isdigit() else 0


def _exact_us(text: str, origin: int) -> float:
    """``float(text) - origin``, exact to the digits a plain decimal string gives."""
    head, _, tail = text.strip().partition(".")
    if head.lstrip("+-").isdigit() and (not tail or tail.isdigit()):
        fraction = float("0." + tail) if tail else 0.0
        whole = int(head) - origin
        return whole - fraction if head.startswith("-") else whole + fraction
    return float(text) - origin


def _is_gzip(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(2) == b"\x1f\x8b"
    except OSError as exc:
        raise TraceError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _size(limit: int) -> str:
    return f"{limit // _MB} MB" if limit % _MB == 0 else f"{limit} bytes"


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0][:120]
    if "depth limit" in text or "recursion" in text.lower():
        return f"nested deeper than {MAX_DEPTH} levels of arrays and objects (limit: {MAX_DEPTH} levels)"
    return text


class _Reader:
    """A growable byte window over a stream, with a read position."""

    def __init__(self, stream: BinaryIO, raw: BinaryIO, size: int, progress: Progress | None) -> None:
        self.stream = stream
        self.raw = raw
        self.size = size
        self.progress = progress
        self.buffer = bytearray()
        self.pos = 0
        self.eof = False
        self.dropped = 0  # bytes consumed and dropped from the front of the window

    @property
    def offset(self) -> int:
        """Position in the (uncompressed) stream."""
        return self.dropped + self.pos

    def _read(self) -> None:
        data = self.stream.read(CHUNK_BYTES)  # one chunk at a time: never a large transient buffer
        if not data:
            self.eof = True
        else:
            self.buffer += data

    def fill(self, want: int) -> None:
        """Make at least ``want`` bytes available after ``pos`` (unless the stream ends)."""
        while not self.eof and len(self.buffer) - self.pos < want:
            self._read()

    def find(self, needle: bytes, start: int, limit: int) -> int:
        while True:
            at = self.buffer.find(needle, start)
            if at >= 0 or self.eof or len(self.buffer) > limit:
                return at
            start = max(self.pos, len(self.buffer) - len(needle))
            self._read()

    def peek(self) -> bytes:
        if self.pos >= len(self.buffer):
            self.fill(1)
        return bytes(self.buffer[self.pos:self.pos + 1])

    def skip_ws(self) -> bytes:
        """Skip whitespace (at C speed, in bounded memory); return the next byte (``b""`` at the end)."""
        while True:
            at = _solid(self.buffer, self.pos)
            if at >= 0:
                self.pos = at
                return self.peek()
            self.pos = len(self.buffer)
            if self.eof:
                return b""
            self.compact()
            self._read()

    def compact(self) -> None:
        """Drop consumed bytes."""
        if self.pos:
            del self.buffer[:self.pos]
            self.dropped += self.pos
            self.pos = 0

    def report(self) -> None:
        if self.progress is not None:
            try:
                done = self.raw.tell()
            except (OSError, ValueError):
                done = self.size
            self.progress(min(done, self.size), self.size)
