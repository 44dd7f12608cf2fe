"""A profiled job for the signal and process tests: ``python signal_job.py MODE OUT_DIR [SIGNAL]``.

It prints ``ready`` once its session runs (the test then signals it, if it is
to), and ``done`` if it reaches its end. Modes:

- ``export-step``: the signal arrives while torch exports a scheduled trace
  (inside ``on_trace_ready``, from ``step()``); sent by the job itself.
- ``export-stop``: the signal arrives during the final export in ``stop()``.
- ``controller-export``: a controller's capture ends on the main thread and the signal arrives during its
  export (inside the controller's ``step()``).
- ``export-hangs``: the final export never ends (the test sends SIGTERM).
- ``worker``: the session runs on a worker thread that keeps stepping.
- ``worker-stalls``: the session's worker thread stops stepping (sleeps).
- ``native``: the main thread blocks in native code (a gloo rendezvous that waits for a missing rank).
- ``user-after-import`` / ``user-after-start``: a SIGTERM handler of the user's, set then; it writes
  ``user-handler-ran`` and exits with status 3.
- ``ignored``: SIGTERM ignored before npuprofile is imported; the job runs to its end.
- ``fork``: the job forks inside its session; the child profiles on its own and exits with status 7.
"""

from __future__ import annotations

import datetime
import os
import signal
import sys
import threading
import time

MODE, OUT = sys.argv[1], sys.argv[2]
SIGNAL = int(sys.argv[3]) if len(sys.argv) > 3 else signal.SIGTERM

if MODE == "ignored":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

import torch  # noqa: E402

if MODE == "fork":
    # GNU OpenMP's thread pool does not survive fork(): a child whose parent ran a threaded matmul hangs
    # in libgomp on its own first one (seen on 2-core AMD hosts), with or without npuprofile.
    torch.set_num_threads(1)

import npuprofile as npp  # noqa: E402


def user_handler(signum, frame):
    open(os.path.join(OUT, "user-handler-ran"), "w").close()
    sys.exit(3)


def work() -> None:
    with npp.profile_region("work"):
        x = torch.ones(32, 32)
        for _ in range(4):
            x = (x @ x).clamp(-1, 1)


def signal_inside_export(when) -> None:
    """Make torch's export send ``SIGNAL`` to this process, then carry on exporting."""
    original = torch.profiler.profile.export_chrome_trace
    calls = []

    def export(self, path):
        calls.append(path)
        if when(len(calls)):
            os.kill(os.getpid(), SIGNAL)  # the Python handler runs at the next bytecode: inside the export
            time.sleep(0.2)
        return original(self, path)

    torch.profiler.profile.export_chrome_trace = export


def ready() -> None:
    print("ready", flush=True)


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    if MODE == "user-after-import":
        signal.signal(signal.SIGTERM, user_handler)
    if MODE == "export-step":
        signal_inside_export(lambda n: n == 2)
        with npp.session(output_dir=OUT, schedule=npp.schedule(active=2)) as s:
            for _ in s.steps(range(12)):
                work()
    elif MODE == "export-stop":
        stopping = threading.Event()
        signal_inside_export(lambda n: stopping.is_set())
        with npp.session(output_dir=OUT) as s:
            for _ in s.steps(range(3)):
                work()
            stopping.set()
    elif MODE == "controller-export":
        signal_inside_export(lambda n: n == 1)
        controller = npp.Controller(output_dir=OUT)
        controller.request(steps=3)
        for _ in range(10):
            controller.step()
            work()
        controller.close()
    elif MODE == "export-hangs":
        torch.profiler.profile.export_chrome_trace = lambda self, path: (open(path, "w").write("{"), time.sleep(600))
        with npp.session(output_dir=OUT) as s:
            for _ in s.steps(range(3)):
                work()
            ready()
    elif MODE in ("worker", "worker-stalls"):
        def loop() -> None:
            with npp.session(output_dir=OUT) as s:
                for step in s.steps(range(100000)):
                    work()
                    if step == 2:
                        ready()
                        if MODE == "worker-stalls":
                            time.sleep(600)
                    time.sleep(0.005)

        worker = threading.Thread(target=loop)
        worker.start()
        worker.join()
    elif MODE == "native":
        import torch.distributed as dist

        with npp.session(output_dir=OUT) as s:
            for _ in s.steps(range(3)):
                work()
            ready()
            dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{sys.argv[4]}", rank=0, world_size=2,
                                    timeout=datetime.timedelta(seconds=60))
    elif MODE == "fork":
        with npp.session(output_dir=OUT) as s:
            for _ in s.steps(range(2)):
                work()
            pid = os.fork()
            if pid == 0:
                work()  # a region of the parent's session: inert here
                with npp.session(output_dir=OUT) as child:
                    work()
                print(f"child {os.getpid()} {child.summary().region('work').count}", flush=True)
                sys.exit(7)
            _, status = os.waitpid(pid, 0)
            print(f"child-status {os.waitstatus_to_exitcode(status)}", flush=True)
            work()
    else:
        with npp.session(output_dir=OUT) as s:
            if MODE == "user-after-start":
                signal.signal(signal.SIGTERM, user_handler)
            for step in s.steps(range(3)):
                work()
            ready()
            deadline = time.time() + (3 if MODE == "ignored" else 60)
            while time.time() < deadline:
                time.sleep(0.01)
    print("done", flush=True)


if __name__ == "__main__":
    main()
