"""Does the region timer agree with synchronized wall time on the same matmul loop?

On a CUDA GPU (when the "cuda" backend is registered and available) regions are
timed with the adapter's device timer (events recorded at region entry and
exit, read in bulk); the reference is host wall time between two device
synchronizations around the whole loop. On CPU the timer is perf_counter and
the reference the same loop timed from outside. Prints the device, both figures
and their ratio; exits 1 when they differ by more than --tolerance.

    python benchmarks/timing_accuracy.py [--tolerance 0.05] [--iters 50] [--size N]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

import npuprofile as npp


def pick_backend() -> str:
    """The device backend when one runs here, else cpu (decided by the registry, not by name checks)."""
    available = npp.backends.available()
    for name in ("cuda", "npu"):
        if name in available:
            return name
    return "cpu"


def device_name(backend: str) -> str:
    if backend == "cuda":
        return torch.cuda.get_device_name(torch.cuda.current_device())
    if backend == "npu":
        return str(torch.npu.get_device_name(torch.npu.current_device()))  # type: ignore[attr-defined]
    import platform

    return f"CPU ({platform.processor() or platform.machine()})"


def measure(backend: str, size: int, iters: int) -> tuple[int, int]:
    """Region total and synchronized wall time (ns) of the same ``iters`` matmuls."""
    adapter = npp.backends.get(backend)
    a = torch.randn(size, size, device=backend)
    b = torch.randn(size, size, device=backend)
    for _ in range(3):  # warm up kernels and allocator
        a @ b
    adapter.synchronize()
    with npp.session(trace=False, backend=backend) as s:
        adapter.synchronize()
        started = time.perf_counter_ns()
        for _ in range(iters):
            with npp.profile_region("matmul"):
                a @ b
        adapter.synchronize()
        wall = time.perf_counter_ns() - started
    return s.summary().region("matmul").total_ns, wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tolerance", type=float, default=0.05, help="allowed relative difference (default 0.05)")
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--size", type=int, default=0, help="matrix size (default: 4096 on a device, 384 on CPU)")
    parser.add_argument("--attempts", type=int, default=3, help="re-measure up to this many times on a miss")
    args = parser.parse_args(argv)
    backend = pick_backend()
    size = args.size or (4096 if backend != "cpu" else 384)
    print(f"backend: {backend}  device: {device_name(backend)}  torch {torch.__version__}")
    print(f"work: {args.iters} x matmul {size}x{size}")
    ok = False
    for attempt in range(1, args.attempts + 1):
        timed, wall = measure(backend, size, args.iters)
        ratio = timed / wall
        ok = abs(ratio - 1.0) <= args.tolerance
        clock = "device events" if backend != "cpu" else "perf_counter"
        print(
            f"attempt {attempt}: region total ({clock}) {timed / 1e6:.3f} ms, "
            f"synchronized wall {wall / 1e6:.3f} ms, ratio {ratio:.4f} (tolerance ±{args.tolerance:.0%})"
        )
        if ok:
            break
    print("PASS" if ok else "FAIL: the region timer disagrees with synchronized wall time")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
