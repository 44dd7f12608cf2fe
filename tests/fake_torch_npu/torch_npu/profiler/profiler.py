"""Fake of torch_npu.profiler.profiler.

Same signatures as torch-npu 2.14.0; recording is delegated to the stock CPU
``torch.profiler`` so analysed traces hold real events. Output layout as the
real one: ``{dir}/{worker}_{pid}_{YYYYmmddHHMMSSfff}_ascend_pt/`` with raw data,
and after analysis ``ASCEND_PROFILER_OUTPUT/trace_view.json`` (a JSON array of
events whose ``ts`` are strings) or ``ascend_pytorch_profiler_{rank}.db``.
"""

import json
import os
import socket
import sqlite3
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Optional

import torch
import torch.profiler

from torch_npu import _fake
from torch_npu._C._profiler import ProfilerActivity

from ._constant import Constant, print_warn_msg
from .experimental_config import _ExperimentalConfig
from .scheduler import ProfilerAction, _default_schedule_fn

__all__ = ["supported_activities", "analyse", "tensorboard_trace_handler", "profile"]

RAW_DIR = "FRAMEWORK"
RAW_TRACE = "fake_raw_trace.json"
INFO = "profiler_info.json"


def supported_activities():
    return {ProfilerActivity.CPU, ProfilerActivity.NPU}


class _PathState:
    """Process-wide output settings, as torch_npu keeps them (the last handler made wins)."""

    worker_name = None
    dir_path = None


def _create_prof_dir():
    base = _PathState.dir_path or os.getcwd()
    worker = "{}_{}".format(_PathState.worker_name or socket.gethostname(), os.getpid())
    now = datetime.now(tz=timezone.utc).astimezone().strftime("%Y%m%d%H%M%S%f")[:-3]
    path = os.path.join(base, f"{worker}_{now}_ascend_pt")
    os.makedirs(path, exist_ok=False)
    return path


def tensorboard_trace_handler(dir_name: Optional[str] = None, worker_name: Optional[str] = None,
                              analyse_flag: bool = True, async_mode: bool = False):
    _fake.record("tensorboard_trace_handler", dir_name=dir_name, worker_name=worker_name,
                 analyse_flag=analyse_flag, async_mode=async_mode)
    if worker_name is None or (isinstance(worker_name, str) and worker_name
                               and len(worker_name) < Constant.MAX_WORKER_NAME_LENGTH):
        _PathState.worker_name = worker_name
    else:
        print_warn_msg("Invalid parameter worker_name, reset it to default.")
        _PathState.worker_name = None
    if dir_name is None or (isinstance(dir_name, str) and dir_name):
        _PathState.dir_path = os.path.realpath(dir_name) if dir_name else None
    else:
        print_warn_msg("Invalid parameter dir_name, reset it to default.")
        _PathState.dir_path = None
    if not isinstance(analyse_flag, bool):
        print_warn_msg("analyse_flag is not bool, set by default.")
        analyse_flag = True
    if not isinstance(async_mode, bool):
        print_warn_msg("async_mode is not bool, set by default.")
        async_mode = False

    def handler_fn(prof_inst) -> None:
        if analyse_flag:
            prof_inst.prof_if.analyse(async_mode=async_mode)

    handler_fn.analyse_flag = analyse_flag
    return handler_fn


class _ProfInterface:
    def __init__(self, activities, record_shapes, profile_memory, with_stack, with_flops, with_modules,
                 experimental_config, schedule):
        self.activities = set(activities) if activities else supported_activities()
        self.record_shapes = record_shapes
        self.profile_memory = profile_memory
        self.with_stack = with_stack
        self.with_flops = with_flops
        self.with_modules = with_modules
        self.experimental_config = experimental_config if experimental_config is not None else _ExperimentalConfig()
        self.schedule = schedule
        self.prof_path = ""
        self._torch_profiler = None
        self._check_params()

    def _check_params(self):
        if not self.activities <= supported_activities():
            print_warn_msg("Invalid activities, only CPU and NPU are supported, reset it to default.")
            self.activities = supported_activities()
        for name in ("record_shapes", "profile_memory", "with_stack", "with_flops", "with_modules"):
            if not isinstance(getattr(self, name), bool):
                print_warn_msg(f"Parameter {name} is of boolean type, reset it to False.")
                setattr(self, name, False)
        if not isinstance(self.experimental_config, _ExperimentalConfig):
            print_warn_msg("Parameter experimental_config is an instance of _ExperimentalConfig, reset it to default.")
            self.experimental_config = _ExperimentalConfig()
        if ProfilerActivity.NPU not in self.activities:
            print_warn_msg("Experimental config will not be used while ProfilerActivity.NPU is not set.")

    def init_trace(self):
        self.prof_path = _create_prof_dir()
        _fake.record("init_trace", prof_path=self.prof_path)

    def warmup_trace(self):
        pass

    def start_trace(self):
        self._torch_profiler = torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU],
            record_shapes=self.record_shapes,
            profile_memory=self.profile_memory,
            with_stack=self.with_stack,
            with_flops=self.with_flops,
            with_modules=self.with_modules,
        )
        self._torch_profiler.start()

    def stop_trace(self):
        if ProfilerActivity.NPU in self.activities:
            torch.npu.synchronize()
        if self._torch_profiler is not None:
            self._torch_profiler.stop()

    def finalize_trace(self):
        raw = os.path.join(self.prof_path, RAW_DIR)
        os.makedirs(raw, exist_ok=True)
        if self._torch_profiler is not None:
            self._torch_profiler.export_chrome_trace(os.path.join(raw, RAW_TRACE))
            self._torch_profiler = None
        info = {"experimental_config": self.experimental_config.as_dict(), "record_shapes": self.record_shapes}
        with open(os.path.join(self.prof_path, INFO), "w", encoding="utf-8") as handle:
            json.dump(info, handle)

    def delete_prof_dir(self):
        import shutil

        shutil.rmtree(self.prof_path, ignore_errors=True)

    def analyse(self, analysis_type="tensorboard_trace_handler", output_path=None, **kwargs):
        try:
            _analyse_dir(self.prof_path, self.experimental_config.export_type)
        except Exception as exc:  # the real one prints parse failures instead of raising
            print_warn_msg(f"Profiling data parsing failed, error: {exc}")


def _rank():
    return int(os.environ.get("RANK", "0") or 0)


def _analyse_dir(prof_path, export_type):
    _fake.record("analyse_dir", prof_path=prof_path, export_type=list(export_type))
    with open(os.path.join(prof_path, RAW_DIR, RAW_TRACE), encoding="utf-8") as handle:
        events = json.load(handle).get("traceEvents", [])
    output = os.path.join(prof_path, Constant.OUTPUT_DIR)
    os.makedirs(output, exist_ok=True)
    if Constant.Text in export_type:
        view = []
        for event in events:
            event = dict(event)
            if "ts" in event:
                event["ts"] = f"{float(event['ts']):.3f}"
            view.append(event)
        with open(os.path.join(output, Constant.TRACE_VIEW), "w", encoding="utf-8") as handle:
            json.dump(view, handle)
    if Constant.Db in export_type:
        with sqlite3.connect(os.path.join(output, f"ascend_pytorch_profiler_{_rank()}.db")) as db:
            db.execute("CREATE TABLE IF NOT EXISTS PYTORCH_API (name TEXT, startNs INTEGER, endNs INTEGER)")
            db.executemany(
                "INSERT INTO PYTORCH_API VALUES (?, ?, ?)",
                [(e.get("name"), int(float(e["ts"]) * 1000), int((float(e["ts"]) + float(e.get("dur", 0))) * 1000))
                 for e in events if "ts" in e],
            )


_TRANSITIONS = {
    (ProfilerAction.NONE, ProfilerAction.WARMUP): ("init_trace", "warmup_trace"),
    (ProfilerAction.NONE, ProfilerAction.RECORD): ("init_trace", "start_trace"),
    (ProfilerAction.NONE, ProfilerAction.RECORD_AND_SAVE): ("init_trace", "start_trace"),
    (ProfilerAction.WARMUP, ProfilerAction.NONE): ("start_trace", "stop_trace", "finalize_trace"),
    (ProfilerAction.WARMUP, ProfilerAction.RECORD): ("start_trace",),
    (ProfilerAction.WARMUP, ProfilerAction.RECORD_AND_SAVE): ("start_trace",),
    (ProfilerAction.RECORD, ProfilerAction.NONE): ("stop_trace", "finalize_trace"),
    (ProfilerAction.RECORD, ProfilerAction.WARMUP): ("stop_trace", "finalize_trace"),
    (ProfilerAction.RECORD_AND_SAVE, ProfilerAction.NONE): ("stop_trace", "finalize_trace", "trace_ready"),
    (ProfilerAction.RECORD_AND_SAVE, ProfilerAction.WARMUP): (
        "stop_trace", "finalize_trace", "trace_ready", "init_trace", "warmup_trace"),
    (ProfilerAction.RECORD_AND_SAVE, ProfilerAction.RECORD): (
        "stop_trace", "finalize_trace", "trace_ready", "init_trace", "start_trace"),
    (ProfilerAction.RECORD_AND_SAVE, ProfilerAction.RECORD_AND_SAVE): (
        "stop_trace", "finalize_trace", "trace_ready", "init_trace", "start_trace"),
    (ProfilerAction.WARMUP, None): ("finalize_trace", "delete_prof_dir"),
    (ProfilerAction.RECORD, None): ("stop_trace", "finalize_trace", "trace_ready"),
    (ProfilerAction.RECORD_AND_SAVE, None): ("stop_trace", "finalize_trace", "trace_ready"),
}


class profile:
    def __init__(
        self,
        *,
        activities: Optional[Iterable[ProfilerActivity]] = None,
        schedule: Optional[Callable[[int], ProfilerAction]] = None,
        on_trace_ready: Optional[Callable[..., Any]] = None,
        record_shapes: bool = False,
        profile_memory: bool = False,
        with_stack: bool = False,
        with_flops: bool = False,
        with_modules: bool = False,
        experimental_config: Optional[_ExperimentalConfig] = None,
        execution_trace_observer=None,
        custom_trace_id_callback: Optional[Callable[[], str]] = None,
        use_cuda: Optional[bool] = None,
    ):
        _fake.record("profile", activities=activities, schedule=schedule, on_trace_ready=on_trace_ready,
                     record_shapes=record_shapes, profile_memory=profile_memory, with_stack=with_stack,
                     with_flops=with_flops, with_modules=with_modules, experimental_config=experimental_config,
                     execution_trace_observer=execution_trace_observer, use_cuda=use_cuda)
        if schedule and callable(schedule):
            self.schedule = schedule
        else:
            if schedule:
                print_warn_msg("schedule is not Callable, set by default.")
            self.schedule = _default_schedule_fn
        if on_trace_ready and not callable(on_trace_ready):
            print_warn_msg("on_trace_ready is not Callable, set by default.")
            on_trace_ready = None
        if use_cuda is not None:
            print_warn_msg("This is npu environment, use_cuda is invalid")
        self.prof_if = _ProfInterface(activities, record_shapes, profile_memory, with_stack, with_flops,
                                      with_modules, experimental_config, self.schedule)
        self.on_trace_ready = on_trace_ready
        self.step_num = 0
        self.current_action = self.schedule(self.step_num)
        self.stopped = False

    def _transit(self, previous, current):
        for action in _TRANSITIONS.get((previous, current), ()):
            if action == "trace_ready":
                if self.on_trace_ready:
                    self.on_trace_ready(self)
            else:
                getattr(self.prof_if, action)()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.stop()

    def start(self):
        self.stopped = False
        self._transit(ProfilerAction.NONE, self.current_action)

    def stop(self):
        self._transit(self.current_action, None)
        self.stopped = True

    def step(self):
        if self.stopped:
            print_warn_msg("Profiler is stopped, step takes no effect!")
            return
        previous = self.current_action
        self.step_num += 1
        self.current_action = self.schedule(self.step_num)
        self._transit(previous, self.current_action)

    def export_chrome_trace(self, output_path: str):
        if not self.prof_if.prof_path:
            print_warn_msg("Invalid profiling path.")
            return
        _analyse_dir(self.prof_if.prof_path, [Constant.Text])
        with open(os.path.join(self.prof_if.prof_path, Constant.OUTPUT_DIR, Constant.TRACE_VIEW)) as src:
            events = json.load(src)
        with open(output_path, "w", encoding="utf-8") as dst:
            json.dump({"traceEvents": events}, dst)


def analyse(profiler_path: str, max_process_number: int = Constant.DEFAULT_PROCESS_NUMBER,
            export_type=None):
    _fake.record("analyse", profiler_path=profiler_path, max_process_number=max_process_number,
                 export_type=export_type)
    if not isinstance(max_process_number, int) or max_process_number <= 0:
        max_process_number = Constant.DEFAULT_PROCESS_NUMBER
        print_warn_msg("Invalid max_process_number, reset it to default!")
    if export_type is None:
        with open(os.path.join(profiler_path, INFO), encoding="utf-8") as handle:
            export_type = json.load(handle)["experimental_config"]["export_type"]
    elif isinstance(export_type, str):
        export_type = [export_type]
    try:
        _analyse_dir(profiler_path, export_type)
    except Exception as exc:
        print_warn_msg(f"Profiling data parsing failed, error: {exc}")
