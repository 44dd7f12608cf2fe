"""The HTML report in a real headless browser: charts laid out, region names shown, no console errors.

Device time and the step timeline are checked on a kineto-layout trace made here (always available) and
on a real GPU trace when one is on this machine.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from npuprofile.analysis import summarize
from npuprofile.summary.html import write_report
from tests._trace_factory import REGIONS, launch, process, shared_traces, write_ascend_layout, write_trace, x_event
from tests.real_traces import real_traces_or_skip

WIDTH, HEIGHT = 1200, 3600
PROBE_ID = "npuprofile-probe"
# Measures every chart as the browser laid it out; appended to a copy of the report only.
PROBE = """<script>
(function () {
  var charts = [];
  document.querySelectorAll('svg.chart').forEach(function (svg) {
    var box = svg.getBoundingClientRect();
    var marks = 0;
    svg.querySelectorAll('rect').forEach(function (r) {
      var b = r.getBoundingClientRect(); if (b.width > 0 && b.height > 0) { marks += 1; }
    });
    var labels = [];
    svg.querySelectorAll('text').forEach(function (t) { labels.push(t.textContent); });
    var tips = [];
    svg.querySelectorAll('title').forEach(function (t) { if (tips.length < 5000) { tips.push(t.textContent); } });
    var rows = {host: 0, device: 0, tall: 0};
    svg.querySelectorAll('g.timeline-row').forEach(function (g) {
      rows[g.dataset.kind] += 1; if (g.getBoundingClientRect().height >= 12) { rows.tall += 1; }
    });
    charts.push({name: svg.dataset.chart, width: box.width, height: box.height, marks: marks, labels: labels,
                 tooltips: svg.querySelectorAll('title').length, tips: tips, rows: rows,
                 bars: svg.querySelectorAll('g.stacked-bar').length});
  });
  var sections = [];
  document.querySelectorAll('section[id], h3[id]').forEach(function (s) { sections.push(s.id); });
  var cellTitles = [];
  document.querySelectorAll('td span[title]').forEach(function (s) { cellTitles.push(s.title); });
  var out = document.createElement('pre');
  out.id = '%s';
  out.textContent = JSON.stringify({title: document.title, charts: charts, sections: sections,
                                    cellTitles: cellTitles, tables: document.querySelectorAll('table').length});
  document.body.appendChild(out);
})();
</script>""" % PROBE_ID


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("chromium is not installed (.ci/run installs it with apt-get)")


def _run(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
               f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture
def report(tmp_path: Path) -> Path:
    summary = summarize(shared_traces()["plain"])
    return write_report(summary, tmp_path / "report.html")


def _probe(browser: str, page: Path, tmp_path: Path) -> dict[str, Any]:
    probe_page = tmp_path / f"probe-{page.name}"
    probe_page.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    result = _run(browser, tmp_path / "profile-probe", "--dump-dom", probe_page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    found = re.search(rf'<pre id="{PROBE_ID}">(.*?)</pre>', result.stdout, re.S)
    assert found, "the browser did not run the layout probe"
    return json.loads(html.unescape(found.group(1)))


def test_report_renders_in_chromium(report: Path, tmp_path: Path) -> None:
    browser = _chromium()
    layout = _probe(browser, report, tmp_path)
    charts = {chart["name"]: chart for chart in layout["charts"]}
    assert set(charts) == {"regions", "steps", "cpu-ops", "timeline"}
    assert charts["timeline"]["rows"]["host"] >= 1 and charts["timeline"]["rows"]["device"] == 0  # a CPU trace
    for chart in charts.values():
        assert chart["width"] > 300 and chart["height"] > 100, chart
        assert chart["marks"] > 3 and chart["tooltips"] > 3, chart
    for name in REGIONS:
        assert name in charts["regions"]["labels"]
        assert name in charts["steps"]["labels"]  # the legend
    assert any(label.startswith("aten::") for label in charts["cpu-ops"]["labels"])
    assert layout["tables"] >= 4
    assert layout["title"].startswith("npuprofile report")

    shot = tmp_path / "report.png"
    result = _run(browser, tmp_path / "profile-shot", "--hide-scrollbars", f"--window-size={WIDTH},{HEIGHT}",
                  f"--screenshot={shot}", report.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    assert _png_size(shot) == (WIDTH, HEIGHT)
    assert shot.stat().st_size > 50_000  # charts and text, not a blank page
    keep = os.environ.get("REPORT_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / "report.png")
    assert _console_messages(result.stderr) == []


def test_report_of_torch_npu_layout_renders_device_ops(tmp_path: Path) -> None:
    browser = _chromium()
    write_ascend_layout(tmp_path / "npu")
    page = write_report(summarize(tmp_path / "npu"), tmp_path / "npu.html")
    charts = {chart["name"]: chart for chart in _probe(browser, page, tmp_path)["charts"]}
    assert set(charts) == {"regions", "steps", "cpu-ops", "device-ops", "device-time", "streams", "timeline"}
    assert "MatMul_kernel" in charts["device-ops"]["labels"]
    assert charts["timeline"]["rows"]["device"] >= 1 and charts["device-time"]["bars"] >= 1
    result = _run(browser, tmp_path / "profile-npu", "--dump-dom", page.as_uri())
    assert result.returncode == 0 and _console_messages(result.stderr) == []


def test_console_check_catches_errors(tmp_path: Path) -> None:
    """The console scan used above sees a page's errors (so an empty result means something)."""
    browser = _chromium()
    page = tmp_path / "broken.html"
    page.write_text('<html><body><img src="missing.png"><script>nothing_here();</script></body></html>')
    result = _run(browser, tmp_path / "profile-broken", "--dump-dom", page.as_uri())
    messages = _console_messages(result.stderr)
    assert any("nothing_here" in message for message in messages), result.stderr[-2000:]


# -- device time and the timeline ----------------------------------------------------------------------
LONG_KERNEL = ("void cutlass::Kernel<cutlass_80_tensorop_s1688gemm_128x128_32x3_nn_align4>"
               "(cutlass_80_tensorop_s1688gemm_128x128_32x3_nn_align4::Params)")


def _gpu_trace(path: Path) -> Path:
    """A kineto-layout trace: 5 steps, each launching a long-named GEMM, an NCCL all-reduce on a second
    stream (overlapping it) and a memcpy; as the CUDA profiler writes it, without a GPU."""
    events = [*process(1, "python"), *process(0, "GPU 0", "GPU 0")]
    corr = 0
    for step in range(5):
        start = step * 1000.0 + (40 if step == 2 else 0)
        dur = 900 + 20 * step
        events.append(x_event(f"ProfilerStep#{step}", start, dur, cat="user_annotation"))
        events.append(x_event("forward", start + 5, 500, cat="user_annotation"))
        events.append(x_event("aten::linear", start + 10, 300))
        for offset, kernel, cat, stream, kdur in ((20, LONG_KERNEL, "kernel", 7, 250),
                                                   (40, "ncclKernel_AllReduce_RING_LL_Sum_float", "kernel", 13, 300),
                                                   (60, "Memcpy DtoH (Device -> Pinned)", "gpu_memcpy", 7, 40)):
            corr += 1
            host, work = launch("cudaLaunchKernel", start + offset, corr, kernel_ts=start + offset + 30 + kdur / 4,
                                kernel_dur=kdur, kernel=kernel, cat=cat, stream=stream)
            events += [host, work]
    return write_trace(path, events)


def _check_device_report(layout: dict[str, Any], *, streams: int) -> None:
    charts = {chart["name"]: chart for chart in layout["charts"]}
    assert {"device-time", "streams", "timeline"} <= set(charts)
    assert {"device-time", "kernel-types", "streams", "timeline"} <= set(layout["sections"])
    bar, lanes, timeline = charts["device-time"], charts["streams"], charts["timeline"]
    assert bar["bars"] >= 1 and bar["marks"] >= 2 and "idle" in bar["labels"] and "compute" in bar["labels"]
    assert lanes["bars"] >= streams
    assert timeline["rows"]["device"] >= streams and timeline["rows"]["host"] >= 1
    assert timeline["rows"]["tall"] == timeline["rows"]["device"] + timeline["rows"]["host"]
    assert timeline["width"] > 600 and timeline["marks"] > 5
    assert any(label.endswith("stream 7") for label in timeline["labels"])


def _screenshot(browser: str, page: Path, tmp_path: Path, name: str, height: int = HEIGHT) -> None:
    shot = tmp_path / f"{name}.png"
    result = _run(browser, tmp_path / f"profile-shot-{name}", "--hide-scrollbars", f"--window-size={WIDTH},{height}",
                  f"--screenshot={shot}", page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    assert _png_size(shot) == (WIDTH, height) and shot.stat().st_size > 50_000
    assert _console_messages(result.stderr) == []
    keep = os.environ.get("REPORT_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / shot.name)


def test_device_time_and_timeline_of_a_kineto_trace(tmp_path: Path) -> None:
    browser = _chromium()
    page = write_report(summarize(_gpu_trace(tmp_path / "gpu.json")), tmp_path / "gpu.html")
    layout = _probe(browser, page, tmp_path)
    _check_device_report(layout, streams=2)
    timeline = next(c for c in layout["charts"] if c["name"] == "timeline")
    # the long kernel name is shortened on the marks and in full in their tooltips
    assert any(tip.startswith(LONG_KERNEL) for tip in timeline["tips"])
    assert not any(LONG_KERNEL in label for label in timeline["labels"])
    assert LONG_KERNEL in layout["cellTitles"]  # the device-op table's shortened cell
    _screenshot(browser, page, tmp_path, "report-gpu")


def test_device_time_and_timeline_of_a_real_gpu_trace(tmp_path: Path) -> None:
    trace = real_traces_or_skip("cuda/hta_v100_2rank_r1")
    browser = _chromium()
    page = write_report(summarize(trace), tmp_path / "real.html")
    layout = _probe(browser, page, tmp_path)
    _check_device_report(layout, streams=2)
    timeline = next(c for c in layout["charts"] if c["name"] == "timeline")
    # long kernel names in full on hover, none drawn longer than its mark holds
    assert any(len(tip) > 120 and "void at::native::" in tip for tip in timeline["tips"])
    assert max(len(label) for label in timeline["labels"]) < 120
    assert timeline["tooltips"] > 100
    _screenshot(browser, page, tmp_path, "report-real-gpu", height=9000)  # the page is long: its op tables
