"""What compiled ranges cost: a compiled model with its layers' regions kept as range operators, against none.

For each Dynamo backend, an 8-layer MLP whose layers' ``forward`` is
``@profiled`` is compiled twice: once plainly (regions leave nothing in the
graph) and once while a ``compiled_ranges=True`` session runs (each region
becomes a ``range_push``/``range_pop`` pair). Both are then timed idle, in a
timer-only session with ``compiled_ranges=True`` and in a tracing session with
it; the line prints both forwards and the cost per range (the difference over
the layer count). Informative: no target (compiled ranges are off by default
because this is not nothing). CPU time of this thread, one intra-op thread.

    python benchmarks/compiled_ranges.py [--backends eager,aot_eager,inductor] [--width 256]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

import npuprofile as npp  # noqa: E402

LAYERS = 8


def build(width: int) -> torch.nn.Module:
    class Layer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(width, width)

        @npp.profiled("layer")
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.linear(x))

    torch.manual_seed(0)
    return torch.nn.Sequential(*(Layer() for _ in range(LAYERS)))


def per_call_us(compiled: Any, x: torch.Tensor, n: int) -> float:
    start = time.thread_time_ns()
    for _ in range(n):
        compiled(x)
    return (time.thread_time_ns() - start) / n / 1000


def measure(backend: str, width: int, out_dir: Path, repeats: int = 9, n: int = 100) -> None:
    x = torch.randn(32, width)
    plain = torch.compile(build(width), backend=backend, fullgraph=True)
    ranged = torch.compile(build(width), backend=backend, fullgraph=True)
    with torch.no_grad():
        plain(x)
        with npp.session(trace=False, compiled_ranges=True):
            ranged(x)  # traced while ranges are asked for: the operators are in this graph
    modes = {
        "idle": lambda: None,
        "timer-only session": lambda: npp.session(trace=False, compiled_ranges=True),
        "tracing session": lambda: npp.session(output_dir=out_dir, compiled_ranges=True),
    }
    for mode, make in modes.items():
        samples: dict[str, list[float]] = {"plain": [], "ranged": []}
        with torch.no_grad():
            for repeat in range(repeats):
                order = [("plain", plain), ("ranged", ranged)]
                for name, compiled in order if repeat % 2 else reversed(order):
                    session = make()
                    if session is None:
                        samples[name].append(per_call_us(compiled, x, n))
                    else:
                        with session:
                            samples[name].append(per_call_us(compiled, x, n))
        a, b = statistics.median(samples["plain"]), statistics.median(samples["ranged"])
        print(
            f"{backend:10} {mode:19} without ranges {a:8.1f} us   with {LAYERS} ranges {b:8.1f} us   "
            f"{(b - a) / LAYERS:+6.2f} us per range ({b / a:.3f}x)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="eager,aot_eager,inductor")
    parser.add_argument("--width", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {LAYERS} x Linear({args.width}) + relu, batch 32, forward only")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            measure(backend, args.width, Path(tmp))


if __name__ == "__main__":
    main()
