"""The NPU backend seen from fresh interpreters: lazy torch_npu import, CLI answers without torch_npu."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from npuprofile.backends.npu.offline import analyze_traces
from npuprofile.errors import BackendUnavailableError
from tests.npu_fixtures import FAKE_ROOT

REPO = Path(__file__).resolve().parents[2]


def test_torch_npu_is_imported_only_when_the_npu_backend_is_asked() -> None:
    code = (
        "import sys, npuprofile\n"
        "npuprofile.backends.names()\n"
        "s = npuprofile.session(backend='cpu', npu={'profiler_level': 2}, trace=False)\n"
        "print('torch_npu' in sys.modules)\n"
        "npuprofile.backends.get('npu')\n"
        "print('torch_npu' in sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(FAKE_ROOT)]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]


def test_analyze_without_torch_npu_says_why(tmp_path: Path) -> None:
    (tmp_path / "w_1_20250101000000000_ascend_pt").mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-m", "npuprofile", "analyse", str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "analysing NPU traces needs torch_npu: torch_npu not installed (pip install npuprofile[npu])" in out.stderr
    assert importlib.util.find_spec("torch_npu") is None
    with pytest.raises(BackendUnavailableError, match="torch_npu not installed"):
        analyze_traces(tmp_path)


def _backends_json() -> dict[str, dict[str, Any]]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("FAKE_TORCH_NPU_IMPORT_ERROR", None)
    out = subprocess.run([sys.executable, "-m", "npuprofile", "backends", "--json"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return {row["name"]: row for row in json.loads(out.stdout)}


def test_backends_cli_lists_reasons_and_versions() -> None:
    rows = _backends_json()
    assert list(rows) == ["npu", "cuda", "cpu"]
    assert rows["npu"]["available"] is False
    assert rows["npu"]["reason"] == "torch_npu not installed (pip install npuprofile[npu])"
    assert rows["npu"]["versions"]["torch_npu"] == "not installed"
    assert rows["cpu"]["available"] is True
    assert rows["cuda"]["versions"]["torch"] == torch.__version__
    if not torch.cuda.is_available():
        assert rows["cuda"]["available"] is False and rows["cuda"]["reason"]
