"""SIGTERM and Ctrl-C at random moments of a job whose time goes mostly into exporting traces.

Each run starts a job that traces every step (``schedule(active=1)``, so torch
exports a trace at each step) onto a slow disk (each export takes 100 ms more,
so most of the job's time is spent inside torch's ``on_trace_ready``), waits a
random 1-4 s, and sends SIGTERM (even runs) or SIGINT (odd runs). A run is good when the job ends by that signal
(exit status -15 / -2), its session summary is on disk and no partial file is
left. Prints each run and the tally; exits non-zero unless every run is good.

    python benchmarks/signal_storm.py [--runs 8] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

JOB = """
import sys, time, torch
import npuprofile as npp

export = torch.profiler.profile.export_chrome_trace


def slow_export(self, path):  # a slow disk: the export, then 100 ms before torch's handler returns
    export(self, path)
    time.sleep(0.1)


torch.profiler.profile.export_chrome_trace = slow_export
session = npp.session(output_dir=sys.argv[1], schedule=npp.schedule(active=1))
session.start()
print("ready", flush=True)
x = torch.ones(8, 8)
for _ in range(100000):
    with npp.profile_region("work"):
        for _ in range(100):
            x = x + 1
    session.step()
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    chance = random.Random(args.seed)
    good = 0
    env = dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH", str(ROOT)))
    with tempfile.TemporaryDirectory(prefix="npuprofile-storm-") as scratch:
        for run in range(args.runs):
            out = Path(scratch) / f"run{run}"
            sig = signal.SIGTERM if run % 2 == 0 else signal.SIGINT
            proc = subprocess.Popen([sys.executable, "-c", JOB, str(out)], env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            assert proc.stdout is not None
            proc.stdout.readline()
            time.sleep(chance.uniform(1.0, 4.0))
            proc.send_signal(sig)
            code = proc.wait(timeout=300)
            summaries = list(out.glob("*.summary.json"))
            partial = [p for p in out.iterdir() if p.name.startswith(".")] if out.exists() else []
            ok = code == -sig and len(summaries) == 1 and not partial
            good += ok
            print(f"run {run}: {sig.name:7s} exit {code:4d}, {len(summaries)} summary, {len(partial)} partial file(s)"
                  f"{'' if ok else '  BAD'}", flush=True)
    print(f"{good} of {args.runs} runs ended by their signal with the summary on disk and nothing partial")
    return 0 if good == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
