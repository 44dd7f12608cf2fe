"""Reference figures from HTA (HolisticTraceAnalysis) for the vendored real traces.

HTA is NOT a dependency of npuprofile: this script is only used to (re)generate
``tests/data/real/hta_expected.json``, which our own trace analysis is checked
against in tests.  Run it from the repository root with a scratch venv that
lives outside the repository::

    python3 -m venv /tmp/hta-venv
    /tmp/hta-venv/bin/pip install HolisticTraceAnalysis==0.5.0   # pulls pandas, numpy, plotly, ... (no torch)
    /tmp/hta-venv/bin/python benchmarks/hta_reference.py

(The figures in the committed JSON were produced with HTA 0.5.0, pandas 3.1.1,
numpy 2.4.6, Python 3.11.)

For every trace set (one folder per run under tests/data/real/{cuda,rocm}, one
file per rank, as HTA expects) it records, keyed by trace set and rank:

* ``get_temporal_breakdown()``: idle / compute / non-compute / kernel time;
* ``get_idle_time_breakdown(ranks=all)``: idle time per stream by category;
* ``get_comm_comp_overlap()``: ``comp_comm_overlap_pctg``;
* ``get_gpu_kernel_breakdown(num_kernels=10**9)``: time by kernel type
  (COMPUTATION / COMMUNICATION / MEMORY and their overlaps, summed over ranks as
  HTA reports it) and per-kernel sum/max/min/mean/std per rank (count derived as sum/mean).

Times are in microseconds, as HTA reports them for these traces (the trace
``ts``/``dur`` unit).  ``--measure`` additionally times HTA (load + temporal +
kernel breakdown) on the largest trace in a child process and records wall time
and peak RSS (``resource.getrusage(...).ru_maxrss``).
"""
import argparse
import importlib.metadata
import json
import logging
import math
import os
import resource
import subprocess
import sys
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data", "real")
OUT = os.path.join(DATA, "hta_expected.json")

# trace set name -> folder (relative to tests/data/real)
TRACE_SETS = {
    "hta_trace_diff_control": "cuda/hta_trace_diff_control",
    "hta_trace_diff_test": "cuda/hta_trace_diff_test",
    "hta_sampled_2rank": "cuda/hta_sampled_2rank",
    "hta_a100_16rank_r0": "cuda/hta_a100_16rank_r0",
    "hta_v100_2rank_r1": "cuda/hta_v100_2rank_r1",
    "hta_a100_nccl_2rank_r0": "cuda/hta_a100_nccl_2rank_r0",
    "kineto_resnet50_w0": "cuda/kineto_resnet50_w0",
    "kineto_resnet50_w4": "cuda/kineto_resnet50_w4",
    "hta_mi250_minitoy": "rocm/hta_mi250_minitoy",
}
LARGEST = "hta_v100_2rank_r1"


def _quiet():
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)


def _clean(v):
    """numpy/pandas scalars -> plain JSON values (NaN -> None)."""
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    return v


def _records(df):
    return [{str(k): _clean(v) for k, v in row.items()} for row in df.to_dict("records")]


def analyse(name, folder):
    from hta.trace_analysis import TraceAnalysis

    ta = TraceAnalysis(trace_dir=os.path.join(DATA, folder))
    ranks = sorted(ta.t.traces.keys())
    res = {"folder": folder, "files": sorted(os.listdir(os.path.join(DATA, folder))),
           "ranks": ranks, "per_rank": {str(r): {} for r in ranks}}

    tb = ta.get_temporal_breakdown(visualize=False)
    for row in _records(tb):
        res["per_rank"][str(row.pop("rank"))]["temporal_breakdown"] = row

    try:
        ov = ta.get_comm_comp_overlap(visualize=False)
        for row in _records(ov):
            res["per_rank"][str(row["rank"])]["comp_comm_overlap_pctg"] = row["comp_comm_overlap_pctg"]
    except Exception as exc:  # pragma: no cover - recorded, not fatal
        res["comm_comp_overlap_error"] = repr(exc)

    try:
        idle, _ = ta.get_idle_time_breakdown(ranks=ranks, visualize=False)
        for row in _records(idle):
            r = str(row.pop("rank"))
            res["per_rank"][r].setdefault("idle_time_breakdown_per_stream", []).append(row)
    except Exception as exc:  # pragma: no cover
        res["idle_time_breakdown_error"] = repr(exc)

    kt, km = ta.get_gpu_kernel_breakdown(visualize=False, num_kernels=10**9)
    res["kernel_type_breakdown_all_ranks"] = _records(kt)
    for row in _records(km):
        r = str(row.pop("rank"))
        if row.get("mean (us)"):
            row["count (derived: sum/mean)"] = int(round(row["sum (us)"] / row["mean (us)"]))
        res["per_rank"][r].setdefault("kernel_metrics", []).append(row)
    for r in res["per_rank"].values():
        r.get("kernel_metrics", []).sort(key=lambda x: (-(x.get("sum (us)") or 0), x.get("name", "")))
    return res


def measure_child():
    """Runs in a fresh interpreter: load + temporal + kernel breakdown, print JSON."""
    _quiet()
    t0 = time.perf_counter()
    from hta.trace_analysis import TraceAnalysis
    t_import = time.perf_counter()
    ta = TraceAnalysis(trace_dir=os.path.join(DATA, TRACE_SETS[LARGEST]))
    t_load = time.perf_counter()
    ta.get_temporal_breakdown(visualize=False)
    t_tb = time.perf_counter()
    ta.get_gpu_kernel_breakdown(visualize=False)
    t_kb = time.perf_counter()
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({
        "trace_set": LARGEST,
        "import_s": round(t_import - t0, 3), "load_s": round(t_load - t_import, 3),
        "temporal_breakdown_s": round(t_tb - t_load, 3), "kernel_breakdown_s": round(t_kb - t_tb, 3),
        "load_temporal_kernel_s": round(t_kb - t_import, 3),
        "peak_rss_mib_self": round(self_kb / 1024, 1),
        "peak_rss_mib_children": round(child_kb / 1024, 1),
    }))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--measure", action="store_true", help="also time HTA on the largest trace")
    ap.add_argument("--measure-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure_child:
        return measure_child()
    _quiet()
    out = {
        "hta_version": importlib.metadata.version("HolisticTraceAnalysis"),
        "pandas_version": importlib.metadata.version("pandas"),
        "numpy_version": importlib.metadata.version("numpy"),
        "python_version": sys.version.split()[0],
        "units": "microseconds for every time column (HTA's '(us)' columns, trace ts/dur unit); "
                 "*_pctg / percentage columns are percent",
        "generated_by": "benchmarks/hta_reference.py",
        "trace_sets": {},
    }
    for name, folder in TRACE_SETS.items():
        out["trace_sets"][name] = analyse(name, folder)
        print(f"{name}: ok", file=sys.stderr)
    if args.measure:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--measure-child"],
                              capture_output=True, text=True, check=True)
        out["hta_cost"] = json.loads(proc.stdout.strip().splitlines()[-1])
    elif os.path.exists(OUT):  # keep a previous measurement
        with open(OUT) as fh:
            prev = json.load(fh)
        if "hta_cost" in prev:
            out["hta_cost"] = prev["hta_cost"]
    with open(OUT, "w") as fh:
        json.dump(out, fh, indent=1)
        fh.write("\n")
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
