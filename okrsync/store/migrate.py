"""Alembic, driven from code: `okrsync db upgrade` and every daemon start call `upgrade`.

Every pending migration runs in ONE transaction, on both backends, so an upgrade killed
half-way leaves the previous schema and its data. SQLite needs help for that: the pysqlite
driver opens transactions only before INSERT/UPDATE/DELETE and runs DDL in autocommit, so a
CREATE TABLE would commit on its own. `sqlite_ddl_transaction` turns the driver's own
transaction handling off for the connection and issues BEGIN itself (the SQLAlchemy recipe
for transactional DDL on pysqlite).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).parent.parent / "migrations"


def alembic_config(engine: Engine | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


@contextmanager
def migration_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection inside one transaction that DDL joins too; committed at the end."""
    with engine.connect() as conn:
        if engine.dialect.name != "sqlite":
            with conn.begin():
                yield conn
            return
        with sqlite_ddl_transaction(conn), conn.begin():
            # IMMEDIATE takes the write lock now: a second upgrade waits (busy timeout),
            # then finds the schema current, instead of failing half-way on a read lock.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn


@contextmanager
def sqlite_ddl_transaction(conn: Connection) -> Iterator[None]:
    """Let the caller's own BEGIN cover DDL: the driver's autobegin off, then restored."""
    dbapi = conn.connection.dbapi_connection
    saved = dbapi.isolation_level  # type: ignore[union-attr]
    dbapi.isolation_level = None  # type: ignore[union-attr]
    try:
        yield
    finally:
        dbapi.isolation_level = saved  # type: ignore[union-attr]


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply every pending migration in one transaction (all of them, or none)."""
    with migration_transaction(engine) as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
