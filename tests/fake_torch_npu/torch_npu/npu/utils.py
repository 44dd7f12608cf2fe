from torch_npu import _fake


def device_count():
    return _fake.device_count


def synchronize(device=None):
    _fake.record("synchronize", device=device)


_STREAMS = {}


def current_stream(device=None):
    from .streams import Stream

    return _STREAMS.setdefault(device, Stream(stream_id=0, device_index=device or 0))
