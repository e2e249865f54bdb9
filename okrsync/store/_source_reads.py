"""Reads of key-result source runs (`sync_run` rows `source:<key result>`, written by
`_sources`): each key result's first run, newest good run and newest failure with its reason.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from okrsync.signal_types import SourceRuns
from okrsync.store._sources import run_name
from okrsync.store._sql import chunks
from okrsync.store.tables import SYNC_RUN, UTCDateTime

PREFIX = run_name("")
CHUNK = 500


def source_runs(conn: Connection, key_result_ids: Collection[str]) -> dict[str, SourceRuns]:
    """`SourceRuns` of each key result that has a finished source run (others left out)."""
    found: dict[str, SourceRuns] = {}
    for part in chunks(sorted(key_result_ids), CHUNK):
        names = [run_name(k) for k in part]
        for name, first, ok, failed in conn.execute(_summary(names)):
            reason = _reason(conn, name, failed) if failed is not None else None
            found[name.removeprefix(PREFIX)] = SourceRuns(first, ok, failed, reason)
    return found


def _summary(names: list[str]) -> sa.Select[Any]:
    t = SYNC_RUN
    ok = _utc(sa.func.max(sa.case((t.c.status == "ok", t.c.started_at))))
    failed = _utc(sa.func.max(sa.case((t.c.status == "failed", t.c.started_at))))
    return (
        sa.select(t.c.connector, _utc(sa.func.min(t.c.started_at)), ok, failed)
        .where(t.c.connector.in_(names), t.c.status.in_(("ok", "failed")))
        .group_by(t.c.connector)
    )


def _reason(conn: Connection, name: str, at: object) -> str | None:
    t = SYNC_RUN
    q = (
        sa.select(t.c.error)
        .where(t.c.connector == name, t.c.status == "failed", t.c.started_at == at)
        .order_by(t.c.id.desc())
        .limit(1)
    )
    return conn.execute(q).scalar()


def _utc(expr: sa.ColumnElement[object]) -> sa.ColumnElement[object]:
    """An aggregate of a time column read back as an aware UTC datetime."""
    return sa.type_coerce(expr, UTCDateTime())
