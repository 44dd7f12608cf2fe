"""How often does ``npuprofile compare`` flag a row when nothing changed, and does it see a real slowdown?

Runs the same CPU workload (a timer-only session: matmuls, element-wise ops,
plain Python, a short sleep; one region each) as separate processes, in
pairs, and compares each pair. Every row flagged ``slower`` or ``faster`` in a
pair of identical runs is a false positive; the target is at most one over
all pairs. Then one pair where the matmul region does 25% more work (5
matmuls instead of 4) checks that the slowdown is found.

    python benchmarks/compare_false_positives.py [--pairs 10] [--steps 30] [--threshold 5%] [--runs-per-side K]

With ``--runs-per-side K`` (K >= 2) each pair is K base runs and K new runs,
made in K rounds of one base and one new run (at the same time, or one after
the other with ``--sequential``: base, new, base, new, ...), and compared with
the run as the sample.

Prints each pair's flagged rows, the total count of false positives over the
rows tested, and whether the slowdown was detected; exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MATMULS = 4


#: Paced regions: (name, mean seconds, spread of the log-normal jitter). A paced region spins until its
#: drawn duration has passed, so what the timer sees is what was drawn, whatever else runs on the machine.
PACED = (("matmul", 0.0016, 0.05), ("elementwise", 0.0008, 0.1), ("python", 0.0004, 0.2), ("sleep", 0.0002, 0.3))


def work(steps: int, slower: float, output: Path, priority: int, workload: str, seed: int) -> None:
    """One run: the workload in a timer-only session, its summary written to ``output``.

    ``slower``: the factor by which the matmul region's work grows (1.25: 25% more).
    """
    import os

    import torch

    import npuprofile as npp

    if priority:
        os.nice(-priority)  # PermissionError unless allowed: then the run would not be what was asked
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = random.Random(seed)
    a = torch.randn(160, 160)
    x = torch.randn(100_000)
    matmuls = round(MATMULS * slower)
    print("ready", flush=True)
    sys.stdin.readline()
    with npp.session(trace=False, backend="cpu") as session:
        for _ in session.steps(range(steps), warmup=3):
            if workload == "paced":
                for name, seconds, spread in PACED:
                    scale = slower if name == "matmul" else 1.0
                    with npp.profile_region(name):
                        _spin(seconds * scale * rng.lognormvariate(-spread * spread / 2, spread))
                continue
            with npp.profile_region("matmul"):
                for _ in range(matmuls):
                    a = torch.tanh(a @ a)
            with npp.profile_region("elementwise"):
                x.relu().mul(2.0).add(1.0).sum()
            with npp.profile_region("python"):
                sum(i * i for i in range(5_000))
            with npp.profile_region("sleep"):
                time.sleep(0.001)
    session.summary().to_json(output)


def _spin(seconds: float) -> None:
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


def run_pair(folder: Path, label: str, args: argparse.Namespace, slower: float = 1.0) -> tuple[Path, Path]:
    """Two runs (base, new). ``together``: both start their session at the same moment (each waits, ready,
    for a go on stdin), so they share whatever else loads the machine; else one after the other."""
    outputs = (folder / f"{label}-base.summary.json", folder / f"{label}-new.summary.json")
    commands = [[sys.executable, __file__, "--worker", str(output), "--steps", str(args.steps), "--slower", str(factor),
                 "--priority", str(args.priority), "--workload", args.workload, "--seed", str(random.randrange(2**32))]
                for output, factor in zip(outputs, (1.0, slower))]
    if not args.sequential:
        workers = [subprocess.Popen(c, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for c in commands]
        for worker in workers:
            assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        codes = [worker.wait() for worker in workers]
    else:
        codes = [subprocess.run(c, input="go\n", stdout=subprocess.DEVNULL, text=True).returncode for c in commands]
    if any(codes):
        raise SystemExit(f"a worker failed: exit codes {codes}")
    return outputs


def run_sides(folder: Path, label: str, args: argparse.Namespace, slower: float = 1.0) -> tuple[Any, Any]:
    """One run per side (paths), or ``args.runs_per_side`` per side (lists), the two sides' runs interleaved."""
    rounds = [run_pair(folder, f"{label}-run{i}", args, slower) for i in range(args.runs_per_side)]
    if args.runs_per_side == 1:
        return rounds[0]
    return [base for base, _ in rounds], [new for _, new in rounds]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threshold", default="5%")
    parser.add_argument("--sequential", action="store_true",
                        help="run the two runs of a pair one after the other instead of at the same time")
    parser.add_argument("--priority", type=int, default=0,
                        help="raise the runs' scheduling priority by N (nice -N; needs the right to), so that "
                             "other jobs on a shared machine weigh less on the timings")
    parser.add_argument("--runs-per-side", type=int, default=1, metavar="K",
                        help="runs per side of each pair (default 1); with 2 or more the run is the sample")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workload", choices=("compute", "paced"), default="compute",
                        help="compute: matmuls, element-wise ops, Python, a sleep; paced: regions that spin for "
                             "durations drawn at random (known noise, untouched by the machine's load)")
    parser.add_argument("--slower", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.runs_per_side < 1:
        parser.error(f"--runs-per-side {args.runs_per_side} is not allowed; allowed: 1 or more")
    if args.worker is not None:
        work(args.steps, args.slower, args.worker, args.priority, args.workload, args.seed)
        return 0

    from npuprofile.analysis.compare import compare

    flagged = tested = 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"== {args.pairs} pairs of identical runs of the {args.workload} workload, {args.steps} steps each, "
              f"threshold {args.threshold}, runs of a pair {'one after the other' if args.sequential else 'at the same time'}"
              f", priority +{args.priority}, {args.runs_per_side} run(s) per side")
        for pair in range(args.pairs):
            base, new = run_sides(folder, f"pair{pair}", args)
            result = compare(base, new, threshold=args.threshold)
            hits = [row for row in result.rows if row.verdict in ("slower", "faster")]
            flagged += len(hits)
            tested += result.tested
            changes = ", ".join(f"{row.name} {100 * (row.change or 0):+.1f}%" for row in result.rows if row.tested)
            marks = "; ".join(f"FLAGGED {row.kind} {row.name} {row.verdict}" for row in hits) or "none flagged"
            print(f"pair {pair}: {changes}  -> {marks}")
        print(f"false positives: {flagged} flagged of {tested} rows tested over {args.pairs} pairs (target: at most 1)")
        base, slow = run_sides(folder, "slowdown", args, 1.25)
        matmul = compare(base, slow, threshold=args.threshold).row("region", "matmul")
        found = matmul.verdict == "slower"
        print(f"25% more matmul work: change {100 * (matmul.change or 0):+.1f}% "
              f"[{100 * (matmul.ci_low or 0):+.1f}%, {100 * (matmul.ci_high or 0):+.1f}%] -> {matmul.verdict} "
              f"({'detected' if found else 'MISSED'})")
    ok = flagged <= 1 and found
    print("result: " + ("ok" if ok else "MISSED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
