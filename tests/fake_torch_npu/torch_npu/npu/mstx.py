import itertools
import warnings

from torch_npu import _fake

_ids = itertools.count(1)


class mstx:
    @staticmethod
    def mark(message: str, stream=None, domain: str = "default"):
        _fake.record("mstx.mark", message=message, stream=stream, domain=domain)

    @staticmethod
    def range_start(message: str, stream=None, domain: str = "default") -> int:
        if not message or not isinstance(message, str):
            warnings.warn("Invalid message for mstx.range_start function. Please provide a valid message string.")
            return 0
        from .streams import Stream

        if stream and not isinstance(stream, Stream):
            warnings.warn("Invalid stream for mstx.range_start func. Please input valid stream.")
            return 0
        range_id = next(_ids)
        _fake.record("mstx.range_start", message=message, stream=stream, domain=domain, range_id=range_id)
        return range_id

    @staticmethod
    def range_end(range_id: int, domain: str = "default"):
        if not isinstance(range_id, int):
            warnings.warn("Invalid message for mstx.range_end function. Please provide the return value from mstx.range_start.")
            return
        _fake.record("mstx.range_end", range_id=range_id, domain=domain)
