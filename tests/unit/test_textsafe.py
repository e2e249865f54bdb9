"""Text made safe for terminals, spreadsheets and log lines at output time."""

from __future__ import annotations

import io
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from rich.console import Console

from okrsync.logging import configure, open_log_file
from okrsync.render import render_runs
from okrsync.report import csv_cell
from okrsync.sync import RunResult
from okrsync.textsafe import markup_safe as safe
from okrsync.textsafe import printable
from okrsync.web.access import is_loopback

HOSTILE = "A\x1b[2J B \x1b]8;;http://evil\x07click\x1b]8;;\x07 C\x9b31m D\x7f"
LEAKS = ("\x1b", "\x07", "\x9b", "\x7f")
SGR = re.compile(r"\x1b\[[0-9;]*m")  # the colours a console renderer adds on purpose


def assert_no_leak(text: str) -> None:
    for leak in LEAKS:
        assert leak not in text, (leak, text)


def test_printable_strips_escapes_and_controls_but_keeps_layout() -> None:
    """Clear-screen, OSC 8 links, C1 CSI and DEL go; newlines, tabs and plain text stay."""
    assert printable(HOSTILE) == "A B click C D"
    assert printable("line 1\n\tline 2") == "line 1\n\tline 2"
    assert printable("plain — ünïcode") == "plain — ünïcode"


def test_safe_escapes_markup_and_strips_controls() -> None:
    """`safe` text printed as markup shows literally: no styling, no escape sequence."""
    out = io.StringIO()
    console = Console(file=out, color_system=None, width=200)
    console.print(f"[red]x[/] {safe('[bold]title[/] ' + HOSTILE)}")
    shown = out.getvalue()
    assert shown == "x [bold]title[/] A B click C D\n"


def test_render_runs_strips_escapes_from_sync_errors_and_scopes() -> None:
    """A sync's error line and lost scopes (what `sync` and `demo` print) carry no escapes."""
    result = RunResult(
        connector="github", run_id=7, status="failed", error=f"err {HOSTILE} [/]",
        lost_scopes=[f"o/r{HOSTILE}"],
    )  # fmt: skip
    out = io.StringIO()
    console = Console(file=out, color_system=None, width=200)
    render_runs(console, [result])
    shown = out.getvalue()
    assert_no_leak(shown)
    assert "github: err A B click C D [/]" in shown
    assert "access lost to o/rA B click C D" in shown


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ('=HYPERLINK("http://evil")', '\'=HYPERLINK("http://evil")'),
        ("+1", "'+1"),
        ("-1+2", "'-1+2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tpadded", "'\tpadded"),
        ("\r=1+1", "'=1+1"),  # CR is a control character: removed, then the `=` is quoted
        (f"title {HOSTILE}", "title A B click C D"),
        ("Grow revenue", "Grow revenue"),
        ("", ""),
        (None, ""),
        (-0.5, -0.5),
        (-3, -3),
        (0.25, 0.25),
    ],
)
def test_csv_cell_neutralises_text_only(cell: object, written: object) -> None:
    """Text starting = + - @ tab CR gets a leading quote; numbers are written as numbers."""
    assert csv_cell(cell) == written


@pytest.fixture
def reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def _tracker_fails() -> None:
    raise ValueError(f"tracker said {HOSTILE}")


def test_console_logs_carry_no_escapes_from_event_values(reset_structlog: None) -> None:
    """Console-format logs strip escapes from the event, its values and exception text."""
    stream = io.StringIO()
    configure("info", "console", stream=stream)
    log = structlog.get_logger("t")
    log.error(f"sync.failed {HOSTILE}", error=HOSTILE, scopes=[HOSTILE])
    try:
        _tracker_fails()
    except ValueError:
        log.exception("sync.crashed")
    out = SGR.sub("", stream.getvalue())
    assert_no_leak(out)
    assert "tracker said A B click C D" in out


def test_json_logs_escape_control_characters(reset_structlog: None) -> None:
    """JSON logs hold no raw control character, and the value round-trips exactly."""
    stream = io.StringIO()
    configure("info", "json", stream=stream)
    structlog.get_logger("t").error("sync.failed", error=HOSTILE)
    line = stream.getvalue()
    assert_no_leak(line)
    assert json.loads(line)["error"] == HOSTILE


def test_log_file_is_created_private(tmp_path: Path) -> None:
    """A new log file is 0600 even when the process umask would allow more."""
    old = os.umask(0)
    try:
        fh = open_log_file(str(tmp_path / "okrsync.log"))
    finally:
        os.umask(old)
    fh.close()
    assert stat.S_IMODE((tmp_path / "okrsync.log").stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("client", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.5", False),
        ("::ffff:10.0.0.5", False),
        ("2001:db8::1", False),
        ("", False),
        (None, False),
    ],
)
def test_request_loopback(client: str | None, loopback: bool) -> None:
    """Only callers on this host count as loopback (IPv4, IPv6, IPv4-mapped)."""
    assert is_loopback(client) is loopback
