"""What every backend built on a ``torch.profiler``-style ``profile`` object shares.

torch's own profiler and device profilers modelled on it (torch_npu's) take the
same session keywords and are driven the same way: :class:`ProfilerTrace` is
one session's ``profile`` object with its range markers, and
:func:`session_profiler_kwargs` the keyword arguments npuprofile sets on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from npuprofile.backends.base import Trace
from npuprofile.backends.markers import Pop, Push

if TYPE_CHECKING:
    from npuprofile.sessions.config import Config, Schedule
    from npuprofile.sessions.files import TraceSink

__all__ = ["ProfilerTrace", "select_activities", "session_profiler_kwargs"]


class ProfilerTrace(Trace):
    """One session's ``profile`` object: start, step and stop go to it, ranges go through the markers.

    :meth:`collect` returns what the sink recorded; subclasses add what their
    profiler does besides (pausing, labels, exports, directories of its own).
    """

    def __init__(self, sink: "TraceSink", markers: tuple[Push, Pop]) -> None:
        self.sink = sink
        self._push, self._pop = markers
        #: The ``profile`` object (set by the backend once built).
        self.profile: Any = None

    def start(self) -> None:
        self.profile.start()

    def step(self) -> None:
        self.profile.step()

    def stop(self) -> None:
        self.profile.stop()

    def writes_at_stop(self) -> bool:
        # Stopping a profile whose schedule has ended (action NONE: every cycle recorded and written) runs no export.
        action = getattr(self.profile, "current_action", None)
        return getattr(action, "name", None) != "NONE"

    def push(self, name: str) -> Any:
        return self._push(name)

    def pop(self, handle: Any) -> None:
        self._pop(handle)

    def markers(self) -> tuple[Push, Pop]:
        return self._push, self._pop

    def collect(self) -> list[Path]:
        return list(self.sink.paths)


def select_activities(table: Mapping[str, Sequence[Any]], kinds: Sequence[str] | None) -> list[Any]:
    """The profiler's activity values for ``kinds`` (``None``: every kind in ``table``), in that order."""
    return [activity for kind in (kinds or tuple(table)) for activity in table[kind]]


def session_profiler_kwargs(
    config: "Config", activities: list[Any], schedule: Callable[["Schedule"], Any]
) -> dict[str, Any]:
    """Keyword arguments for a ``profile`` object from the session options, then ``config.profiler_kwargs``.

    ``schedule`` turns a :class:`~npuprofile.Schedule` into the profiler
    library's own schedule; ``on_trace_ready`` is the backend's to add.
    """
    kwargs: dict[str, Any] = {
        "activities": activities,
        "record_shapes": config.record_shapes,
        "profile_memory": config.profile_memory,
        "with_stack": config.with_stack,
        "with_flops": config.with_flops,
        "with_modules": config.with_modules,
    }
    if config.schedule is not None:
        kwargs["schedule"] = schedule(config.schedule)
    kwargs.update(config.profiler_kwargs or {})
    return kwargs
