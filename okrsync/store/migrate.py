"""The schema's revision, and alembic driven from code: `okrsync db upgrade`, every daemon
start and `Store.open` call `upgrade`.

Most opens find nothing to do: `upgrade` first reads the stored revision with one plain query
and compares it with the newest migration (`head_revision`, from the file names in
`migrations/versions/`), so alembic (≈ 14 MB, 0.25 s) is imported only when an upgrade is due.
A brand-new, empty database gets the newest schema straight from the table metadata
(`create_all`) and alembic's version row stamped at head, in the same transaction;
tests/integration/test_schema_fast_path.py proves that schema equals the migrated one.

Every pending migration runs in ONE transaction, on both backends, so an upgrade killed
half-way leaves the previous schema and its data. SQLite needs help for that: the pysqlite
driver opens transactions only before INSERT/UPDATE/DELETE and runs DDL in autocommit, so a
CREATE TABLE would commit on its own. `sqlite_ddl_transaction` turns the driver's own
transaction handling off for the connection and issues BEGIN itself (the SQLAlchemy recipe
for transactional DDL on pysqlite).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent.parent / "migrations"
VERSIONS = MIGRATIONS / "versions"
# A migration's file is `NNNN_what.py` and its revision id is NNNN (a test checks both).
MIGRATION_FILE = re.compile(r"(\d{4})_\w+\.py")
VERSION_TABLE = "alembic_version"


@functools.cache
def head_revision() -> str:
    """The newest migration's revision: the highest number among the migration files."""
    numbers = [m[1] for p in VERSIONS.iterdir() if (m := MIGRATION_FILE.fullmatch(p.name))]
    return max(numbers)


def version_table() -> sa.Table:
    """Alembic's own version table, as `alembic.runtime.migration` defines it."""
    return sa.Table(
        VERSION_TABLE,
        sa.MetaData(),
        sa.Column("version_num", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"),
    )


def stored_revisions(conn: Connection) -> list[str]:
    """The revisions alembic's version table records (none: no schema yet)."""
    if not sa.inspect(conn).has_table(VERSION_TABLE):
        return []
    return sorted(conn.execute(sa.select(version_table().c.version_num)).scalars())


def current_revision(engine: Engine) -> str | None:
    """The revision the schema is at (None: not created yet)."""
    with engine.connect() as conn:
        return ", ".join(stored_revisions(conn)) or None


def is_current(engine: Engine) -> bool:
    """Whether the schema is at the newest migration (one plain query; no alembic)."""
    with engine.connect() as conn:
        return stored_revisions(conn) == [head_revision()]


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply every pending migration in one transaction (all of them, or none)."""
    to_head = revision in ("head", head_revision())
    if to_head and is_current(engine):
        return
    with migration_transaction(engine) as conn:
        if to_head and not sa.inspect(conn).get_table_names():
            create_at_head(conn)
        else:
            alembic_upgrade(conn, revision)


def create_at_head(conn: Connection) -> None:
    """An empty database to the newest schema: the tables from their metadata, alembic's
    version row stamped at head (the caller's transaction covers both)."""
    from okrsync.store.tables import metadata

    metadata.create_all(conn)
    version = version_table()
    version.create(conn)
    conn.execute(version.insert().values(version_num=head_revision()))


def alembic_upgrade(conn: Connection, revision: str) -> None:
    """Run alembic's migrations up to `revision` on `conn` (inside its transaction)."""
    from alembic import command

    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)


def alembic_config(engine: Engine | None = None) -> Config:
    from alembic.config import Config

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
