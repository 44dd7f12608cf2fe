#!/usr/bin/env bash
# One prepared run on a machine with a CUDA GPU (its own python3 holds a CUDA torch; no network there):
# the CUDA-marked tests, the timing-accuracy benchmark and the overhead benchmark on the CUDA backend,
# each figure printed with the GPU's name. Carry .whl/ (make gpu-wheels) for packages that machine lacks.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${GPU_PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" NPUPROFILE_OFFLINE=1
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps .whl/*.whl || echo "gpu-check: could not install .whl/ wheels"
fi
"$PY" - <<'PYEOF' || { echo "gpu-check: no CUDA GPU visible to $PY"; exit 2; }
import torch
assert torch.cuda.is_available()
print(f"gpu-check: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
PYEOF
status=0
echo "== CUDA-marked tests"
timeout 150 "$PY" -m pytest -q -p no:cacheprovider -m cuda tests || status=1
echo "== benchmarks/timing_accuracy.py (cuda)"
timeout 60 "$PY" benchmarks/timing_accuracy.py || status=1
echo "== benchmarks/overhead.py (cuda)"
timeout 120 "$PY" benchmarks/overhead.py --backend cuda --quick || status=1
exit $status
