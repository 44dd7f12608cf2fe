"""Recursion through ``@profiled``: how much of the interpreter's recursion limit a decorated call uses.

Measured in a fresh interpreter at the default limit. A decorated method looked
up while no session runs is the plain bound method, so recursion through it is
as deep as bare code. Calling a decorated function goes through the wrapper
object's C-level call, which the interpreter counts as one more level, so
idle recursion through a decorated function reaches half the bare depth: one
extra frame per call, never more.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json
    import npuprofile as npp

    def bare(k):
        bare.reached = k
        return bare(k + 1)

    @npp.profiled
    def decorated(k):
        decorated.__wrapped__.reached = k
        return decorated(k + 1)

    class Model:
        @npp.profiled
        def forward(self, k):
            self.reached = k
            return self.forward(k + 1)

    def run(start):
        try:
            start()
        except RecursionError:
            pass

    out = {}
    run(lambda: bare(0)); out["bare"] = bare.reached
    run(lambda: decorated(0)); out["function idle"] = decorated.__wrapped__.reached
    model = Model(); run(lambda: model.forward(0)); out["method idle"] = model.reached
    with npp.session(trace=False):
        run(lambda: decorated(0)); out["function active"] = decorated.__wrapped__.reached
        model = Model(); run(lambda: model.forward(0)); out["method active"] = model.reached
    print(json.dumps(out))
    """
)


def test_usable_recursion_depth_through_profiled() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=True)
    depths = json.loads(result.stdout)
    bare = depths["bare"]
    assert bare > 500
    # @profiled is one plain Python wrapper frame per call (what Dynamo can trace), so a decorated
    # recursion reaches about half the bare depth, methods and functions alike; never less.
    assert depths["method idle"] >= 0.45 * bare
    assert depths["function idle"] >= 0.45 * bare
    assert depths["function active"] >= 0.3 * bare and depths["method active"] >= 0.3 * bare
