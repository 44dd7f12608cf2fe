"""Regenerate tests/data/real/ground_truth.json and print the SOURCES.md inventory.

Stdlib only (no HTA, no pandas): runnable with any Python 3.8+ as
``python tests/data/real/make_ground_truth.py``.

Ground truth for CPU-op self times is computed without any streaming: the whole
JSON is loaded (floats parsed as ``decimal.Decimal`` so ``ts``/``dur`` are exact,
also when ``ts`` is a string as in torch_npu output), then per (pid, tid) the
complete events (``ph == 'X'``) are sorted by (ts, -dur, file order) and nested
with a stack: an event is a child of the stack top when it starts before the
top ends (``ts < top_end``).  ``self = dur - sum(dur of direct children)``.

Two variants are written:

* ``all_x``: every 'X' event on the thread takes part in the nesting
  (cpu_op, user_annotation, python_function, cuda_runtime, cuda_driver, ...),
  so e.g. ``cudaLaunchKernel`` time is *not* part of the calling op's self time.
* ``ops_only``: only op events (cat ``cpu_op``, or ``Operator`` in 2021-era
  kineto traces) take part, so runtime/driver time stays in the op's self time.

Only op events (cat in OP_CATS, excluding ``ProfilerStep#*`` which is an
``Operator`` in 2021 kineto traces) are reported; per op name the instances are
summed (count, total dur, total self).
Events that start inside the top but end after it (improper nesting) are still
treated as children of the top and counted under ``improper_nesting``.
"""
import collections
import decimal
import gzip
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OP_CATS = {"cpu_op", "Operator"}
HOST_STEP_CATS = {"user_annotation", "cpu_op", "Operator"}
GPU_STEP_CATS = {"gpu_user_annotation"}
FOCUS = ("aten::copy_", "aten::_local_scalar_dense")

# trace set -> list of files (relative to this folder); only GPU traces get
# self-time ground truth, the Ascend trace gets the inventory only.
TRACE_SETS = {
    "hta_trace_diff_control": ["cuda/hta_trace_diff_control/control.json.gz"],
    "hta_trace_diff_test": ["cuda/hta_trace_diff_test/test.json.gz"],
    "hta_sampled_2rank": ["cuda/hta_sampled_2rank/sampled_rank-0.json.gz",
                          "cuda/hta_sampled_2rank/sampled_rank-1.json.gz"],
    "hta_a100_16rank_r0": ["cuda/hta_a100_16rank_r0/rank0.json.gz"],
    "hta_v100_2rank_r1": ["cuda/hta_v100_2rank_r1/df_index_resolver.json.gz"],
    "hta_a100_nccl_2rank_r0": ["cuda/hta_a100_nccl_2rank_r0/nccl_data.json.gz"],
    "kineto_resnet50_w0": ["cuda/kineto_resnet50_w0/worker0.1623143089861.pt.trace.json.gz"],
    "kineto_resnet50_w4": ["cuda/kineto_resnet50_w4/worker0.1623212756351.pt.trace.json.gz"],
    "hta_mi250_minitoy": ["rocm/hta_mi250_minitoy/mi250_minitoy_train_ROCm6_2_kineto.json.gz"],
    "msprof_analyze_timeline": ["ascend/msprof_analyze_timeline/trace_view.json.gz"],
}


def load(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return json.load(fh, parse_float=decimal.Decimal)


def num(v):
    if v is None:
        return None
    return decimal.Decimal(v) if isinstance(v, str) else decimal.Decimal(v)


def f3(d):
    return float(round(d, 3))


def self_times(events, participate):
    """Return (per-name stats, improper nesting count) for events passing participate()."""
    by_thread = collections.defaultdict(list)
    for idx, e in enumerate(events):
        if e.get("ph") != "X" or not participate(e):
            continue
        ts, dur = num(e.get("ts")), num(e.get("dur", 0))
        by_thread[(e.get("pid"), e.get("tid"))].append((ts, -dur, idx, dur, e))
    stats = collections.defaultdict(lambda: [0, decimal.Decimal(0), decimal.Decimal(0)])
    improper = 0
    for items in by_thread.values():
        items.sort(key=lambda t: (t[0], t[1], t[2]))
        child_sum = {}
        stack = []  # (end, idx)
        for ts, _, idx, dur, e in items:
            while stack and stack[-1][0] <= ts:
                stack.pop()
            end = ts + dur
            if stack:
                if end > stack[-1][0]:
                    improper += 1
                parent = stack[-1][1]
                child_sum[parent] = child_sum.get(parent, 0) + dur
            stack.append((end, idx))
        for ts, _, idx, dur, e in items:
            if e.get("cat") not in OP_CATS or str(e.get("name", "")).startswith("ProfilerStep#"):
                continue
            s = stats[e.get("name")]
            s[0] += 1
            s[1] += dur
            s[2] += dur - child_sum.get(idx, 0)
    return stats, improper


def summarize_selftimes(stats):
    def row(name):
        c, d, s = stats[name]
        return {"name": name, "count": c, "total_dur_us": f3(d), "self_us": f3(s)}
    top = sorted(stats, key=lambda n: (-stats[n][2], n))[:5]
    return {"top5_by_self": [row(n) for n in top],
            "focus": {n: (row(n) if n in stats else None) for n in FOCUS}}


def inventory(doc):
    events = doc["traceEvents"] if isinstance(doc, dict) else doc
    meta = doc if isinstance(doc, dict) else {}
    cats = collections.Counter(e.get("cat") for e in events)
    steps = collections.Counter()
    step_names = collections.defaultdict(collections.Counter)
    for e in events:
        n = str(e.get("name", ""))
        if n.startswith("ProfilerStep#"):
            steps[e.get("cat")] += 1
            step_names[e.get("cat")][n] += 1
    dup = {c: sorted(n for n, k in cnt.items() if k > 1) for c, cnt in step_names.items()}
    dup = {c: v for c, v in dup.items() if v}
    dev = meta.get("deviceProperties") or []
    dist = meta.get("distributedInfo") or {}
    return {
        "events": len(events),
        "ph": dict(collections.Counter(e.get("ph") for e in events)),
        "kernel_events_cat_kernel": cats.get("kernel", 0),
        "kernel_events_cat_Kernel_legacy": cats.get("Kernel", 0),
        "nccl_kernels": sum(1 for e in events if str(e.get("cat", "")).lower() == "kernel"
                            and "nccl" in str(e.get("name", "")).lower()),
        "profiler_steps_by_cat": dict(steps),
        "host_profiler_steps": sum(v for c, v in steps.items() if c in HOST_STEP_CATS),
        "gpu_profiler_steps": sum(v for c, v in steps.items() if c in GPU_STEP_CATS),
        "duplicated_step_names": dup,
        "ts_as_string": sum(1 for e in events if isinstance(e.get("ts"), str)),
        "device": dev[0].get("name") if dev and isinstance(dev[0], dict) else None,
        "n_devices": len(dev),
        "rank": dist.get("rank"), "world_size": dist.get("world_size"),
        "backend": dist.get("backend"), "nccl_version": dist.get("nccl_version"),
        "schemaVersion": meta.get("schemaVersion"),
        "version_keys": {k: meta[k] for k in meta
                         if "version" in k.lower() and k not in ("schemaVersion",)},
        "cats": dict(cats.most_common()),
    }


def main():
    out = {
        "comment": __doc__.strip(),
        "units": "microseconds (trace 'ts'/'dur' units), rounded to 0.001",
        "traces": {},
    }
    for tset, files in TRACE_SETS.items():
        for rel in files:
            doc = load(os.path.join(HERE, rel))
            events = doc["traceEvents"] if isinstance(doc, dict) else doc
            inv = inventory(doc)
            entry = {"trace_set": tset, "inventory": inv}
            if not tset.startswith("msprof"):
                st_all, imp_all = self_times(events, lambda e: True)
                st_ops, imp_ops = self_times(events, lambda e: e.get("cat") in OP_CATS)
                entry["self_time_all_x"] = dict(summarize_selftimes(st_all), improper_nesting=imp_all)
                entry["self_time_ops_only"] = dict(summarize_selftimes(st_ops), improper_nesting=imp_ops)
            out["traces"][rel] = entry
            print(rel, json.dumps({k: v for k, v in inv.items() if k != "cats"}, default=str),
                  file=sys.stderr)
    with open(os.path.join(HERE, "ground_truth.json"), "w") as fh:
        json.dump(out, fh, indent=1, default=str, sort_keys=False)
        fh.write("\n")


if __name__ == "__main__":
    main()
