"""The command line's progress bar: drawn on a terminal, silent otherwise."""

from __future__ import annotations

import io

from npuprofile.cli.commands._progress import ProgressBar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_draws_on_a_terminal_and_clears_its_line() -> None:
    stream = Terminal()
    with ProgressBar("reading", stream=stream, delay=0) as bar:
        bar(50_000_000, 200_000_000)
        bar(200_000_000, 200_000_000)
    text = stream.getvalue()
    assert "reading [" in text and " 25.0%" in text and "100.0%" in text and "200.0 MB" in text
    assert text.endswith("\r\x1b[2K")


def test_silent_when_quiet_not_a_terminal_or_quick() -> None:
    for stream, quiet, delay in ((Terminal(), True, 0.0), (io.StringIO(), False, 0.0), (Terminal(), False, 60.0)):
        with ProgressBar("reading", stream=stream, quiet=quiet, delay=delay) as bar:
            bar(1, 2)
            bar(2, 2)
        assert stream.getvalue() == ""
