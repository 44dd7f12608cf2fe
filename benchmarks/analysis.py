"""Trace analysis speed and memory, each case in a fresh process, measured in one run.

1. A synthetic trace of 220+ MB with a realistic event mix (profiler steps,
   nested npuprofile regions, CPU ops with shapes, Python frames, memory
   events, device kernels and flows, torch's pretty-printed layout) in which,
   as torch writes them, each thread's runtime calls come tens of thousands of
   events after the ops that made them, so exact nesting has to sort every lane
   (and spills sorted runs to disk):

   - figure: ``npuprofile.analysis.summarize(path)`` (streaming, exact nesting);
   - reference: ``json.load`` of the same file, then the same aggregation;
   - for the choice of parser, reading the events alone with each candidate.

   Targets: throughput at least 2x the reference, peak RSS growth below a
   quarter of the file.

2. The largest real trace set (``hta_v100_2rank_r1``, see
   ``tests/data/real/SOURCES.md``): ``summarize`` against HolisticTraceAnalysis's
   load + temporal breakdown + kernel breakdown, run with ``/tmp/hta-venv/bin/python``
   (a scratch venv, never a dependency; prints ``skipped: no HTA venv`` without
   it). Targets: at least 5x faster, at most a quarter of its peak RSS.

    python benchmarks/analysis.py [--size-mb 220] [--keep DIR] [--skip-synthetic] [--skip-hta]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.real_traces import real_traces  # noqa: E402

THROUGHPUT_TARGET = 2.0  # streaming MB/s over json.load + aggregation MB/s
MEMORY_TARGET = 0.25  # streaming peak RSS growth over file size
HTA_SPEED_TARGET = 5.0  # HTA seconds over ours
HTA_MEMORY_TARGET = 0.25  # our peak RSS over HTA's
HTA_PYTHON = Path("/tmp/hta-venv/bin/python")
LARGEST_REAL = "cuda/hta_v100_2rank_r1"
REPEATS = 3
RUNTIME_LAG_STEPS = 100  # runtime calls are written this many steps after their ops (~50k events)

# Each child prints one JSON line: seconds and the interpreter's RSS before and after.
CHILD_PRELUDE = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
path = {path!r}
import orjson
from npuprofile.analysis import summarize
from npuprofile.analysis.aggregate import Aggregator
from npuprofile.analysis.collect import source_from_trace
from npuprofile.analysis.events import TraceFile
from npuprofile.analysis.summarize import build_summary
usage = resource.getrusage(resource.RUSAGE_SELF)
base, cpu0 = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
start = time.perf_counter()
"""
CHILD_EPILOGUE = """
elapsed = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({{"seconds": elapsed, "cpu": usage.ru_utime + usage.ru_stime - cpu0, "base_kb": base,
                  "peak_kb": usage.ru_maxrss, "check": check}}))
"""
CHECK = "check = [len(result.cpu_ops), len(result.steps), [o.self_ns for o in result.cpu_ops], " \
        "[d.busy_ns for d in result.device_time]]"
CASES = {
    "streaming summarize": "result = summarize(path)\n" + CHECK,
    "json.load + same aggregation": (
        "with open(path, 'rb') as handle:\n"
        "    data = json.load(handle)\n"
        "trace = TraceFile(path)\n"
        "trace.layout = 'torch'\n"
        "trace.events_read = len(data['traceEvents'])\n"
        "trace.metadata = {k: v for k, v in data.items() if k != 'traceEvents'}\n"
        "aggregator = Aggregator().feed_all(data['traceEvents']).finish()\n"
        "result = build_summary([source_from_trace(trace, aggregator)])\n" + CHECK
    ),
    "parse only: orjson in chunks (ours)": "check = sum(1 for _ in TraceFile(path).events())",
    "parse only: json.load": (
        "with open(path, 'rb') as handle:\n"
        "    check = len(json.load(handle)['traceEvents'])"
    ),
    "parse only: ijson yajl2_c": (
        "import ijson\n"
        "with open(path, 'rb') as handle:\n"
        "    check = sum(1 for _ in ijson.items(handle, 'traceEvents.item', use_float=True))"
    ),
}
OURS_ON_REAL = "result = summarize(path)\ncheck = [d.busy_ns for d in result.device_time]"
HTA_ON_REAL = """
import json, logging, resource, sys, time, warnings
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
path = {path!r}
from hta.trace_analysis import TraceAnalysis
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu0 = usage.ru_utime + usage.ru_stime
start = time.perf_counter()
analysis = TraceAnalysis(trace_dir=path)
breakdown = analysis.get_temporal_breakdown(visualize=False)
analysis.get_gpu_kernel_breakdown(visualize=False)
elapsed = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({{"seconds": elapsed, "cpu": usage.ru_utime + usage.ru_stime - cpu0, "base_kb": 0,
                  "peak_kb": usage.ru_maxrss, "check": [float(v) for v in breakdown["idle_time_pctg"]]}}))
"""


def write_trace(path: Path, size_mb: int, seed: int = 0) -> int:
    """Write a trace of at least ``size_mb`` MB in torch's layout; return the number of events."""
    import orjson

    rng = random.Random(seed)
    pid, tid, gpu = 4242, 4242, 0
    ops = [("aten::linear", 3), ("aten::addmm", 0), ("aten::layer_norm", 1), ("aten::gelu", 0),
           ("aten::softmax", 1), ("aten::bmm", 0), ("aten::copy_", 0), ("aten::view", 0), ("aten::add", 0)]
    header = {"schemaVersion": 1, "deviceProperties": [{"id": 0, "name": "Synthetic GPU", "totalGlobalMem": 1 << 34}],
              "distributedInfo": {"backend": "nccl", "rank": 0, "world_size": 8}, "record_shapes": 1,
              "displayTimeUnit": "ms", "baseTimeNanoseconds": 1700000000000000000}
    meta = [
        {"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": "python"}},
        {"ph": "M", "name": "process_name", "pid": gpu, "tid": 0, "args": {"name": "python"}},
        {"ph": "M", "name": "process_labels", "pid": gpu, "tid": 0, "args": {"labels": "GPU 0"}},
        {"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": "thread 4242 (python)"}},
    ]
    target = size_mb * 1_000_000
    events = 0
    external = 0

    def dump(batch: list[dict]) -> bytes:
        return b",\n" + b",\n".join(orjson.dumps(e, option=orjson.OPT_INDENT_2) for e in batch)

    with open(path, "wb") as handle:
        head = orjson.dumps(header, option=orjson.OPT_INDENT_2)[:-2]
        handle.write(head + b',\n  "traceEvents": [\n')
        handle.write(b",\n".join(orjson.dumps(e, option=orjson.OPT_INDENT_2) for e in meta))
        events += len(meta)
        ts = 1_000_000.0
        step = 0
        runtime: list[dict] = []
        while handle.tell() < target:
            batch: list[dict] = []
            step_start = ts
            step_events: list[dict] = []
            for layer in range(4):
                for region in ("attention", "mlp"):
                    region_start = ts
                    for name, children in ops:
                        external += 1
                        dur = rng.uniform(5, 80)
                        shape = [[rng.choice((8, 16, 32)), 128], [128, 512]]
                        op = {"ph": "X", "cat": "cpu_op", "name": name, "pid": pid, "tid": tid,
                              "ts": round(ts, 3), "dur": round(dur, 3),
                              "args": {"External id": external, "Record function id": 0, "Ev Idx": external,
                                       "Input Dims": shape, "Input type": ["float", "float"],
                                       "Input Strides": [[128, 1], [512, 1]], "Concrete Inputs": ["", ""]}}
                        step_events.append({"ph": "X", "cat": "python_function", "name": f"model.py(12): {name}",
                                            "pid": pid, "tid": tid, "ts": round(ts - 0.5, 3),
                                            "dur": round(dur + 1.0, 3), "args": {"Python id": external}})
                        step_events.append(op)
                        inner = ts + 1
                        for c in range(children):
                            step_events.append({"ph": "X", "cat": "cpu_op", "name": f"aten::child{c}", "pid": pid,
                                                "tid": tid, "ts": round(inner, 3), "dur": round(dur / 4, 3),
                                                "args": {"External id": external, "Ev Idx": external}})
                            inner += dur / 4 + 0.5
                        step_events.append({"ph": "i", "cat": "cpu_instant_event", "s": "t", "name": "[memory]",
                                            "pid": pid, "tid": tid, "ts": round(ts + 0.2, 3),
                                            "args": {"Total Reserved": 1 << 30, "Total Allocated": rng.randrange(1 << 28),
                                                     "Bytes": 4096, "Addr": 140000000 + external,
                                                     "Device Type": 1, "Device Id": 0}})
                        launch = round(inner + 0.2, 3)
                        runtime.append({"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": pid,
                                        "tid": tid, "ts": launch, "dur": 3.0,
                                        "args": {"External id": external, "cbid": 211, "correlation": external}})
                        kernel_ts = round(ts + 5, 3)
                        step_events.append({"ph": "X", "cat": "kernel", "name": f"{name}_kernel", "pid": gpu,
                                            "tid": 7, "ts": kernel_ts, "dur": round(dur / 2, 3),
                                            "args": {"External id": external, "device": 0, "stream": 7,
                                                     "correlation": external, "grid": [64, 1, 1],
                                                     "block": [256, 1, 1]}})
                        step_events.append({"ph": "s", "id": external, "pid": pid, "tid": tid, "ts": launch,
                                            "cat": "ac2g", "name": "ac2g"})
                        step_events.append({"ph": "f", "id": external, "pid": gpu, "tid": 7, "ts": kernel_ts,
                                            "cat": "ac2g", "name": "ac2g", "bp": "e"})
                        ts += dur + 2
                    step_events.append({"ph": "X", "cat": "user_annotation", "name": f"layer.{layer}.{region}",
                                        "pid": pid, "tid": tid, "ts": round(region_start - 0.3, 3),
                                        "dur": round(ts - region_start, 3), "args": {"External id": 0}})
            batch.append({"ph": "X", "cat": "user_annotation", "name": f"ProfilerStep#{step}", "pid": pid,
                          "tid": tid, "ts": round(step_start - 1, 3), "dur": round(ts - step_start + 2, 3),
                          "args": {"External id": 0}})
            batch.append({"ph": "X", "cat": "user_annotation", "name": "forward", "pid": pid, "tid": tid,
                          "ts": round(step_start - 0.6, 3), "dur": round(ts - step_start + 1, 3), "args": {}})
            batch += step_events
            step += 1
            if step % RUNTIME_LAG_STEPS == 0:  # torch writes a thread's runtime calls after its ops
                batch += runtime
                runtime = []
            handle.write(dump(batch))
            events += len(batch)
            ts += 50
        if runtime:
            handle.write(dump(runtime))
            events += len(runtime)
        handle.write(b'\n  ],\n  "traceName": "synthetic.pt.trace.json"\n}\n')
    return events


def run_child(code: str, python: str = sys.executable) -> dict | None:
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        if "ModuleNotFoundError: No module named 'ijson'" in out.stderr:
            return None
        raise SystemExit(f"benchmark case failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_case(name: str, path: Path) -> dict | None:
    return run_child(CHILD_PRELUDE.format(root=str(ROOT), path=str(path)) + CASES[name] + CHILD_EPILOGUE.format())


def synthetic(size_mb: int, keep: str | None) -> list[str]:
    """The 220 MB case; returns the targets missed."""
    directory = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="npuprofile-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "synthetic.pt.trace.json"
    try:
        started = time.perf_counter()
        count = write_trace(path, size_mb)
        size = path.stat().st_size
        mb = size / 1e6
        print(f"trace: {path} ({mb:.0f} MB, {count:,} events, written in {time.perf_counter() - started:.1f}s)")
        print(f"{'case':<38} {'seconds':>8} {'CPU s':>7} {'MB/s':>8} {'peak RSS growth':>16}")
        results = {}
        main_cases = ("streaming summarize", "json.load + same aggregation")
        for name in CASES:
            result = run_case(name, path)
            if result is None:
                print(f"{name:<38} skipped: not installed")
                continue
            if name in main_cases:  # best of REPEATS: other work on the machine slows single runs
                for _ in range(REPEATS - 1):
                    again = run_case(name, path) or result
                    result = dict(result, seconds=min(result["seconds"], again["seconds"]),
                                  cpu=min(result["cpu"], again["cpu"]))
            results[name] = result
            growth_mb = (result["peak_kb"] - result["base_kb"]) * 1024 / 1e6
            print(f"{name:<38} {result['seconds']:8.2f} {result['cpu']:7.2f} {mb / result['seconds']:8.1f} "
                  f"{growth_mb:13.0f} MB")
        figure = results["streaming summarize"]
        reference = results["json.load + same aggregation"]
        if figure["check"] != reference["check"]:
            return ["streaming and reference summaries differ"]
        ratio = reference["seconds"] / figure["seconds"]
        growth = (figure["peak_kb"] - figure["base_kb"]) * 1024
        ref_growth = (reference["peak_kb"] - reference["base_kb"]) * 1024
        print()
        print(f"(the first two cases: best of {REPEATS} runs)")
        print(f"throughput: figure {mb / figure['seconds']:.1f} MB/s (streaming summarize, exact nesting), "
              f"reference {mb / reference['seconds']:.1f} MB/s (json.load + same aggregation), "
              f"ratio {ratio:.2f}x (target >= {THROUGHPUT_TARGET:.1f}x)")
        print(f"peak memory: figure {growth / 1e6:.0f} MB RSS growth ({100 * growth / size:.1f}% of the file), "
              f"reference {ref_growth / 1e6:.0f} MB ({100 * ref_growth / size:.0f}% of the file), "
              f"ratio {growth / ref_growth:.3f} (target < {100 * MEMORY_TARGET:.0f}% of the file)")
        missed = []
        if ratio < THROUGHPUT_TARGET:
            missed.append(f"throughput ratio {ratio:.2f}x < {THROUGHPUT_TARGET:.1f}x")
        if growth > MEMORY_TARGET * size:
            missed.append(f"peak memory {growth / 1e6:.0f} MB > {MEMORY_TARGET:.0%} of {mb:.0f} MB")
        return missed
    finally:
        if not keep:
            shutil.rmtree(directory, ignore_errors=True)


def against_hta() -> list[str]:
    """Ours against HTA on the largest real trace set; returns the targets missed."""
    root = real_traces()
    if root is None or not (root / LARGEST_REAL).is_dir():
        print("real traces: skipped: none on this machine (see tests/real_traces.py)")
        return []
    folder = root / LARGEST_REAL
    size = sum(f.stat().st_size for f in folder.iterdir())
    print(f"real trace set: {folder} ({size / 1e6:.1f} MB compressed)")
    if not HTA_PYTHON.exists():
        print("HTA: skipped: no HTA venv (python3 -m venv /tmp/hta-venv && "
              "/tmp/hta-venv/bin/pip install HolisticTraceAnalysis==0.5.0)")
        return []
    ours_code = CHILD_PRELUDE.format(root=str(ROOT), path=str(folder)) + OURS_ON_REAL + CHILD_EPILOGUE.format()
    runs: dict[str, list[dict]] = {"ours": [], "theirs": []}
    for _ in range(REPEATS):  # alternated, best of each: other work on the machine slows single runs
        runs["ours"].append(run_child(ours_code) or {})
        runs["theirs"].append(run_child(HTA_ON_REAL.format(path=str(folder)), str(HTA_PYTHON)) or {})
    ours, theirs = ({key: min(r[key] for r in results) for key in ("seconds", "cpu", "peak_kb")}
                    for results in (runs["ours"], runs["theirs"]))
    print(f"best of {REPEATS} runs each, alternated")
    speed = theirs["seconds"] / ours["seconds"]
    memory = ours["peak_kb"] / theirs["peak_kb"]
    print(f"{'case':<48} {'seconds':>8} {'CPU s':>7} {'peak RSS':>10}")
    for label, result in (("npuprofile summarize (device time included)", ours),
                          ("HTA load + temporal + kernel breakdown", theirs)):
        print(f"{label:<48} {result['seconds']:8.2f} {result['cpu']:7.2f} {result['peak_kb'] / 1024:7.0f} MB")
    print(f"speed: {speed:.1f}x faster than HTA in wall time, {theirs['cpu'] / ours['cpu']:.1f}x in CPU time "
          f"(target >= {HTA_SPEED_TARGET:.0f}x); memory: {memory:.3f} of HTA's peak RSS (target <= {HTA_MEMORY_TARGET})")
    missed = []
    if speed < HTA_SPEED_TARGET:
        missed.append(f"speed against HTA {speed:.1f}x < {HTA_SPEED_TARGET:.0f}x")
    if memory > HTA_MEMORY_TARGET:
        missed.append(f"memory against HTA {memory:.3f} > {HTA_MEMORY_TARGET}")
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=220, help="synthetic trace size in MB (default: 220)")
    parser.add_argument("--keep", metavar="DIR", help="write the synthetic trace in DIR and keep it")
    parser.add_argument("--skip-synthetic", action="store_true", help="only the real-trace comparison")
    parser.add_argument("--skip-hta", action="store_true", help="only the synthetic trace")
    args = parser.parse_args()
    missed: list[str] = []
    if not args.skip_synthetic:
        missed += synthetic(args.size_mb, args.keep)
        print()
    if not args.skip_hta:
        missed += against_hta()
    if missed:
        print("MISSED: " + "; ".join(missed))
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
