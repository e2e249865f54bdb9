"""The sandbox's fake analytics database: a SQLite file the `sql` source reads, as it would a
product database or a warehouse (never okrsync's store).

One table, `kpi_daily(day TEXT PRIMARY KEY, conversion_pct REAL)`: a row per day (ISO date)
from a start day to today, a deterministic line from a first value to today's with a small
seeded wobble, so `okrsync measure --since` backfills a history. `set_today` is the upstream
change (a new figure for today), as `Sandbox.mutate` is for the trackers.

    build(path, start=date(2026, 10, 1), today=date.today(), first=8.0, last=10.9)
    set_today(path, 11.2)
"""

from __future__ import annotations

import random
import sqlite3
from contextlib import closing
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

MAX_DAYS = 400  # a start this far back keeps only the newest days
_SCHEMA = "CREATE TABLE kpi_daily (day TEXT PRIMARY KEY, conversion_pct REAL NOT NULL)"
_UPSERT = (
    "INSERT INTO kpi_daily (day, conversion_pct) VALUES (?, ?) "
    "ON CONFLICT (day) DO UPDATE SET conversion_pct = excluded.conversion_pct"
)


def url(path: Path) -> str:
    """The SQLAlchemy URL of the database at `path`."""
    return f"sqlite:///{path.resolve()}"


def daily_values(
    start: date, today: date, first: float, last: float, seed: int = 7
) -> list[tuple[date, float]]:
    """A row per day from `start` (at most MAX_DAYS back) to `today`: `first` to `last` in a
    line, each day but today off it by up to 0.15 (seeded); today's value is `last`."""
    days = min(max((today - start).days, 0), MAX_DAYS)
    rng = random.Random(seed)
    rows = []
    for i in range(days + 1):
        line = last if days == 0 else first + (last - first) * i / days
        wobble = 0.0 if i == days else rng.uniform(-0.15, 0.15)
        rows.append((today - timedelta(days=days - i), round(line + wobble, 2)))
    return rows


def build(
    path: Path, *, start: date, today: date, first: float, last: float, seed: int = 7
) -> None:
    """(Re)create the database at `path` holding `daily_values`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    rows = [
        (day.isoformat(), value) for day, value in daily_values(start, today, first, last, seed)
    ]
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(_SCHEMA)
        conn.executemany(_UPSERT, rows)


def set_today(path: Path, value: float, today: date | None = None) -> None:
    """The upstream change: today's figure becomes `value`."""
    day = (today or datetime.now(UTC).date()).isoformat()
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(_UPSERT, (day, value))
