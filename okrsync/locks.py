"""Who may sync what: every writer of sync runs takes the same locks.

StoreLock      SQLite: an exclusive, non-blocking `flock` on `<db path>.lock`, held for the
               whole process by the daemon (`okrsync run [--once]`), `okrsync sync --once`
               and `okrsync demo`. Whoever comes second is refused (exit 1) with a message
               naming the holder: what it is, its pid and host, and what to do.
AdvisoryLocks  PostgreSQL: a session advisory lock per connector, taken on a dedicated
               connection held for the whole run, by daemon replicas and `sync --once`
               alike. A connector held elsewhere is skipped; `holder` names who has it
               (each lock connection carries its owner in `application_name`). A process
               that dies drops its connection, so the server releases its locks.
NoRunLocks     SQLite: the store lock already makes this process the only runner.

A run left "running" is marked abandoned only when its owner (`okrsync.store.RunOwner`) is
gone: `owner_alive` is asked while holding the connector, so an owner on another host has
lost its lock; one on this host is checked by pid and process start time.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import re
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from okrsync.errors import OkrsyncError, StoreError
from okrsync.store import RunOwner, process_start

DAEMON = "run"  # the role of `okrsync run`; others are "run --once", "sync --once", "demo"


class LockHeld(OkrsyncError):
    """Another okrsync process holds the store's lock."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: the command (`role`), pid and host, as far as they are known."""

    role: str | None
    pid: int | None
    host: str | None

    def __str__(self) -> str:
        if self.role == DAEMON:
            who = "the daemon"
        elif self.role:
            who = f"`okrsync {self.role}`"
        else:
            who = "another okrsync process"
        where = [f"pid {self.pid}"] if self.pid is not None else []
        where += [f"on host {self.host}"] if self.host else []
        return f"{who} ({' '.join(where)})" if where else who


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (None for other backends and `:memory:`)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///")
    return Path(path) if path and path != ":memory:" else None


class StoreLock:
    """An exclusive `flock` on `<db path>.lock`; the file names the holder (JSON)."""

    def __init__(self, db_file: Path, role: str = DAEMON) -> None:
        self.path = Path(f"{db_file}.lock")
        self.role = role
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock or raise LockHeld naming the holder, the file and the fix."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = parse_holder(fh.read())
            fh.close()
            raise LockHeld(f"{holder} holds {self.path}; {self._fix(holder)}") from None
        fh.truncate(0)
        me = {"role": self.role, "pid": os.getpid(), "host": socket.gethostname()}
        fh.write(json.dumps(me) + "\n")
        fh.flush()
        self._fh = fh

    def _fix(self, holder: Holder) -> str:
        if holder.role != DAEMON:
            return "wait for it to finish, then try again"
        if self.role == DAEMON:
            return "one daemon per SQLite file: stop it first, or use PostgreSQL for replicas"
        return "stop it or let it sync"

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def parse_holder(text: str) -> Holder:
    """The holder written in a lock file (JSON; a bare pid from okrsync before 0003)."""
    text = text.strip()
    if text.isdigit():
        return Holder(None, int(text), None)
    try:
        data = json.loads(text)
        return Holder(str(data["role"]), int(data["pid"]), str(data["host"]))
    except (ValueError, KeyError, TypeError):
        return Holder(None, None, None)


@contextmanager
def store_lock(url: str, role: str) -> Iterator[None]:
    """Hold the SQLite store's lock for `role` (a no-op on other backends)."""
    db = sqlite_file(url)
    if db is None:
        yield
        return
    with StoreLock(db, role):
        yield


def owner_alive(owner: RunOwner | None) -> bool:
    """Whether a run's owner may still be running it; ask only while holding its connector.

    Holding the connector means any other holder is gone: an owner on another host (whose
    pid cannot be checked from here) has lost its lock, and so has one without a record.
    On this host the owner lives while its pid does with the same start time; this very
    process never runs a connector twice at once, so a run it owns here is dead.
    """
    me = RunOwner.current()
    if owner is None or owner.host != me.host or owner.pid == me.pid:
        return False
    start = process_start(owner.pid)
    if start is None:
        return _proc_missing() and _pid_exists(owner.pid)
    return owner.start is None or owner.start == start


def _proc_missing() -> bool:
    return not Path(f"/proc/{os.getpid()}/stat").exists()


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True


class RunLocks(Protocol):
    """`async with locks.hold(name) as got:` — got is False when another runner has it."""

    def hold(self, connector: str) -> AbstractAsyncContextManager[bool]: ...

    def holder(self, connector: str) -> Holder | None: ...

    def close(self) -> None: ...


class NoRunLocks:
    """Every run may go ahead (SQLite: the store lock makes this process the only runner)."""

    @asynccontextmanager
    async def hold(self, connector: str) -> AsyncIterator[bool]:
        yield True

    def holder(self, connector: str) -> Holder | None:
        return None

    def close(self) -> None:
        pass


def advisory_key(connector: str) -> int:
    """A stable signed 64-bit key for `pg_try_advisory_lock`, from the connector's name."""
    digest = hashlib.sha256(f"okrsync.sync:{connector}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


_APP_NAME = re.compile(r"okrsync (?P<role>.+?) pid (?P<pid>\d+) on host (?P<host>.*)")
# pg_locks shows a bigint advisory key as its high half (classid), low half (objid), 1.
_HOLDER_SQL = sa.text(
    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
    "AND l.classid::bigint = :hi AND l.objid::bigint = :lo"
)


class AdvisoryLocks:
    """Session advisory locks on PostgreSQL, one dedicated connection per held lock."""

    def __init__(self, engine: Engine, role: str = DAEMON) -> None:
        # NullPool: closing a connection really disconnects, which always releases the lock.
        # Other processes read the owner from the connection's application_name.
        me = RunOwner.current()
        name = f"okrsync {role} pid {me.pid} on host {me.host}"
        self._engine = sa.create_engine(
            engine.url, poolclass=NullPool, connect_args={"application_name": name[:63]}
        )

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

    def holder(self, connector: str) -> Holder | None:
        """Who holds `connector`'s lock now (None: nobody, or it cannot be read)."""
        unsigned = advisory_key(connector) & (2**64 - 1)
        params = {"hi": unsigned >> 32, "lo": unsigned & (2**32 - 1)}
        try:
            with self._engine.connect() as conn:
                name = conn.execute(_HOLDER_SQL, params).scalar()
        except SQLAlchemyError:
            return None
        if name is None:
            return None
        found = _APP_NAME.fullmatch(str(name))
        if found is None:
            return Holder(None, None, None)
        return Holder(found["role"], int(found["pid"]), found["host"])

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
