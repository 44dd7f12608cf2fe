import time

from torch_npu import _fake


class Stream:
    def __init__(self, stream_id=0, device_index=0, device_type=20):
        self.stream_id = stream_id
        self.device_index = device_index
        self.device_type = device_type


class Event:
    """Like torch_npu.npu.Event: timing events; the fake reads the host clock at record()."""

    def __new__(cls, enable_timing=False, blocking=False, interprocess=False):
        event = super().__new__(cls)
        event.enable_timing = enable_timing
        event._recorded_ns = None
        return event

    def record(self, stream=None):
        if stream is not None and not isinstance(stream, Stream):
            raise TypeError(f"record(): stream must be a torch_npu.npu.Stream, got {type(stream).__name__}")
        self._recorded_ns = time.perf_counter_ns()

    def query(self):
        return True

    def synchronize(self):
        _fake.record("event_synchronize")

    def elapsed_time(self, end_event):
        if not (self.enable_timing and end_event.enable_timing):
            raise RuntimeError("Both events must be created with argument 'enable_timing=True'.")
        if self._recorded_ns is None or end_event._recorded_ns is None:
            raise RuntimeError("Both events must be recorded before calculating elapsed time.")
        return (end_event._recorded_ns - self._recorded_ns) / 1e6
