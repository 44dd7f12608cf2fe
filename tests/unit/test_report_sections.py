"""The report's device-time and timeline sections: the analysis keeps a bounded step timeline, the SVG and
HTML builders draw it, shorten long names (full name on hover) and escape whatever a trace names."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from npuprofile.analysis import summarize
from npuprofile.analysis.timeline import MAX_ROW_ITEMS, SLOTS, TimelineBuilder, median_step
from npuprofile.summary import html as summary_html
from npuprofile.summary import json as summary_json
from npuprofile.summary.model import (
    DeviceTime,
    KernelTypeTime,
    OpRow,
    StepTimeline,
    StreamTime,
    TimelineItem,
    TimelineRow,
    TraceSummary,
)
from npuprofile.summary.svg import shorten
from npuprofile.summary.text import format_ns
from npuprofile.summary.timeline import MAX_MARKS, timeline_chart
from tests._trace_factory import launch, process, write_trace, x_event

HOSTILE = '</title><script>alert("x")</script>&amp; <b onmouseover=\'y()\'>'
KERNEL = ("void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>, "
          "at::detail::Array<char*, 1> >(int, at::native::FillFunctor<float>, at::detail::Array<char*, 1>)")
SVG = "{http://www.w3.org/2000/svg}"


# -- shortening ---------------------------------------------------------------------------------
def test_kernel_names_lose_templates_and_arguments_first() -> None:
    assert shorten(KERNEL, 60) == "at::native::vectorized_elementwise_kernel<\u2026>"
    assert shorten(KERNEL, 40) == "vectorized_elementwise_kernel<\u2026>"
    assert shorten("aten::mm", 60) == "aten::mm"
    assert shorten("Dequeue@ProfilerStep#12@aten::addmm", 12) == "Dequeu\u2026addmm"
    assert shorten("Dequeue@ProfilerStep#12@aten::addmm", 12, keep_end=False) == "Dequeue@Pro\u2026"


@settings(max_examples=200, deadline=None)
@given(name=st.text(min_size=0, max_size=300), limit=st.integers(2, 120), keep_end=st.booleans())
def test_a_shortened_name_fits_its_limit(name: str, limit: int, keep_end: bool) -> None:
    short = shorten(name, limit, keep_end=keep_end)
    assert len(short) <= max(limit, len(name) if len(name) <= limit else limit)
    if len(name) <= limit:
        assert short == name


# -- the analysis keeps a bounded timeline -------------------------------------------------------
def test_the_median_step_is_the_middle_one_by_duration() -> None:
    steps = [(1, 0.0, 50.0), (2, 50.0, 10.0), (3, 60.0, 30.0), (4, 90.0, 20.0)]
    assert median_step(steps) == (4, 90.0, 20.0)  # durations 10, 20, 30, 50: the lower middle one
    assert median_step(steps[:3]) == (3, 60.0, 30.0)
    assert median_step([]) is None


def test_bursts_of_short_activities_merge_and_a_row_keeps_a_bounded_number_of_items() -> None:
    builder = TimelineBuilder((1, 0.0, 1200.0))  # one slot = 1 us
    for i in range(50_000):  # 0.01 us kernels every 0.02 us: 1000 us of bursts
        builder.device("GPU 0", "7", i * 0.02, i * 0.02 + 0.01, f"k{i % 3}", "compute")
    for i in range(3 * MAX_ROW_ITEMS):  # long kernels, 2 us apart: never merged
        builder.device("GPU 0", "8", i * 3.0, i * 3.0 + 2.0, "long", "communication")
    rows = {row.lane: row for row in builder.result().rows}
    burst, long = rows["GPU 0 stream 7"], rows["GPU 0 stream 8"]
    assert len(burst.items) <= 2 * SLOTS and burst.merged == 50_000 and burst.dropped == 0
    assert sum(item.count for item in burst.items) == 50_000
    assert len(long.items) == MAX_ROW_ITEMS and long.dropped == 2 * MAX_ROW_ITEMS and long.merged == 0


def test_a_trace_keeps_its_median_step_host_rows_and_streams(tmp_path: Path) -> None:
    events = [*process(1, "python"), *process(0, "GPU 0", "GPU 0")]
    for step, (start, dur) in enumerate([(0, 100), (100, 300), (400, 200)], start=1):
        events.append(x_event(f"ProfilerStep#{step}", start, dur, cat="user_annotation"))
        events.append(x_event("forward", start + 1, dur - 10, cat="user_annotation"))
        events.append(x_event("aten::linear", start + 2, 50))
        events.append(x_event("aten::addmm", start + 3, 40))  # nested: not an outermost op
        host, work = launch("cudaLaunchKernel", start + 4, step, kernel_ts=start + 20, kernel_dur=30,
                            kernel=f"{KERNEL}_{step}")
        events += [host, work]
    summary = summarize(write_trace(tmp_path / "t.json", events))
    (timeline,) = summary.timelines
    assert (timeline.step, timeline.duration_ns, timeline.start_ns) == (3, 200_000, 400_000)
    host, stream = timeline.rows
    assert (host.kind, stream.kind, stream.lane) == ("host", "device", "GPU 0 stream 7")
    assert [(i.name, i.kind, i.level, i.start_ns) for i in host.items] == \
        [("forward", "region", 1, 1000), ("aten::linear", "op", 0, 2000)]
    (kernel,) = stream.items
    assert (kernel.name, kernel.kind, kernel.start_ns, kernel.dur_ns) == (f"{KERNEL}_3", "compute", 20_000, 30_000)
    loaded = summary_json.from_dict(json.loads(summary_json.render(summary)))
    assert loaded.timelines == summary.timelines


# -- the SVG ------------------------------------------------------------------------------------
def _timeline(rows: list[TimelineRow], duration: int = 1_000_000) -> StepTimeline:
    return StepTimeline(7, duration, rows, rank=1)


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # well-formed XML: nothing a name holds escaped its attribute or text


def test_hostile_names_are_escaped_and_shown_in_full_on_hover() -> None:
    item = TimelineItem(0, 600_000, HOSTILE + KERNEL, "compute")
    region = TimelineItem(10, 500_000, HOSTILE, "region", level=1)
    svg = timeline_chart("timeline", _timeline([TimelineRow(HOSTILE * 2, "host", [region]),
                                                TimelineRow("GPU 0 stream 7", "device", [item], "GPU 0")]),
                         format_ns, {HOSTILE: "#123456"})
    assert "<script" not in svg and "<b " not in svg
    root = _parse(svg)
    titles = [t.text or "" for t in root.iter(f"{SVG}title")]
    assert any(t.startswith(HOSTILE + KERNEL) for t in titles)  # the kernel's full name
    assert HOSTILE * 2 in titles  # the shortened lane label's full name
    labels = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert all(len(label) <= 130 for label in labels)
    fills = {r.get("fill") for r in root.iter(f"{SVG}rect")}
    assert "#123456" in fills  # the region keeps the report's colour


def test_sub_pixel_items_are_drawn_as_one_mark_and_the_chart_says_so() -> None:
    tiny = [TimelineItem(i * 10, 5, f"k{i}", "compute") for i in range(500)]  # 5 us of a 1 ms step
    svg = timeline_chart("timeline", _timeline([TimelineRow("GPU 0 stream 7", "device", tiny, "GPU 0")]),
                         format_ns, {})
    root = _parse(svg)
    marks = [r for r in root.iter(f"{SVG}rect") if r.get("data-kind")]
    # 5 us is 3.5 pixels of this plot: a merged mark grows to a pixel, so 4 marks stand for all 500
    assert len(marks) == 4
    counts = [int(re.match(r"(\d+) intervals", r.findtext(f"{SVG}title") or "").group(1))  # type: ignore[union-attr]
              for r in marks]
    assert sum(counts) == 500 and all(r.get("fill-opacity") == "0.6" for r in marks)
    assert "500 short intervals are drawn merged" in svg


def test_a_chart_draws_a_bounded_number_of_marks_and_counts_the_rest() -> None:
    rows = [TimelineRow(f"GPU 0 stream {s}", "device",
                        [TimelineItem(i * 2_000, 1_500, "k", "compute") for i in range(1_000)], "GPU 0")
            for s in range(8)]  # 8000 marks of 1.5 us, 2 us apart: wide enough not to merge at 2 ms
    svg = timeline_chart("timeline", _timeline(rows, duration=2_000_000), format_ns, {},
                         width=900 * 20)
    marks = [r for r in _parse(svg).iter(f"{SVG}rect") if r.get("data-kind")]
    assert len(marks) == MAX_MARKS
    assert f"{8000 - MAX_MARKS:,} intervals are not drawn" in svg


# -- the HTML sections ---------------------------------------------------------------------------
def _device(rank: int) -> DeviceTime:
    return DeviceTime(
        rank=rank, device="GPU 0", span_ns=1000, busy_ns=800, idle_ns=200, idle_share=0.2, compute_ns=500,
        communication_ns=400, memory_ns=100, comm_overlapped_share=0.25,
        streams=[StreamTime(HOSTILE, 10, 600, 400, 50), StreamTime("7", 5, 300, 100, 0)],
        kernel_types=[KernelTypeTime("compute", 400, 0.5, 9, 420), KernelTypeTime("communication", 300, 0.375, 3, 310),
                      KernelTypeTime("compute+communication", 100, 0.125), KernelTypeTime("memory", 0, 0.0, 1, 0)],
    )


def test_device_time_sections_break_the_span_down_and_shorten_names() -> None:
    summary = TraceSummary(ops=[OpRow(KERNEL, 3, self_device_ns=9, total_device_ns=9, kind="device", share=1.0)],
                           device_time=[_device(0), _device(1)],
                           timelines=[_timeline([TimelineRow("GPU 0 stream 7", "device",
                                                             [TimelineItem(0, 10, KERNEL, "compute")], "GPU 0")])])
    page = summary_html.render_report(summary)
    assert "<script" not in page and "<b " not in page
    for section in ('id="device-time"', 'id="kernel-types"', 'id="streams"', 'id="timeline"'):
        assert section in page
    bar = page[page.index('data-chart="device-time"'):]
    bar = bar[:bar.index("</svg>")]
    for rank in (0, 1):
        group = re.search(rf'data-label="rank {rank} GPU 0">(.*?)</g>', bar, re.S)
        assert group is not None
        widths = {s: float(w) for w, s in re.findall(r'width="([\d.]+)" height="18" fill="[^"]+" '
                                                   r'data-series="([^"]+)"', group.group(1))}
        # compute 400+100 (with communication), communication alone 300, memory alone 0, idle 200 of 1000
        assert set(widths) == {"compute", "communication (not overlapped)", "idle"}
        total = sum(widths.values())
        assert abs(widths["compute"] / total - 0.5) < 0.01 and abs(widths["idle"] / total - 0.2) < 0.01
    assert "compute+communication" in page and "12.5%" in page  # the kernel-type table's share of busy time
    assert f'title="{summary_html.escape(KERNEL)}"' in page  # the op table's shortened name
    assert summary_html.escape(shorten(KERNEL, summary_html.NAME_CHARS)) in page
