"""Opening a store without alembic when nothing is to do, and a new store from the metadata.

`okrsync.store.migrate.upgrade` reads the stored revision with a plain query and imports
alembic only when a migration is due; an empty database gets the newest schema from the
table metadata plus alembic's version row. These tests prove that schema equals the one the
migrations build (on SQLite and PostgreSQL), that the head is found without alembic, and that
a later migration still applies to such a store. The kill -9 test of a new store's creation
is tests/integration/test_migrate.py's first case (its marker is a CREATE TABLE of either).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from okrsync.store import Store
from okrsync.store.migrate import (
    MIGRATION_FILE,
    VERSIONS,
    alembic_config,
    alembic_upgrade,
    current_revision,
    head_revision,
    migration_transaction,
    upgrade,
)
from okrsync.store.tables import metadata

_db_names = itertools.count()


def scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def previous_revision() -> str:
    """The revision just before head."""
    down = scripts().get_revision(head_revision()).down_revision
    assert isinstance(down, str)
    return down


@pytest.fixture
def other_url(store_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A second empty database on the same backend as `store_url`."""
    if store_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'other.db'}"
    server: str = request.getfixturevalue("pg_server")
    name = f"fast{next(_db_names)}"
    engine = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return server.rsplit("/", 1)[0] + f"/{name}"


def migrate_with_alembic(url: str, revision: str = "head") -> None:
    """Every migration up to `revision` through alembic, as before the fast path."""
    store = Store.open(url, upgrade=False)
    try:
        with migration_transaction(store.engine) as conn:
            alembic_upgrade(conn, revision)
    finally:
        store.close()


def schema(url: str) -> dict[str, Any]:
    """What the database says about each table (column order aside)."""
    engine = sa.create_engine(url)
    try:
        insp = sa.inspect(engine)
        tables: dict[str, Any] = {t: table_schema(insp, t) for t in insp.get_table_names()}
        if engine.dialect.name == "sqlite":  # AUTOINCREMENT is not reflected
            with engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT name, sql FROM sqlite_master WHERE sql > ''"))
                tables["AUTOINCREMENT"] = sorted(n for n, sql in rows if "AUTOINCREMENT" in sql)
        return tables
    finally:
        engine.dispose()


def table_schema(insp: sa.Inspector, table: str) -> dict[str, Any]:
    columns = {
        c["name"]: [str(c["type"]), c["nullable"], c.get("default"), c.get("autoincrement")]
        for c in insp.get_columns(table)
    }
    return {
        "columns": columns,
        "primary key": insp.get_pk_constraint(table),
        "foreign keys": sorted(map(repr, insp.get_foreign_keys(table))),
        "indexes": sorted(map(repr, insp.get_indexes(table))),
        "unique": sorted(map(repr, insp.get_unique_constraints(table))),
        "checks": sorted(map(repr, insp.get_check_constraints(table))),
    }


def revision_of(url: str) -> str | None:
    engine = sa.create_engine(url)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()


def differences_from_metadata(url: str) -> list[Any]:
    """alembic's autogenerate comparison of the database with the table metadata."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            # Server defaults are compared by `schema` (alembic's check runs SQL that
            # PostgreSQL refuses for JSON: `json = unknown`).
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_head_revision_is_alembics_head() -> None:
    """The head read from the file names is the head alembic computes from the scripts."""
    assert head_revision() == scripts().get_current_head()


def test_every_migration_file_is_named_by_its_revision() -> None:
    """Each migration's file is NNNN_*.py with NNNN its revision id, so none is missed."""
    by_file = {
        Path(s.path).name: s.revision for s in scripts().walk_revisions() if s.path is not None
    }
    named = {p.name for p in VERSIONS.iterdir() if MIGRATION_FILE.fullmatch(p.name)}
    assert set(by_file) == named
    assert all(name.startswith(f"{rev}_") for name, rev in by_file.items())


def test_a_new_store_has_the_migrated_schema(store_url: str, other_url: str) -> None:
    """An empty database opened as a store equals one migrated by alembic, table by table."""
    Store.open(store_url).close()
    migrate_with_alembic(other_url)
    created = schema(store_url)
    assert created == schema(other_url)
    assert {"work_item", "sync_run", "checkin", "alembic_version"} <= set(created)
    assert revision_of(store_url) == head_revision()
    assert differences_from_metadata(store_url) == differences_from_metadata(other_url) == []


def test_a_new_store_takes_the_next_migration_like_a_migrated_one(
    store_url: str, other_url: str
) -> None:
    """A store created from the metadata goes down one migration and up again as alembic's."""
    Store.open(store_url).close()
    migrate_with_alembic(other_url)
    for url in (store_url, other_url):
        engine = sa.create_engine(url)
        command.downgrade(alembic_config(engine), previous_revision())
        assert current_revision(engine) == previous_revision()
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        engine.dispose()
    assert schema(store_url) == schema(other_url)


# Opens the store at argv[1] as every command does, then reports whether alembic was loaded.
OPEN_PROBE = textwrap.dedent(
    """
    import json, sys
    from okrsync.store import Store
    store = Store.open(sys.argv[1])
    revision = store.schema_revision()
    print(json.dumps({"alembic": "alembic" in sys.modules, "revision": revision}))
    """
)


def open_in_fresh_process(url: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", OPEN_PROBE, url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


def test_opening_imports_alembic_only_when_a_migration_is_due(store_url: str) -> None:
    """New store: created without alembic; current: untouched; one revision behind: migrated."""
    head = head_revision()
    assert open_in_fresh_process(store_url) == {"alembic": False, "revision": head}
    assert open_in_fresh_process(store_url) == {"alembic": False, "revision": head}
    engine = sa.create_engine(store_url)
    command.downgrade(alembic_config(engine), previous_revision())
    engine.dispose()
    assert open_in_fresh_process(store_url) == {"alembic": True, "revision": head}


def test_a_database_holding_other_tables_is_migrated_not_created(store_url: str) -> None:
    """A non-empty database without okrsync's schema goes through alembic's migrations."""
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE unrelated (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    assert open_in_fresh_process(store_url) == {"alembic": True, "revision": head_revision()}
    assert "unrelated" in schema(store_url)
