"""Fake torch_npu.npu.memory: the allocator-history functions (signatures as torch-npu 2.14.0)."""

from torch_npu import _fake

_history = {"enabled": None, "entries": []}


def _record_memory_history(enabled="all", *args, **kwargs):
    _fake.record("_record_memory_history", enabled=enabled, **kwargs)
    _history["enabled"] = enabled
    if enabled is None:
        _history["entries"] = []
    else:
        _history["entries"].append({"action": "alloc", "addr": 0, "size": 512, "stream": 0, "frames": []})


def _snapshot(device=None, augment_with_fx_traces=False):
    _fake.record("_snapshot", device=device)
    return {"segments": [], "device_traces": [list(_history["entries"])]}
