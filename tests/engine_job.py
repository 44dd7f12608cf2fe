"""A mock engine process for the controller's exit tests: ``python engine_job.py MODE OUTPUT_DIR``.

It starts a long capture and writes ``OUTPUT_DIR/capturing`` once a few steps
are recorded (the handshake: the test sends SIGTERM when it sees the file). MODE:

- ``sigterm``: the loop runs on the main thread until the process is killed by SIGTERM;
- ``thread``: the loop runs on another thread, the main thread waits for it; killed by SIGTERM;
- ``exit``: the loop stops after 12 steps and the interpreter exits without ``close()``.

Without SIGTERM within ``tests.processes.SIGNAL_WAIT_S`` of the handshake the job
exits with ``tests.processes.LOST_SIGNAL``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import npuprofile as npp  # noqa: E402
from tests.mock_engine import MockEngine  # noqa: E402
from tests.processes import LOST_SIGNAL, SIGNAL_WAIT_S  # noqa: E402


def main() -> None:
    mode, out = sys.argv[1], Path(sys.argv[2])
    controller = npp.Controller(output_dir=out, run_id=f"exit-{mode}", coords={"tp": 0, "dp": 1})
    engine = MockEngine(controller, stages=lambda i: None, pause_s=0.005)
    controller.request(steps=1_000_000)
    limit = 12 if mode == "exit" else 200_000
    deadline: list[float] = []  # set at the handshake; checked on the main thread, where the handler runs

    def give_up_without_signal() -> None:
        if deadline and time.monotonic() > deadline[0]:
            print(f"no SIGTERM within {SIGNAL_WAIT_S:.0f} s of the handshake", file=sys.stderr, flush=True)
            os._exit(LOST_SIGNAL)

    def loop() -> None:
        for index in range(limit):
            engine.run_step(index)
            if index == 5:
                deadline.append(time.monotonic() + SIGNAL_WAIT_S)
                (out / "capturing").write_text(str(index))
            if mode == "sigterm":
                give_up_without_signal()

    if mode == "thread":
        worker = threading.Thread(target=loop, name="engine-loop")
        worker.start()
        while worker.is_alive():
            worker.join(0.1)
            give_up_without_signal()
    else:
        loop()


if __name__ == "__main__":
    main()
