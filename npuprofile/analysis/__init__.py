"""Reading traces (streaming) and summarizing them.

``iter_events`` / ``TraceFile`` stream a trace's events (see :mod:`.events`);
``summarize`` turns traces into a :class:`TraceSummary` (see :mod:`.summarize`).
"""

from npuprofile.analysis.events import TraceFile, find_traces, iter_events
from npuprofile.analysis.summarize import TraceSummary, summarize

__all__ = ["TraceFile", "TraceSummary", "find_traces", "iter_events", "summarize"]
