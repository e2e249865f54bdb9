"""`okrsync backup` and `okrsync db current`: read-only towards the store, honest output."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import sqlalchemy as sa

from okrsync.models import Page
from okrsync.okrfile import load_tree
from okrsync.store import Store
from okrsync.store.migrate import head_revision, upgrade
from tests.helpers import TREE, run_cli, write
from tests.unit.test_store import T0, item

PAGE_ITEMS = 20


def env_for(db: Path) -> dict[str, str]:
    return {"OKRSYNC_STORE_URL": f"sqlite:///{db}"}


def seeded_store(tmp_path: Path) -> tuple[Store, Path]:
    """A SQLite store with the example tree and two check-ins."""
    db = tmp_path / "okrsync.db"
    store = Store.open(f"sqlite:///{db}")
    write(tmp_path / "mappings" / "okrs.toml", TREE)
    store.apply_okr_tree(load_tree([tmp_path / "mappings"]))
    store.add_checkin("latency", 30, at=T0, note="baseline")
    store.add_checkin("latency", 25, note="week 2")
    return store, db


def keep_writing(store: Store, run_id: int, stop: threading.Event, pages: list[int]) -> None:
    """Commit pages of PAGE_ITEMS new items, each counted on the run row in its transaction."""
    n = 0
    while not stop.is_set():
        batch = [item(n * PAGE_ITEMS + i) for i in range(PAGE_ITEMS)]
        store.commit_page("gh", Page(batch, {"page": n}), run_id=run_id)
        n += 1
        pages.append(n)


def test_backup_while_a_writer_commits_is_a_consistent_copy(tmp_path: Path) -> None:
    """A backup taken during a sync holds whole transactions: items match the run's counts."""
    store, db = seeded_store(tmp_path)
    run_id = store.start_run("gh")
    stop, pages = threading.Event(), list[int]()
    writer = threading.Thread(target=keep_writing, args=(store, run_id, stop, pages))
    writer.start()
    try:
        while len(pages) < 3:
            stop.wait(0.01)
        before = len(pages)
        result = run_cli("backup", str(tmp_path / "copy.db"), cwd=tmp_path, env=env_for(db))
        after = len(pages)
    finally:
        stop.set()
        writer.join()
    assert result.code == 0, result.stderr
    assert after > before  # the writer committed while the backup ran
    with sqlite3.connect(tmp_path / "copy.db") as raw:  # a standalone file, whole
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    copy = Store.open(f"sqlite:///{tmp_path / 'copy.db'}", upgrade=False)
    row = copy.run(run_id)
    assert row is not None
    assert before <= row.pages <= after
    assert copy.item_count("gh") == row.pages * PAGE_ITEMS == row.items_created
    assert [c.value for c in copy.checkins("latency")] == [
        c.value for c in store.checkins("latency")
    ]
    assert copy.schema_revision() == head_revision()
    copy.close()
    store.close()


def test_backup_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    """An existing PATH is kept (exit 2, --force named) unless --force replaces it."""
    store, db = seeded_store(tmp_path)
    store.close()
    target = write(tmp_path / "keep.db", "not a database\n")
    refused = run_cli("backup", str(target), cwd=tmp_path, env=env_for(db))
    assert refused.code == 2
    assert "--force" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert target.read_text() == "not a database\n"
    forced = run_cli("backup", "--force", str(target), cwd=tmp_path, env=env_for(db))
    assert forced.code == 0, forced.stderr
    copy = Store.open(f"sqlite:///{target}", upgrade=False)
    assert len(copy.checkins("latency")) == 2
    copy.close()


def test_backup_without_a_store_creates_nothing(tmp_path: Path) -> None:
    """No store: exit 1 saying how to make one; no store file and no copy appear."""
    result = run_cli("backup", "copy.db", cwd=tmp_path, env=env_for(tmp_path / "okrsync.db"))
    assert result.code == 1
    assert "no store" in result.stderr
    assert "db upgrade" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_backup_on_postgresql_prints_pg_dump_without_the_password(tmp_path: Path) -> None:
    """PostgreSQL: the pg_dump command for the configured URL; its password never printed."""
    url = "postgresql+psycopg://okr:s3cret-pw@db.example:5433/okr?sslmode=require"
    result = run_cli("backup", "/backups/okr.dump", cwd=tmp_path, env={"OKRSYNC_STORE_URL": url})
    assert result.code == 0, result.stderr
    assert result.stdout.strip() == (
        "pg_dump --format=custom --file=/backups/okr.dump "
        "'--dbname=postgresql://okr@db.example:5433/okr?sslmode=require'"
    )
    assert "s3cret-pw" not in result.stdout + result.stderr
    assert "PGPASSWORD" in result.stderr


def test_db_current_reports_current_pending_and_missing(tmp_path: Path) -> None:
    """`db current`: 'no store yet' (none created), then pending revisions, then current."""
    db = tmp_path / "okrsync.db"
    missing = run_cli("db", "current", cwd=tmp_path, env=env_for(db))
    assert missing.code == 0, missing.stderr
    assert missing.stdout.startswith("no store yet")
    assert not db.exists()
    engine = sa.create_engine(f"sqlite:///{db}")
    upgrade(engine, "0004")
    engine.dispose()
    pending = run_cli("db", "current", cwd=tmp_path, env=env_for(db))
    head = head_revision()
    waiting = head if head == "0005" else f"0005 to {head}"  # every revision after 0004
    assert pending.stdout.strip() == f"0004, {waiting} pending: run okrsync db upgrade"
    Store.open(f"sqlite:///{db}").close()
    current = run_cli("db", "current", cwd=tmp_path, env=env_for(db))
    assert current.stdout.strip() == f"{head_revision()} (current)"
