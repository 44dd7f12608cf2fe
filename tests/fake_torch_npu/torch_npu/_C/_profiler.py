import enum


class ProfilerActivity(enum.Enum):
    CPU = 0
    NPU = 1
