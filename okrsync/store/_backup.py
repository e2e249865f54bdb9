"""A consistent copy of a SQLite store, taken with SQLite's online backup API.

`sqlite3.Connection.backup` copies the database page by page under one read transaction
(pages=-1: every page in one step), so the copy is the store as of one moment even while the
daemon writes: in WAL mode a reader never blocks the writer and sees a single snapshot. The
copy is written to a temporary file beside `target` and renamed over it once complete, so
`target` is never half a database.
"""

from __future__ import annotations

import os
import shlex
import sqlite3
import tempfile
from pathlib import Path

from sqlalchemy.engine import Engine, make_url


def sqlite_backup(engine: Engine, target: Path) -> None:
    """Copy the SQLite store behind `engine` to `target` (replaced atomically if present)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _copy(engine, tmp)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


def _copy(engine: Engine, tmp: Path) -> None:
    with engine.connect() as conn:
        source = conn.connection.dbapi_connection
        assert isinstance(source, sqlite3.Connection)  # noqa: S101 - a SQLite engine's driver
        dest = sqlite3.connect(tmp)
        try:
            source.backup(dest, pages=-1)
            # A standalone file: no -wal beside it, readable by any sqlite3.
            dest.execute("PRAGMA journal_mode=DELETE")
        finally:
            dest.close()


def pg_dump_command(url: str, path: Path) -> str:
    """The pg_dump command that dumps the PostgreSQL store at `url` to `path` (custom format),
    without the URL's password."""
    # `URL.set` ignores None: `_replace` (a NamedTuple's) really drops the password.
    plain = make_url(url)._replace(drivername="postgresql", password=None)
    dsn = plain.render_as_string(hide_password=False)
    return shlex.join(["pg_dump", "--format=custom", f"--file={path}", f"--dbname={dsn}"])
