"""`okrsync runs --since` parsing and `okrsync logs` filtering, without a subprocess."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TypedDict, Unpack

import pytest
import typer

from okrsync.cli_service import log_events, matches, parse_since, render_event

LINES = [
    '{"event": "sync.start", "level": "info", "connector": "gh", "run_id": 7,'
    ' "timestamp": "2026-11-02T10:00:00.000000Z"}',
    "not json at all",
    '{"event": "sync.failed", "level": "error", "connector": "gh", "run_id": 7,'
    ' "error": "401", "timestamp": "2026-11-02T10:00:01.000000Z"}',
    '{"event": "sync.start", "level": "info", "connector": "jira", "run_id": 8,'
    ' "timestamp": "2026-10-30T09:00:00.000000Z"}',
]


def test_since_takes_dates_times_and_ages() -> None:
    """A date means UTC midnight; `24h`/`30m`/`7d` count back from now; junk is refused."""
    assert parse_since("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_since("2026-11-01T12:30:00+01:00").hour == 12
    age = datetime.now(UTC) - parse_since("24h")
    assert abs(age - timedelta(hours=24)) < timedelta(seconds=5)
    assert abs(datetime.now(UTC) - parse_since("7d") - timedelta(days=7)) < timedelta(seconds=5)
    with pytest.raises(typer.BadParameter, match="24h"):
        parse_since("yesterday")


class Filters(TypedDict, total=False):
    """The filters `matches` takes."""

    connector: str | None
    run_id: int | None
    level: str | None
    since: datetime | None


def test_logs_filter_by_connector_run_level_and_time() -> None:
    """Non-JSON lines are skipped; filters combine; level means that level or worse."""
    events = [e for _, e in log_events(LINES)]
    assert len(events) == 3

    def pick(**kw: Unpack[Filters]) -> list[str]:
        return [e["event"] for e in events if matches(e, **kw)]

    assert pick(connector="gh") == ["sync.start", "sync.failed"]
    assert pick(run_id=8) == ["sync.start"]
    assert pick(level="warning") == ["sync.failed"]
    assert pick(since=datetime(2026, 11, 1, tzinfo=UTC)) == ["sync.start", "sync.failed"]
    assert pick(connector="gh", level="debug", run_id=7, since=None) == [
        "sync.start",
        "sync.failed",
    ]


def test_rendered_event_line_is_readable() -> None:
    """A rendered line starts with time, level and event, then the other keys."""
    _, event = next(log_events(LINES[2:]))
    line = render_event(event)
    assert line.startswith("2026-11-02T10:00:01.000000Z error   sync.failed ")
    assert "connector=gh" in line
    assert "run_id=7" in line
