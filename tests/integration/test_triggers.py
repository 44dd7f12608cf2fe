"""``npuprofile trigger`` run by several processes at once, and state files that are not ours."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import npuprofile as npp
from npuprofile.sessions.on_demand import TRIGGER_FILE, control_dir

ROOT = Path(__file__).resolve().parents[2]

# Each process imports the command line first, then waits for the same instant to run it, so the
# triggers' checks and writes overlap as closely as processes can make them.
AT_ONCE = (
    "import sys, time\n"
    "from npuprofile.cli.main import main\n"
    "start = float(sys.argv[1])\n"
    "time.sleep(max(0.0, start - time.time()))\n"
    "sys.exit(main(['trigger', sys.argv[2], '--steps', '2']))\n"
)


def triggers_at_once(directory: Path, count: int) -> list[subprocess.CompletedProcess[str]]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    start = time.time() + 3.0
    procs = [subprocess.Popen([sys.executable, "-c", AT_ONCE, repr(start), str(directory)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(count)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


def test_exactly_one_of_concurrent_triggers_wins(tmp_path) -> None:
    armed = npp.on_demand(output_dir=tmp_path, poll_interval=3600, trace=False)  # armed, never looks
    try:
        for round_ in range(6):
            (control_dir(tmp_path) / TRIGGER_FILE).unlink(missing_ok=True)
            results = triggers_at_once(tmp_path, 5)
            codes = sorted(r.returncode for r in results)
            assert codes == [0, 2, 2, 2, 2], (round_, [(r.returncode, r.stderr) for r in results])
            refused = [r.stderr.strip() for r in results if r.returncode == 2]
            assert all(len(e.splitlines()) == 1 and "still pending" in e for e in refused), refused
            winner = next(r for r in results if r.returncode == 0)
            written = json.loads((control_dir(tmp_path) / TRIGGER_FILE).read_text())
            assert written["id"] in winner.stdout and written["steps"] == 2
    finally:
        armed.close()


@pytest.mark.parametrize("pid", ["Infinity", "NaN", '"inf"', "-1", str(2**70), "[1]", "true", "1.5"])
def test_a_malformed_state_file_is_reported_in_one_line(tmp_path, pid) -> None:
    control = control_dir(tmp_path)
    control.mkdir(parents=True)
    state = control / "bad.rank0.host_1.state.json"
    state.write_text('{"pid": %s, "host": "%s", "rank": 0, "armed_at": 0, "handled": []}' % (pid, os.uname().nodename))
    result = subprocess.run([sys.executable, "-m", "npuprofile", "trigger", str(tmp_path)], capture_output=True,
                            text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "state file" in line]
    assert len(lines) == 1 and str(state) in lines[0] and "malformed" in lines[0], result.stderr
