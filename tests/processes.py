"""Child processes that tests signal: readiness handshakes, a bounded wait for the signal, clear failures.

A child says it is ready (a stdout line, or a file) once its handlers are in
place; the test then sends the signal at once. The child waits for it with
:func:`await_signal`, which gives up after :data:`SIGNAL_WAIT_S` seconds in
which no handler ran, exiting with :data:`LOST_SIGNAL`, so a lost signal fails
the test within seconds, with a message that says so. The parent's long limit
(:data:`STUCK_S`) is only reached by a child that hangs while starting or
flushing; then it is killed and the test fails naming what it waited for.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

#: Exit status of a child whose signal never came.
LOST_SIGNAL = 97
#: How long a child waits, after its handshake, for a signal the test sends at once.
SIGNAL_WAIT_S = 30.0
#: How long a child may take to start or to finish on a loaded machine before it counts as stuck.
STUCK_S = 300.0


def interactive_signals() -> None:
    """``preexec_fn`` of a child that is signalled: SIGINT at its default action, as in a process started
    from a terminal, even when this test run inherited it ignored (a background job of a shell without
    job control does), so that Python installs its Ctrl-C handler in the child."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def await_signal(seconds: float = SIGNAL_WAIT_S) -> None:
    """In the child, on the main thread: wait for the test's signal; exit with LOST_SIGNAL if none came.

    Python runs signal handlers on the main thread, so while one runs (a flush
    on a slow machine) this loop does not advance: only time without any
    handler counts against ``seconds``.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
    print(f"no signal arrived within {seconds:.0f} s of the readiness handshake", file=sys.stderr, flush=True)
    os._exit(LOST_SIGNAL)


def _tail(text: str | None) -> str:
    return (text or "")[-3000:]


def read_line(proc: "subprocess.Popen[str]", what: str, timeout: float = STUCK_S) -> str:
    """The child's next stdout line (stripped); kills the child and fails if it ends or stays silent.

    Read the child's first lines only through this function (it waits on the
    pipe itself, not on what a reader buffered).
    """
    assert proc.stdout is not None
    readable, _, _ = select.select([proc.stdout], [], [], timeout)
    if not readable:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"{what}: the child said nothing within {timeout:.0f} s; killed it:\n{_tail(err)}")
    line = proc.stdout.readline()
    if not line:
        _, err = proc.communicate()
        raise AssertionError(f"{what}: the child ended ({proc.returncode}) before its handshake:\n{_tail(err)}")
    return line.strip()


def wait_exit(proc: "subprocess.Popen[str]", what: str, timeout: float = STUCK_S) -> tuple[str, str]:
    """The child's (stdout, stderr) once it exits; fails clearly on a lost signal or a stuck child (killed)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"{what}: the child still ran after {timeout:.0f} s; killed it:\n{_tail(err)}") from None
    if proc.returncode == LOST_SIGNAL:
        raise AssertionError(f"{what}: the child never received its signal (lost):\n{_tail(err)}")
    return out, err
