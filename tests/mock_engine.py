"""A mock serving engine for the controller tests: a step loop on a small model and an HTTP control server.

The loop calls ``controller.step(stage=...)`` at the start of each step, then
runs a prefill or a decode step of a small model. The server (127.0.0.1, a
port of its own, one thread) answers ``POST /start_profile?steps=N&...`` and
``POST /stop_profile`` by calling ``request``/``stop`` on the controller from
its own thread, as engines do.
"""

from __future__ import annotations

import http.client
import http.server
import json
import threading
import time
import urllib.parse
from typing import Any, Callable

import torch

import npuprofile as npp
from npuprofile.errors import NpuProfileError


class TinyModel(torch.nn.Module):
    """Two layers: enough ops for a trace, fast enough for hundreds of steps."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = torch.nn.Linear(32, 32)
        self.outer = torch.nn.Linear(32, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outer(torch.relu(self.inner(x)))


def stage_of(step: int) -> str:
    """A fixed interleaving: every fourth step a prefill, the others decode."""
    return "prefill" if step % 4 == 0 else "decode"


class MockEngine:
    """The step loop: ``run(steps)`` calls ``controller.step(stage)`` and then the step's work."""

    def __init__(self, controller: npp.Controller, stages: Callable[[int], str | None] = stage_of,
                 pause_s: float = 0.0) -> None:
        self.controller = controller
        self.stages = stages
        self.pause_s = pause_s
        self.model = TinyModel()
        self.prompt = torch.randn(16, 32)
        self.token = torch.randn(1, 32)
        self.steps_run = 0

    def run_step(self, index: int) -> None:
        stage = self.stages(index)
        self.controller.step(stage=stage)
        with torch.no_grad():
            if stage == "prefill":
                with npp.profile_region("prefill"):
                    torch.sigmoid(self.model(self.prompt))
            else:
                with npp.profile_region("decode"):
                    torch.tanh(self.model(self.token))
        if self.pause_s:
            time.sleep(self.pause_s)
        self.steps_run += 1

    def run(self, steps: int, until: Callable[[], bool] | None = None) -> None:
        for index in range(self.steps_run, self.steps_run + steps):
            self.run_step(index)
            if until is not None and until():
                return


class ControlServer:
    """``/start_profile`` and ``/stop_profile`` on 127.0.0.1, served by one thread of its own."""

    def __init__(self, controller: npp.Controller) -> None:
        self.controller = controller
        self.captures: list[npp.Capture] = []
        self.refused: list[str] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server interface
                url = urllib.parse.urlparse(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                status, body = owner.handle(url.path, query)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="control-server", daemon=True)

    def handle(self, path: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if path == "/start_profile":
            options: dict[str, Any] = {"steps": int(query.get("steps", "3"))}
            if "stages" in query:
                options["stages"] = tuple(query["stages"].split(","))
            if "delay_steps" in query:
                options["delay_steps"] = int(query["delay_steps"])
            try:
                capture = self.controller.request(**options)
            except NpuProfileError as exc:
                self.refused.append(str(exc))
                return 409, {"error": str(exc)}
            self.captures.append(capture)
            return 200, {"name": capture.name, "start_step": capture.start_step}
        if path == "/stop_profile":
            stopped = self.controller.stop()
            return 200, {"stopped": stopped.name if stopped is not None else None}
        return 404, {"error": path}

    def __enter__(self) -> "ControlServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def post(port: int, path: str, timeout: float = 10.0) -> tuple[int, dict[str, Any]]:
    """One POST to the control server with http.client; ``(status, JSON body)``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", path)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()
