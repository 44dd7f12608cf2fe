"""Recursion through ``@profiled``: Python frames per call and C stack, in fresh interpreters.

The interpreter counts every Python frame against the recursion limit, so a
wrapper frame per call halves the levels a recursion reaches: ``@profiled``
must cost exactly that one frame per call (idle or in a session) and nothing
more. The wrapper is generated with the function's own parameters, so it calls
the function without ``*args``/``**kwargs`` packing and without a C-level call:
with a raised limit, recursion through it uses the same Python-frame budget as
bare recursion and never overflows the C stack (a crash would be exit -11)
before bare code would. Each case runs in its own interpreter, so a crash is
seen as that case's exit status.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import npuprofile as npp

    kind, limit = sys.argv[1], int(sys.argv[2])
    reached, depth_at = [0], {}

    def stack_depth():
        frame, depth = sys._getframe(1), 0
        while frame is not None:
            frame, depth = frame.f_back, depth + 1
        return depth

    def note(k):
        reached[0] = k
        if k in (0, 50):
            depth_at[k] = stack_depth()

    def bare(k):
        note(k)
        return bare(k + 1)

    @npp.profiled
    def function(k):
        note(k)
        return function(k + 1)

    class Model:
        @npp.profiled
        def forward(self, k):
            note(k)
            return self.forward(k + 1)

    sys.setrecursionlimit(limit)
    start = {"bare": lambda: bare(0), "function": lambda: function(0), "method": lambda: Model().forward(0)}
    name, _, mode = kind.partition(" ")
    session = npp.session(trace=False) if mode == "active" else None
    if session is not None:
        session.start()
    try:
        start[name]()
    except RecursionError:
        pass
    if session is not None:
        session.stop()
        assert session.summary().regions[0].count == reached[0] + 1  # every level was a region
    print(json.dumps({"levels": reached[0] + 1, "frames_per_level": (depth_at[50] - depth_at[0]) / 50}))
    """
)

KINDS = ("function idle", "method idle", "function active", "method active")
#: The default limit, and a raised one far past where a C-level call per level overflows an 8 MB C stack.
LIMITS = (1_000, 100_000)


def deepest(kind: str, limit: int) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", SCRIPT, kind, str(limit)], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, (kind, limit, done.returncode, done.stderr[-2000:])  # a C stack overflow: -11
    result: dict[str, float] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize("limit", LIMITS)
def test_profiled_recursion_costs_one_frame_per_call_and_no_c_stack(limit: int) -> None:
    bare = deepest("bare", limit)
    assert bare["frames_per_level"] == 1
    assert bare["levels"] >= limit - 20  # bare recursion runs up to the limit itself
    for kind in KINDS:
        decorated = deepest(kind, limit)
        assert decorated["frames_per_level"] == 2, (kind, decorated)  # the wrapper's frame and the function's
        frames = decorated["levels"] * decorated["frames_per_level"]
        assert abs(frames - bare["levels"]) <= 10, (kind, limit, decorated, bare)  # the same frame budget
