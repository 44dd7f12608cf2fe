"""Fake torch_npu.npu: device queries, sync, streams, events, mstx (registered as ``torch.npu``)."""

from torch_npu import _fake

from .utils import synchronize, current_stream, device_count
from .streams import Stream, Event
from .mstx import mstx
from . import memory

__all__ = ["synchronize", "current_stream", "device_count", "is_available", "Stream", "Event", "mstx", "memory"]


def is_available():
    return device_count() > 0
