"""How long the engine's loop thread stalls when a capture ends, against hand-written torch.profiler code.

Three ways to capture the same N steps of the same model, interleaved over
several rounds so machine noise hits them alike:

- hand-written: ``torch.profiler.profile`` started before the steps (each in
  a ``ProfilerStep#k`` range, as the controller writes them), then ``stop()``
  and ``export_chrome_trace()`` on the loop thread: the stall is those two;
- the same, plus ``key_averages().table()``: what engines print today;
- ``npuprofile.Controller``: ``request(steps=N)`` and ``step()`` per step;
  the stall is the ``step()`` call that ends the capture (it pays the
  profiler's stop and export; the summary, op table and files are written by
  the background worker). The call that starts it is printed too.

Also printed: the longest loop step while the worker runs, against a step
with no capture, and the cost of an idle ``step()`` against an idle region.
Targets: controller stall at most 1.2x the hand-written stop + export; idle
``step()`` at most an idle region. Exits non-zero when one is missed.

    python benchmarks/capture_stall.py [--steps 20] [--rounds 5] [--width 256]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.profiler  # noqa: E402
from _measure import Report, interleaved  # noqa: E402

import npuprofile as npp  # noqa: E402


def make_work(width: int, layers: int) -> object:
    model = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(layers)])
    batch = torch.randn(8, width)

    def work() -> None:
        with torch.no_grad():
            with npp.profile_region("forward"):
                model(batch).relu_().sum()

    return work


def hand_written(work: object, steps: int, out: Path, print_table: bool) -> float:
    profile = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
    profile.start()
    for index in range(steps):
        with torch.profiler.record_function(f"ProfilerStep#{index}"):
            work()  # type: ignore[operator]
    start = time.perf_counter()
    profile.stop()
    profile.export_chrome_trace(str(out / f"hand-{time.time_ns()}.json"))
    if print_table:
        profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=20)
    return time.perf_counter() - start


def controller(work: object, steps: int, out: Path) -> tuple[float, float, float, float]:
    """(the step() call ending the capture, the one starting it, longest loop step while the worker runs,
    median loop step without capture)."""
    with npp.Controller(output_dir=out) as ctl:
        idle = []
        for _ in range(5):
            begin = time.perf_counter()
            ctl.step()
            work()  # type: ignore[operator]
            idle.append(time.perf_counter() - begin)
        capture = ctl.request(steps=steps)
        calls = []
        for _ in range(steps + 1):
            begin = time.perf_counter()
            ctl.step()
            calls.append(time.perf_counter() - begin)
            work()  # type: ignore[operator]
        busy = []
        while not capture.done:  # the loop goes on while the worker writes the summary and op table
            begin = time.perf_counter()
            ctl.step()
            work()  # type: ignore[operator]
            busy.append(time.perf_counter() - begin)
        capture.wait(120)
    return calls[-1], calls[0], max(busy, default=0.0), statistics.median(idle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="steps per capture")
    parser.add_argument("--rounds", type=int, default=5, help="captures of each kind, interleaved")
    parser.add_argument("--width", type=int, default=256, help="model width")
    parser.add_argument("--layers", type=int, default=24, help="model depth (more layers, bigger traces)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one loop thread, as measured; spare cores stay for the worker and the machine
    work = make_work(args.width, args.layers)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        hand_written(work, 2, out, False)  # the profiler's one-time start-up cost stays out
        controller(work, 2, out / "warm")
        plain, table, ours, starts, busy, idle = [], [], [], [], [], []
        for index in range(args.rounds):
            plain.append(hand_written(work, args.steps, out, False))
            table.append(hand_written(work, args.steps, out, True))
            stall, start, worker_step, idle_step = controller(work, args.steps, out / f"c{index}")
            ours.append(stall)
            starts.append(start)
            busy.append(worker_step)
            idle.append(idle_step)
        trace_mb = sum(p.stat().st_size for p in out.glob("hand-*.json")) / len(plain + table) / (1 << 20)
    ms = 1e3
    print(f"capture: {args.steps} steps, {args.layers} layers of {args.width}, about {trace_mb:.1f} MiB per trace, "
          f"{args.rounds} rounds")
    print(f"loop-thread stall at capture end (ms), median / max: hand-written stop+export "
          f"{statistics.median(plain) * ms:.1f} / {max(plain) * ms:.1f}; + key_averages table "
          f"{statistics.median(table) * ms:.1f} / {max(table) * ms:.1f}; Controller "
          f"{statistics.median(ours) * ms:.1f} / {max(ours) * ms:.1f} (the step() starting it: "
          f"{statistics.median(starts) * ms:.1f} / {max(starts) * ms:.1f})")
    print(f"loop step while the worker runs: longest {max(busy) * ms:.1f} ms (a step without capture: "
          f"{statistics.median(idle) * ms:.2f} ms)")
    report = Report("capture stall")
    report.check("Controller stall vs stop+export (median)", statistics.median(ours) * ms,
                 statistics.median(plain) * ms, 1.2, "ms")
    report.check("Controller stall vs stop+export (longest)", max(ours) * ms, max(plain) * ms, 1.2, "ms")
    report.check("Controller stall vs stop+export+key_averages (median)", statistics.median(ours) * ms,
                 statistics.median(table) * ms, 1.0, "ms")
    idle_costs = interleaved({"step": _idle_steps, "region": _idle_regions}, 100_000)
    report.check("idle step() vs idle region", idle_costs["step"], idle_costs["region"], 1.0)
    report.finish()


_IDLE = npp.Controller(output_dir=tempfile.gettempdir())


def _idle_steps(number: int) -> None:
    step = _IDLE.step
    for _ in range(number):
        step()


def _idle_regions(number: int) -> None:
    region = npp.profile_region
    for _ in range(number):
        with region("idle"):
            pass


if __name__ == "__main__":
    main()
