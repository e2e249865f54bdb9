"""PostgreSQL advisory locks: per connector for sync runs, and one for schema upgrades.

Each held run lock sits on its own connection (NullPool: closing really disconnects, which
always releases the lock), whose `application_name` names the owner, so `holder` can tell
who has a connector. `okrsync.locks` holds the file lock and the run-lock protocol.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from okrsync.errors import StoreError
from okrsync.store._runs import RunOwner

DAEMON = "run"  # the role of `okrsync run`; others are "run --once", "sync --once", "demo"


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
