"""Reading traces (streaming) and summarizing them."""

from .events import TraceFile, find_traces, iter_events

__all__ = ["TraceFile", "find_traces", "iter_events"]
