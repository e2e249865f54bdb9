"""Who may sync what: every writer of sync runs takes the same locks.

StoreLock      SQLite: an exclusive, non-blocking `flock` on `<db path>.lock`, held for the
               whole process by the daemon (`okrsync run [--once]`), `okrsync sync --once`
               and `okrsync demo`. Whoever comes second is refused (exit 1) with a message
               naming the holder: what it is, its pid and host, and what to do.
AdvisoryLocks  PostgreSQL (`okrsync.store`, which runs every statement; `Store.advisory_locks`):
               a session advisory lock per connector, taken on a dedicated
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

import fcntl
import json
import os
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import Path
from typing import IO, Protocol

from okrsync.errors import OkrsyncError
from okrsync.store import DAEMON as DAEMON
from okrsync.store import Holder as Holder
from okrsync.store import RunOwner, process_start


class LockHeld(OkrsyncError):
    """Another okrsync process holds the store's lock."""


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
        """Take the lock or raise LockHeld naming the holder, the file and the fix.

        The holder removes the file when it releases (see `release`), so a file locked here
        may have been unlinked in between opening and locking it: then the lock guards
        nothing, and the file is opened afresh until the locked file is the one at the path.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fh = self.path.open("a+", encoding="utf-8")
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = parse_holder(fh.read())
                fh.close()
                raise LockHeld(f"{holder} holds {self.path}; {self._fix(holder)}") from None
            if _same_file(fh, self.path):
                break
            fh.close()  # removed by its last holder after we opened it: open the new one
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
        """Remove the file, then unlock: removed only while held, so no one else holds it;
        a process waiting on the old file sees it gone and opens a new one (`acquire`)."""
        if self._fh is not None:
            self.path.unlink(missing_ok=True)
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def _same_file(fh: IO[str], path: Path) -> bool:
    """Whether the open file `fh` is still the file at `path` (not unlinked or replaced)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    mine = os.fstat(fh.fileno())
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


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
