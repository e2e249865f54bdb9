"""The stale-source rule (`signals.stale_source`) and which failure is shown
(`signals.newer_failure`): pure functions of a key result's source runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from okrsync.signal_types import SourceRuns
from okrsync.signals import STALE_INTERVALS, newer_failure, stale_source

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)
HOUR = 3600


def ago(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


def test_stale_only_after_more_than_three_intervals_since_the_last_good_reading() -> None:
    """Read 3 hours ago on an hourly schedule is not stale; a second more is."""
    assert STALE_INTERVALS == 3
    runs = SourceRuns(first_at=ago(100), last_ok_at=ago(3))
    assert not stale_source(HOUR, runs, NOW)
    assert stale_source(HOUR, runs, NOW + timedelta(seconds=1))


def test_failures_after_a_good_reading_do_not_reset_the_clock() -> None:
    """Failed runs since the last good reading leave it stale: only a reading counts."""
    runs = SourceRuns(ago(10), last_ok_at=ago(4), last_failed_at=ago(0.1), last_failure="x")
    assert stale_source(HOUR, runs, NOW)


def test_a_source_never_read_counts_from_its_first_run() -> None:
    """Never read: stale once its first run is more than three intervals old."""
    fresh = SourceRuns(first_at=ago(2), last_failed_at=ago(0.5), last_failure="empty result")
    old = SourceRuns(first_at=ago(4), last_failed_at=ago(0.5), last_failure="empty result")
    assert not stale_source(HOUR, fresh, NOW)
    assert stale_source(HOUR, old, NOW)


def test_a_source_never_run_is_not_judged() -> None:
    """No run at all (not yet measured): no flag, nothing to count from."""
    assert not stale_source(HOUR, None, NOW)


def test_the_schedule_sets_the_interval() -> None:
    """A daily source read 2 days ago is fresh; an hourly one read 2 days ago is stale."""
    runs = SourceRuns(first_at=ago(48), last_ok_at=ago(48))
    assert not stale_source(24 * HOUR, runs, NOW)
    assert stale_source(HOUR, runs, NOW)


def test_only_a_failure_newer_than_the_last_reading_is_shown() -> None:
    """A failure before the last good reading is history; one after it is shown."""
    older = SourceRuns(ago(5), last_ok_at=ago(1), last_failed_at=ago(2), last_failure="old")
    newer = SourceRuns(ago(5), last_ok_at=ago(2), last_failed_at=ago(1), last_failure="new")
    never = SourceRuns(ago(5), last_failed_at=ago(1), last_failure="unreachable")
    assert newer_failure(older) is None
    assert newer_failure(newer) == (ago(1), "new")
    assert newer_failure(never) == (ago(1), "unreachable")
    assert newer_failure(SourceRuns(ago(5), last_ok_at=ago(1))) is None
    assert newer_failure(None) is None
