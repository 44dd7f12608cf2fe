"""The HTML report in a real headless browser: charts laid out, region names shown, no console errors."""

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
from tests._trace_factory import REGIONS, shared_traces, write_ascend_layout

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
    charts.push({name: svg.dataset.chart, width: box.width, height: box.height, marks: marks, labels: labels,
                 tooltips: svg.querySelectorAll('title').length});
  });
  var out = document.createElement('pre');
  out.id = '%s';
  out.textContent = JSON.stringify({title: document.title, charts: charts,
                                    tables: document.querySelectorAll('table').length});
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
    assert set(charts) == {"regions", "steps", "cpu-ops"}
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
    assert set(charts) == {"regions", "steps", "cpu-ops", "device-ops"}
    assert "MatMul_kernel" in charts["device-ops"]["labels"]
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
