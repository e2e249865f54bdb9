"""The progress line of `okrsync sync --once` (okrsync/progress.py): live figures per
connector on a terminal, nothing off one."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from rich.console import Console

from okrsync.http import HttpStats
from okrsync.models import RunResult
from okrsync.pipeline import MappingState, sync_and_recompute
from okrsync.progress import SyncProgress, line
from tests.integration.sandbox_utils import sandbox_world

SIZES = {"jira": 120, "jira_dc": 40, "asana": 40, "github": 40}


def test_line_shows_pages_items_requests_and_rate_limit_waits() -> None:
    """A running connector's line names it, its run, pages, items (new), requests and waits;
    waits only when there were some."""
    result = RunResult("jira", 12, pages=40, created=3900, updated=100)
    stats = HttpStats(requests=41, rate_limit_wait_s=3.04)
    assert line(result, stats) == (
        "jira  run 12  running  pages 40  items 4,000 (3,900 new)  requests 41"
        "  rate-limit waits 3.0 s"
    )
    result.duration_s, result.status = 2.5, "ok"
    assert line(result, HttpStats(requests=41)).endswith(
        "ok  pages 40  items 4,000 (3,900 new)  requests 41"
    )


def run_with(console: Console, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[RunResult]:
    with sandbox_world(monkeypatch, tmp_path, sizes=SIZES) as (_, settings, store):
        mapping = MappingState.load(settings)
        with SyncProgress(console) as progress:
            watch = progress.watch if progress.enabled else None
            done = asyncio.run(sync_and_recompute(settings, store, mapping, watch=watch))
        assert len(progress.runs) == (4 if progress.enabled else 0)
        return done.results


def test_a_terminal_sees_each_connectors_live_figures(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """On a terminal every connector gets a line, fed by its live run, and the figures it
    ends on are the run's own."""
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=160)
    results = run_with(console, monkeypatch, tmp_path)
    shown = buf.getvalue()
    for r in results:
        assert f"{r.connector}  run {r.run_id}" in shown
    assert "pages" in shown
    assert "requests" in shown


def test_off_a_terminal_nothing_is_shown(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Piped or redirected, the progress writes nothing (logs and the final table say it)."""
    buf = io.StringIO()
    results = run_with(Console(file=buf, force_terminal=False), monkeypatch, tmp_path)
    assert results
    assert buf.getvalue() == ""
