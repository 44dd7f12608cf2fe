"""A small torch.distributed job the distributed tests launch, one process per rank.

Usage: ``python dist_job.py SCENARIO OUTPUT_DIR`` with RANK, WORLD_SIZE,
MASTER_ADDR and MASTER_PORT set. Scenarios:

- ``steps``: STEPS steps of a region ``compute`` (rank SLOW_RANK sleeps longer in it)
  and a region ``allreduce``; then ``summary(all_ranks=True)``, saved by rank 0.
- ``die``: like ``steps`` with a trace every 2 steps; rank DIE_RANK ends with
  ``os._exit`` after DIE_AFTER steps.
- ``on_demand``: an armed loop (``npuprofile.on_demand``) that runs until the
  file ``OUTPUT_DIR/stop`` appears or MAX_STEPS steps have run.
- ``controller``: each rank has coordinates ``tp=<rank>, dp=0`` and a
  ``npuprofile.Controller``; one capture of 3 steps from engine step 2, then a
  session whose ``summary(all_ranks=True)`` rank 0 saves.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

import npuprofile as npp


def work(rank: int, slow_rank: int) -> None:
    with npp.profile_region("compute"):
        torch.ones(32, 32) @ torch.ones(32, 32)
        time.sleep(0.06 if rank == slow_rank else 0.001)
    with npp.profile_region("allreduce"):
        dist.all_reduce(torch.ones(4))


def main() -> None:
    scenario = sys.argv[1]
    # A loaded machine (the suite beside other work on 2 cores) starts ranks tens of seconds apart;
    # in ``die`` the survivors' collectives with the dead rank must fail soon.
    timeout = 20 if scenario == "die" else 120
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=timeout))
    try:
        run(scenario, Path(sys.argv[2]))
    finally:
        dist.destroy_process_group()
    # Skip interpreter teardown. A gloo worker thread frees a finished collective's tensors
    # some time after the collective returns, and freeing a tensor that Python has seen takes
    # the GIL; while the interpreter finalizes, that thread is ended inside a C++ destructor
    # and the process aborts ("terminate called without an active exception", a core of this
    # job shows ProcessGroupGloo::runLoop in ~AsyncAllgatherWork). destroy_process_group()
    # does not wait for those threads. Everything this job writes is written and closed above.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run(scenario: str, out: Path) -> None:
    rank = dist.get_rank()
    steps = int(os.environ.get("STEPS", "4"))
    slow_rank = int(os.environ.get("SLOW_RANK", "-1"))
    if scenario == "steps":
        with npp.session(output_dir=out) as s:
            for _ in s.steps(range(steps), warmup=1):
                work(rank, slow_rank)
        (out / f"session.rank{rank}.json").write_text(
            json.dumps({"run_id": s.run_id, "selected": s.selected, "traces": [str(p) for p in s.trace_paths]})
        )
        summary = s.summary(all_ranks=True)
        if rank == 0:
            summary.to_json(out / "all_ranks.json")
            (out / "all_ranks.txt").write_text(str(summary))
        selected_dir = Path(os.environ["SELECT_DIR"])
        with npp.session(output_dir=selected_dir, ranks=os.environ["SELECT"], trace=True) as chosen:
            for _ in chosen.steps(range(2)):
                work(rank, slow_rank)
        gathered = chosen.summary(all_ranks=True)
        if rank == 0:
            gathered.to_json(selected_dir / "all_ranks.json")
    elif scenario == "die":
        die_rank, die_after = int(os.environ["DIE_RANK"]), int(os.environ["DIE_AFTER"])
        with npp.session(output_dir=out, schedule=npp.schedule(active=2)) as s:
            for step in s.steps(range(steps)):
                if rank == die_rank and step == die_after:
                    os._exit(3)
                work(rank, slow_rank)
    elif scenario == "on_demand":
        max_steps = int(os.environ.get("MAX_STEPS", "2000"))
        signal_name = os.environ.get("OD_SIGNAL") or None
        armed = npp.on_demand(output_dir=out, steps=int(os.environ.get("OD_STEPS", "3")),
                              signal=signal_name, poll_interval=0.02)
        (out / f"armed.rank{rank}").write_text(str(os.getpid()))
        for step in armed.steps(range(max_steps)):
            with npp.profile_region("compute"):
                torch.ones(16, 16) @ torch.ones(16, 16)
            time.sleep(0.01)
            if (out / "stop").exists():
                break
        armed.close()
        (out / f"done.rank{rank}.json").write_text(json.dumps({"captures": armed.captures}))
    elif scenario == "controller":
        coords = {"tp": rank, "dp": 0}
        controller = npp.Controller(output_dir=out, coords=coords)
        capture = controller.request(steps=3, start_step=2)
        for _ in range(7):
            controller.step()
            work(rank, slow_rank)
        files = capture.wait(60)
        controller.close()
        (out / f"capture.rank{rank}.json").write_text(json.dumps({"run_id": capture.run_id, "files": files}))
        with npp.session(output_dir=out / "session", coords=coords) as s:
            for _ in s.steps(range(2)):
                work(rank, slow_rank)
        gathered = s.summary(all_ranks=True)
        if rank == 0:
            gathered.to_json(out / "all_ranks.json")
            (out / "all_ranks.txt").write_text(gathered.rank_table())
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")


if __name__ == "__main__":
    main()
