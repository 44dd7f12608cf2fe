"""Traces for the analysis tests: real ones from the CPU profiler, and hand-made torch_npu layouts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import npuprofile
from npuprofile import profile_region, profiled

REGIONS = ("step", "forward", "layer.0", "layer.1", "attention", "mlp", "loader")


def _model() -> Any:
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = nn.Linear(32, 32)
            self.mlp = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 32))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            with profile_region("attention"):
                x = x + torch.softmax(self.attn(x), dim=-1)
            with profile_region("mlp"):
                x = x + self.mlp(x)
            return x

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.ModuleList(Block() for _ in range(2))

        @profiled("forward")
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for index, block in enumerate(self.blocks):
                with profile_region(f"layer.{index}"):
                    x = block(x)
            return x

    return Net().eval()


def npuprofile_trace(directory: Path, *, steps: int = 4, gzip: bool = False, with_stack: bool = False,
                     profile_memory: bool = False, schedule: Any = None) -> tuple[Any, Path]:
    """Profile a small model through an npuprofile session on the CPU backend; return (session, trace)."""
    import torch

    torch.manual_seed(0)
    model = _model()
    if schedule is None:
        schedule = npuprofile.schedule(wait=0, warmup=1, active=steps - 1, repeat=1)
    session = npuprofile.session(
        backend="cpu", output_dir=directory, record_shapes=True, with_stack=with_stack,
        profile_memory=profile_memory, gzip=gzip, schedule=schedule,
    )
    with session, torch.no_grad():
        for _ in session.steps(range(steps)):
            with profile_region("step"):
                with profile_region("loader"):
                    batch = torch.randn(8, 16, 32)
                model(batch)
    traces = [p for p in session.trace_paths if p.is_file()]
    assert len(traces) == 1, session.trace_paths
    return session, traces[0]


def torch_trace(path: Path, *, steps: int = 3) -> dict[str, tuple[int, float, float]]:
    """A trace written by ``torch.profiler`` alone; returns its op table ``name -> (count, self_us, total_us)``."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function, schedule

    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.GELU(), torch.nn.Linear(128, 8))
    table: dict[str, tuple[int, float, float]] = {}

    def ready(prof: Any) -> None:
        prof.export_chrome_trace(str(path))
        for event in prof.key_averages():
            table[event.key] = (int(event.count), float(event.self_cpu_time_total), float(event.cpu_time_total))

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True, profile_memory=True,
                 schedule=schedule(wait=0, warmup=1, active=steps, repeat=1), on_trace_ready=ready) as prof:
        for _ in range(steps + 1):
            with record_function("train_step"):
                model(torch.randn(32, 64)).sum()
            with record_function("optimizer"):
                torch.ones(64, 64).mul_(0.5).sum(dim=0)
            prof.step()
    assert table, "the profiler schedule never completed"
    return table


def ascend_trace_events() -> list[dict[str, Any]]:
    """A small ``trace_view.json`` as torch_npu writes it: a top-level array, ``ts`` as strings."""
    def x(name: str, pid: int, ts: float, dur: float, cat: str | None = None, tid: int = 1) -> dict[str, Any]:
        event = {"ph": "X", "name": name, "pid": pid, "tid": tid, "ts": f"{ts:.3f}", "dur": dur,
                 "args": {"Sequence number": 1}}
        if cat:
            event["cat"] = cat
        return event

    meta = [
        {"ph": "M", "name": "process_name", "pid": 10, "tid": 0, "args": {"name": "Python"}},
        {"ph": "M", "name": "process_name", "pid": 20, "tid": 0, "args": {"name": "Ascend Hardware"}},
        {"ph": "M", "name": "process_name", "pid": 30, "tid": 0, "args": {"name": "Overlap Analysis"}},
        {"ph": "M", "name": "process_name", "pid": 40, "tid": 0, "args": {"name": "HCCL"}},
    ]
    base = 1_700_000_000_000_000.0
    events: list[dict[str, Any]] = []
    for step in (1, 2):
        t = base + (step - 1) * 1000
        events += [
            x(f"ProfilerStep#{step}", 10, t, 900, "cpu_op"),
            x("forward", 10, t + 10, 800, "user_annotation"),
            x("aten::matmul", 10, t + 20, 300, "cpu_op"),
            x("aten::mm", 10, t + 30, 200, "cpu_op"),
            x("aten::add", 10, t + 400, 100, "cpu_op"),
            x("MatMul_kernel", 20, t + 50, 250),
            x("Add_kernel", 20, t + 420, 60),
            x("Computing", 30, t + 50, 250),
            x("hcom_allReduce_", 40, t + 600, 120),
        ]
    return meta + events


def write_ascend_layout(root: Path) -> Path:
    """``root/<worker>_<pid>_<time>_ascend_pt/ASCEND_PROFILER_OUTPUT/trace_view.json``; returns the file."""
    folder = root / "host_1234_20250101120000000_ascend_pt" / "ASCEND_PROFILER_OUTPUT"
    folder.mkdir(parents=True)
    path = folder / "trace_view.json"
    path.write_text(json.dumps(ascend_trace_events()))
    return path


_SHARED: dict[str, Any] = {}


def shared_traces() -> dict[str, Any]:
    """Real traces made once per test process (read-only for tests): sessions, paths, torch's op table."""
    if not _SHARED:
        import atexit
        import shutil
        import tempfile

        root = Path(tempfile.mkdtemp(prefix="npuprofile-traces-"))
        atexit.register(shutil.rmtree, root, True)
        session, plain = npuprofile_trace(root / "plain", steps=5, with_stack=True, profile_memory=True)
        packed_session, packed = npuprofile_trace(root / "packed", steps=4, gzip=True)
        torch_path = root / "torch" / "worker.1.pt.trace.json"
        torch_path.parent.mkdir()
        table = torch_trace(torch_path)
        _SHARED.update(root=root, session=session, plain=plain, packed_session=packed_session, packed=packed,
                       torch=torch_path, torch_table=table)
    return _SHARED


# -- kineto-like traces written by hand (host ops, runtime calls, device activities) ---------------------
def x_event(name: str, ts: float, dur: float, *, pid: Any = 1, tid: Any = 1, cat: str | None = "cpu_op",
            **args: Any) -> dict[str, Any]:
    """One complete event; keyword arguments become its ``args``."""
    event: dict[str, Any] = {"ph": "X", "name": name, "pid": pid, "tid": tid, "ts": ts, "dur": dur}
    if cat is not None:
        event["cat"] = cat
    if args:
        event["args"] = args
    return event


def process(pid: Any, name: str, labels: str | None = None) -> list[dict[str, Any]]:
    """Metadata events naming a process (and its labels)."""
    events = [{"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": name}}]
    if labels is not None:
        events.append({"ph": "M", "name": "process_labels", "pid": pid, "tid": 0, "args": {"labels": labels}})
    return events


def launch(name: str, ts: float, corr: int, *, kernel_ts: float, kernel_dur: float, stream: int = 7,
           kernel: str = "sgemm", cat: str = "kernel", pid: int = 1, tid: int = 1,
           device: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """A runtime call on the host and the device activity it launched (linked by ``correlation``)."""
    host = x_event(name, ts, 2.0, pid=pid, tid=tid, cat="cuda_runtime", correlation=corr)
    work = x_event(kernel, kernel_ts, kernel_dur, pid=device, tid=stream, cat=cat, correlation=corr,
                   stream=stream, device=device)
    return host, work


def write_trace(path: Path, events: list[dict[str, Any]], **metadata: Any) -> Path:
    """A torch-layout trace file holding ``events`` (and top-level ``metadata``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"schemaVersion": 1, **metadata, "traceEvents": events}))
    return path


def hta_view(source: Path, target: Path) -> Path:
    """``source`` as HTA 0.5 reads it: events with sub-microsecond times start at the next whole
    microsecond and end at the previous one (HTA's workaround for overlapping nanosecond events)."""
    import gzip
    import math

    with gzip.open(source, "rt") if source.name.endswith(".gz") else open(source) as handle:
        doc = json.load(handle)
    for event in doc["traceEvents"] if isinstance(doc, dict) else doc:
        if event.get("ph") == "X" and isinstance(event.get("ts"), float):
            end = event["ts"] + event.get("dur", 0)
            event["ts"] = math.ceil(event["ts"])
            event["dur"] = math.floor(end) - event["ts"]
    target.write_text(json.dumps(doc))
    return target
