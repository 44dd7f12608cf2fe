"""Range markers: a ``record_function`` range per region, plus a device vendor's own range if asked.

Every torch-based profiler (the stock one, and device profilers built on it)
records ``record_function`` ranges as ``user_annotation`` events. Device tools
outside the profiler see only their vendor's own ranges, so a backend can pair
each region's ``record_function`` range with one of those (see
:func:`range_markers`).
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["UserAnnotation", "VendorRanges", "range_markers"]

Push = Callable[[str], Any]
Pop = Callable[[Any], None]


class UserAnnotation:
    """Opens and closes ``record_function`` ranges through torch's profiler ops directly.

    The ops are what ``torch.autograd.profiler.record_function`` calls, minus its
    per-use object and checks, and with ``__torch_function__`` handling off
    around both calls: the ranges land in the trace as the same
    ``user_annotation`` events at about half the cost.
    """

    def __init__(self) -> None:
        import torch

        self._enter = torch.ops.profiler._record_function_enter_new.default
        self._exit = torch.ops.profiler._record_function_exit._RecordFunction
        self._plain = torch._C.DisableTorchFunctionSubclass

    def push(self, name: str) -> Any:
        """Open a range named ``name``; return its handle."""
        with self._plain():
            return self._enter(name, None)

    def pop(self, handle: Any) -> None:
        """Close the range ``handle`` opened."""
        with self._plain():
            self._exit(handle)


class VendorRanges:
    """A ``record_function`` range plus a vendor range (``start(name) -> id``, ``end(id)``) per region.

    The handle is the pair of both. If the vendor range cannot be opened, the
    ``record_function`` range is closed again before the error propagates; the
    vendor range is closed first and the ``record_function`` range always.
    """

    __slots__ = ("_open", "_close", "_start", "_end")

    def __init__(self, annotation: UserAnnotation, start: Push, end: Pop) -> None:
        self._open = annotation.push
        self._close = annotation.pop
        self._start = start
        self._end = end

    def push(self, name: str) -> Any:
        """Open both ranges; return their handle."""
        record = self._open(name)
        try:
            return record, self._start(name)
        except BaseException:
            self._close(record)
            raise

    def pop(self, handle: Any) -> None:
        """Close both ranges of ``handle``."""
        record, vendor = handle
        try:
            self._end(vendor)
        finally:
            self._close(record)


def range_markers(vendor_start: Push | None = None, vendor_end: Pop | None = None) -> tuple[Push, Pop]:
    """The ``(push, pop)`` pair for one trace: ``record_function`` ranges, and vendor ranges when given."""
    annotation = UserAnnotation()
    if vendor_start is None or vendor_end is None:
        return annotation.push, annotation.pop
    ranges = VendorRanges(annotation, vendor_start, vendor_end)
    return ranges.push, ranges.pop
