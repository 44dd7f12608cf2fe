"""Trace analysis speed and memory: streaming ``summarize`` against ``json.load`` of the same file.

Writes a synthetic trace of 200+ MB with a realistic event mix (profiler steps,
nested npuprofile regions, CPU ops with shapes, Python frames, memory events,
device kernels and flow events, torch's pretty-printed layout) to a temporary
directory, then times, each in a fresh process so peak memory (ru_maxrss) is
comparable:

- figure: ``npuprofile.analysis.summarize(path)`` (streaming);
- reference: ``json.load`` of the same file, then the same aggregation;
- for the choice of parser, reading the events alone with each candidate.

Prints figure, reference and ratio; exits non-zero when streaming throughput is
below the reference (target: ratio >= 1.0) or its peak memory is not well under
the file size (target: below a quarter of it).

    python benchmarks/analysis.py [--size-mb 220] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THROUGHPUT_TARGET = 1.0  # streaming MB/s over json.load + aggregation MB/s
MEMORY_TARGET = 0.25  # streaming peak RSS growth over file size

# Each child prints one JSON line: seconds and the interpreter's RSS before and after.
CHILD_PRELUDE = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
path = {path!r}
import orjson, ijson
from npuprofile.analysis import summarize
from npuprofile.analysis.aggregate import Aggregator
from npuprofile.analysis.events import TraceFile
from npuprofile.analysis.summarize import build_summary
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
"""
CHILD_EPILOGUE = """
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": elapsed, "base_kb": base, "peak_kb": peak, "check": check}}))
"""
CASES = {
    "streaming summarize": "result = summarize(path)\ncheck = len(result.cpu_ops) + len(result.steps)",
    "json.load + same aggregation": (
        "with open(path, 'rb') as handle:\n"
        "    data = json.load(handle)\n"
        "trace = TraceFile(path)\n"
        "trace.layout = 'torch'\n"
        "trace.events_read = len(data['traceEvents'])\n"
        "aggregator = Aggregator().feed_all(data['traceEvents']).finish()\n"
        "result = build_summary([(trace, aggregator, None, None)])\n"
        "check = len(result.cpu_ops) + len(result.steps)"
    ),
    "parse only: orjson in chunks (ours)": "check = sum(1 for _ in TraceFile(path).events())",
    "parse only: json.load": (
        "with open(path, 'rb') as handle:\n"
        "    check = len(json.load(handle)['traceEvents'])"
    ),
    "parse only: ijson yajl2_c": (
        "with open(path, 'rb') as handle:\n"
        "    check = sum(1 for _ in ijson.items(handle, 'traceEvents.item', use_float=True))"
    ),
}


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
    with open(path, "wb") as handle:
        head = orjson.dumps(header, option=orjson.OPT_INDENT_2)[:-2]
        handle.write(head + b',\n  "traceEvents": [\n')
        handle.write(b",\n".join(orjson.dumps(e, option=orjson.OPT_INDENT_2) for e in meta))
        events += len(meta)
        ts = 1_000_000.0
        step = 0
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
                        kernel_ts = round(ts + 5, 3)
                        step_events.append({"ph": "X", "cat": "kernel", "name": f"{name}_kernel", "pid": gpu,
                                            "tid": 7, "ts": kernel_ts, "dur": round(dur / 2, 3),
                                            "args": {"External id": external, "device": 0, "stream": 7,
                                                     "grid": [64, 1, 1], "block": [256, 1, 1]}})
                        step_events.append({"ph": "s", "id": external, "pid": pid, "tid": tid, "ts": round(ts, 3),
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
            handle.write(b",\n" + b",\n".join(orjson.dumps(e, option=orjson.OPT_INDENT_2) for e in batch))
            events += len(batch)
            ts += 50
            step += 1
        handle.write(b'\n  ],\n  "traceName": "synthetic.pt.trace.json"\n}\n')
    return events


def run_case(name: str, path: Path) -> dict:
    code = CHILD_PRELUDE.format(root=str(ROOT), path=str(path)) + CASES[name] + CHILD_EPILOGUE.format()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"benchmark case {name!r} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=220, help="trace size in MB (default: 220)")
    parser.add_argument("--keep", metavar="DIR", help="write the trace in DIR and keep it")
    args = parser.parse_args()
    directory = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="npuprofile-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "synthetic.pt.trace.json"
    try:
        started = time.perf_counter()
        count = write_trace(path, args.size_mb)
        size = path.stat().st_size
        mb = size / 1e6
        print(f"trace: {path} ({mb:.0f} MB, {count:,} events, written in {time.perf_counter() - started:.1f}s)")
        print(f"{'case':<38} {'seconds':>8} {'MB/s':>8} {'peak RSS growth':>16}")
        results = {}
        for name in CASES:
            result = run_case(name, path)
            results[name] = result
            growth_mb = (result["peak_kb"] - result["base_kb"]) * 1024 / 1e6
            print(f"{name:<38} {result['seconds']:8.2f} {mb / result['seconds']:8.1f} {growth_mb:13.0f} MB")
        figure = results["streaming summarize"]
        reference = results["json.load + same aggregation"]
        if figure["check"] != reference["check"]:
            print(f"MISMATCH: streaming and reference summaries differ ({figure['check']} vs {reference['check']})")
            return 1
        ratio = reference["seconds"] / figure["seconds"]
        growth = (figure["peak_kb"] - figure["base_kb"]) * 1024
        ref_growth = (reference["peak_kb"] - reference["base_kb"]) * 1024
        print()
        print(f"throughput: figure {mb / figure['seconds']:.1f} MB/s (streaming summarize), "
              f"reference {mb / reference['seconds']:.1f} MB/s (json.load + same aggregation), "
              f"ratio {ratio:.2f}x (target >= {THROUGHPUT_TARGET:.1f}x)")
        print(f"peak memory: figure {growth / 1e6:.0f} MB RSS growth ({100 * growth / size:.1f}% of the file), "
              f"reference {ref_growth / 1e6:.0f} MB ({100 * ref_growth / size:.0f}% of the file), "
              f"ratio {growth / ref_growth:.3f} (target < {100 * MEMORY_TARGET:.0f}% of the file)")
        failed = []
        if ratio < THROUGHPUT_TARGET:
            failed.append(f"throughput ratio {ratio:.2f}x < {THROUGHPUT_TARGET:.1f}x")
        if growth > MEMORY_TARGET * size:
            failed.append(f"peak memory {growth / 1e6:.0f} MB > {MEMORY_TARGET:.0%} of {mb:.0f} MB")
        if failed:
            print("MISSED: " + "; ".join(failed))
            return 1
        print("ok")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
