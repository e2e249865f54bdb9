"""The `sql` source: a query against another database, named by a SQLAlchemy URL in the
environment (`url_env`), never okrsync's own store.

    query            one row: one column (the value, measured now) or two (time, value: the
                     query's own timestamp)
    backfill_query   optional, for `okrsync measure --since`: a `:since` bind, any number of
                     rows of (time, value); without one a backfill takes the current reading

The query runs in a transaction that is always rolled back and, where the backend has them,
read-only with a statement timeout: PostgreSQL `SET TRANSACTION READ ONLY` and
`statement_timeout`; SQLite opens the file read-only (`mode=ro`) and interrupts a query past
the timeout. Each read opens its own connection and closes it (no pool).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from okrsync.redaction import register_secret, scrub
from okrsync.sources import (
    Reading,
    SourceFailure,
    SourceSpec,
    as_utc,
    env_value,
    number,
    since_filter,
    timeout_of,
)

MAX_ROWS = 100_000  # a backfill's rows; one reading's query must return exactly one
_LOCAL = {"", "localhost", "127.0.0.1", "::1"}


async def read_sql(
    spec: SourceSpec,
    *,
    since: datetime | None,
    now: datetime,
    env: Mapping[str, str],
    own_store_url: str,
) -> list[Reading]:
    """Run the source's query in a worker thread (the drivers block)."""
    url = _url(env_value(env, spec, "url_env"))
    if same_database(url, own_store_url):
        raise SourceFailure(
            "this URL is okrsync's own store: a source measures an outcome where it lives, "
            "never okrsync's data; point url_env at the database that holds the metric"
        )
    backfill = spec.options.get("backfill_query") if since is not None else None
    if not backfill:  # no history asked for, or none to be had: the current reading
        rows = await asyncio.to_thread(_run, url, str(spec.options["query"]), {}, timeout_of(spec))
        return since_filter([_one(rows, now)], since, now)
    params = {"since": since}
    rows = await asyncio.to_thread(_run, url, str(backfill), params, timeout_of(spec))
    return since_filter([_timed(r) for r in rows], since, now)


def _url(text: str) -> URL:
    try:
        url = make_url(text)
    except ArgumentError:
        raise SourceFailure(
            "url_env does not hold a SQLAlchemy URL such as "
            "postgresql+psycopg://user@host/db or sqlite:////path/file.db"
        ) from None
    register_secret(url.password if isinstance(url.password, str) else None)
    return url


def same_database(url: URL, own_store_url: str) -> bool:
    """Whether `url` names okrsync's own store: the same SQLite file (paths resolved) or the
    same PostgreSQL host, port and database."""
    try:
        own = make_url(own_store_url)
    except ArgumentError:
        return False
    if url.get_backend_name() != own.get_backend_name():
        return False
    if url.get_backend_name() == "sqlite":
        mine, theirs = _sqlite_path(url), _sqlite_path(own)
        return mine is not None and mine == theirs
    return (
        _host(url.host) == _host(own.host)
        and (url.port or 5432) == (own.port or 5432)
        and (url.database or "") == (own.database or "")
    )


def _host(host: str | None) -> str:
    name = (host or "").lower()
    return "localhost" if name in _LOCAL else name


def _sqlite_path(url: URL) -> Path | None:
    db = url.database or ""
    if db in ("", ":memory:"):
        return None
    db = db.removeprefix("file:").split("?", 1)[0]
    return Path(db).expanduser().resolve()


def _engine(url: URL, timeout: float) -> sa.Engine:
    if url.get_backend_name() == "sqlite":
        path = _sqlite_path(url)
        if path is None:
            raise SourceFailure("a sql source needs a SQLite file, not an in-memory database")
        ro = f"sqlite:///file:{quote(str(path))}?mode=ro&uri=true"
        return sa.create_engine(ro, poolclass=NullPool)
    args: dict[str, Any] = {}
    if url.get_backend_name() == "postgresql":
        args["connect_timeout"] = max(1, round(timeout))
    return sa.create_engine(url, poolclass=NullPool, connect_args=args)


def _run(url: URL, query: str, params: dict[str, Any], timeout: float) -> list[Sequence[Any]]:
    try:
        engine = _engine(url, timeout)
    except (ArgumentError, ImportError) as exc:
        raise SourceFailure(f"cannot use this URL: {_first_line(exc)}") from None
    try:
        with engine.connect() as conn:
            _read_only(conn, timeout)
            try:
                result = conn.execute(sa.text(query), params)
                if not result.returns_rows:
                    raise SourceFailure("the query returned no rows: write a SELECT")
                return [tuple(r) for r in result.fetchmany(MAX_ROWS + 1)]
            finally:
                conn.rollback()
    except SQLAlchemyError as exc:
        raise SourceFailure(_first_line(getattr(exc, "orig", None) or exc)) from None
    finally:
        engine.dispose()


def _read_only(conn: Connection, timeout: float) -> None:
    """A read-only transaction with a statement timeout, where the backend has them."""
    name = conn.dialect.name
    if name == "postgresql":
        conn.execute(sa.text("SET TRANSACTION READ ONLY"))
        conn.execute(sa.text(f"SET LOCAL statement_timeout = {int(timeout * 1000)}"))
    elif name == "sqlite":
        deadline = time.monotonic() + timeout
        raw = conn.connection.driver_connection
        if raw is not None:  # interrupts a query still running at the deadline
            raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)


def _one(rows: list[Sequence[Any]], now: datetime) -> Reading:
    """The one reading of a one-row result: (value) measured now, or (time, value)."""
    if not rows:
        raise SourceFailure("empty result")
    if len(rows) > 1:
        many = f"more than {MAX_ROWS}" if len(rows) > MAX_ROWS else str(len(rows))
        raise SourceFailure(f"{many} rows; the query must return one row")
    row = rows[0]
    if len(row) == 1:
        return Reading(now, number(row[0]))
    return _timed(row)


def _timed(row: Sequence[Any]) -> Reading:
    if len(row) != 2:
        raise SourceFailure(f"{len(row)} columns; return (value) or (time, value)")
    return Reading(as_utc(row[0]), number(row[1]))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    if "interrupted" in line:
        line = f"{line} (the statement timeout passed)"
    return scrub(line)[:300]
