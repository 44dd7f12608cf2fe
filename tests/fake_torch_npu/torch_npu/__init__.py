"""Fake torch_npu for tests (see README.md): importing it registers ``torch.npu``."""

import os
import sys

_failure = os.environ.get("FAKE_TORCH_NPU_IMPORT_ERROR", "")
if _failure == "oserror":
    raise OSError("libhccl.so: cannot open shared object file: No such file or directory")
if _failure == "runtimeerror":
    raise RuntimeError("ACL stream synchronize failed, error code: 507000")

import torch

from torch_npu.version import __version__ as __version__
import torch_npu.npu
import torch_npu.profiler

if not hasattr(torch, "npu"):
    # what torch._register_device_module("npu", torch_npu.npu) does, undoable by tests
    setattr(torch, "npu", torch_npu.npu)
    sys.modules["torch.npu"] = torch_npu.npu
