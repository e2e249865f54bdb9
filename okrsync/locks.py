"""Who may sync what: one daemon per SQLite file, one replica per connector on PostgreSQL.

DaemonLock     an exclusive, non-blocking `flock` on `<db path>.lock` (SQLite): a second
               daemon on the same file refuses to start and names the holder's PID.
AdvisoryLocks  a PostgreSQL session advisory lock per connector, taken on a dedicated
               connection held for the whole run. A replica that dies drops its
               connection, so the server releases its locks and another replica takes
               the connector at its next schedule.
NoRunLocks     SQLite: the daemon lock already makes this process the only runner.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import Path
from typing import IO, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from okrsync.errors import OkrsyncError, StoreError


class LockHeld(OkrsyncError):
    """Another daemon holds the store's lock."""


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (None for other backends and `:memory:`)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///")
    return Path(path) if path and path != ":memory:" else None


class DaemonLock:
    """An exclusive `flock` on `<db path>.lock`, holding the owner's PID as text."""

    def __init__(self, db_file: Path) -> None:
        self.path = Path(f"{db_file}.lock")
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock or raise LockHeld naming the file and the other daemon's PID."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            other = fh.read().strip() or "unknown"
            fh.close()
            raise LockHeld(
                f"another okrsync daemon (PID {other}) holds the lock {self.path}; "
                "one daemon per SQLite file: stop it first, or use PostgreSQL for replicas"
            ) from None
        fh.truncate(0)
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


class RunLocks(Protocol):
    """`async with locks.hold(name) as got:` — got is False when another runner has it."""

    def hold(self, connector: str) -> AbstractAsyncContextManager[bool]: ...


class NoRunLocks:
    """Every run may go ahead (single daemon on SQLite)."""

    @asynccontextmanager
    async def hold(self, connector: str) -> AsyncIterator[bool]:
        yield True


def advisory_key(connector: str) -> int:
    """A stable signed 64-bit key for `pg_try_advisory_lock`, from the connector's name."""
    digest = hashlib.sha256(f"okrsync.sync:{connector}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class AdvisoryLocks:
    """Session advisory locks on PostgreSQL, one dedicated connection per held lock."""

    def __init__(self, engine: Engine) -> None:
        # NullPool: closing a connection really disconnects, which always releases the lock.
        self._engine = sa.create_engine(engine.url, poolclass=NullPool)

    def _try(self, key: int) -> Connection | None:
        conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        except SQLAlchemyError:
            conn.close()
            raise
        if not got:
            conn.close()
            return None
        return conn

    @staticmethod
    def _release(conn: Connection, key: int) -> None:
        try:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        except SQLAlchemyError:
            pass  # the close below ends the session, and the lock with it
        finally:
            conn.close()

    @asynccontextmanager
    async def hold(self, connector: str) -> AsyncIterator[bool]:
        key = advisory_key(connector)
        conn = await asyncio.to_thread(self._try, key)
        if conn is None:
            yield False
            return
        try:
            yield True
        finally:
            await asyncio.shield(asyncio.to_thread(self._release, conn, key))

    def close(self) -> None:
        self._engine.dispose()


UPGRADE_KEY = advisory_key("__schema_upgrade__")


@contextmanager
def upgrade_lock(engine: Engine) -> Iterator[None]:
    """Hold a PostgreSQL advisory lock while migrating (a no-op on other backends)."""
    if engine.dialect.name != "postgresql":
        yield
        return
    try:
        conn = engine.connect()
        conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": UPGRADE_KEY})
        conn.commit()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot reach the store: {getattr(exc, 'orig', exc)}") from None
    with conn:
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": UPGRADE_KEY})
            conn.commit()
