"""Test controls of the fake: recorded calls and the simulated device (not part of the real API)."""

import os

#: (name, details) tuples, in call order.
calls = []
#: How many NPUs torch_npu.npu.is_available() sees.
device_count = int(os.environ.get("FAKE_TORCH_NPU_DEVICES", "1"))
#: Printed warnings (torch_npu prints them; the fake also keeps them here).
warnings_printed = []


def record(name, **details):
    calls.append((name, details))


def named(name):
    """The details of every recorded call called ``name``."""
    return [details for call, details in calls if call == name]


def reset():
    calls.clear()
    warnings_printed.clear()
