"""The store on SQLite and PostgreSQL: tree loading, check-ins, pages with their cursor."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypedDict, Unpack

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from okrsync.errors import ConfigError, StoreError
from okrsync.models import ItemKind, Page, StatusCategory, WorkItem
from okrsync.okrfile import load_tree
from okrsync.signals import outcome_progress
from okrsync.store import Store
from okrsync.store.tables import metadata
from tests.helpers import TREE, write

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


class ItemFields(TypedDict, total=False):
    """The `WorkItem` fields a test may set beside `updated` and `key`."""

    connector: str
    external_id: str
    kind: ItemKind
    title: str
    status: StatusCategory
    status_raw: str
    created: datetime
    item_type: str | None
    url: str | None
    container: str | None
    parent_key: str | None
    labels: tuple[str, ...]
    milestone: str | None
    section: str | None
    assignee: str | None
    estimate: float | None
    due: date | None
    completed_at: datetime | None
    custom: dict[str, str]
    container_name: str | None
    assignee_ids: tuple[str, ...]
    status_names: tuple[str, ...]
    previous_keys: tuple[str, ...]


def item(
    n: int, *, updated: datetime = T0, key: str | None = None, **kw: Unpack[ItemFields]
) -> WorkItem:
    base = WorkItem(
        connector="gh",
        external_id=str(n),
        key=key or f"o/r#{n}",
        kind=ItemKind.ISSUE,
        title=f"Item {n}",
        status=StatusCategory.TODO,
        status_raw="open",
        created=T0 - timedelta(days=3),
        updated=updated,
        container="o/r",
    )
    return dataclasses.replace(base, **kw)


def load(store: Store, mapping_dir: Path, text: str = TREE) -> None:
    write(mapping_dir / "okrs.toml", text)
    store.apply_okr_tree(load_tree([mapping_dir]))


def test_schema_matches_models(store: Store) -> None:
    """The migrations create exactly the tables the models declare (no drift)."""
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_sqlite_pragmas(tmp_path: Path) -> None:
    """SQLite runs in WAL mode with foreign keys and a busy timeout."""
    s = Store.open(f"sqlite:///{tmp_path / 'x.db'}", busy_timeout_ms=1234)
    with s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 1234


def test_tree_load_is_idempotent(store: Store, mapping_dir: Path) -> None:
    """Loading the same files twice adds nothing and changes nothing."""
    write(mapping_dir / "okrs.toml", TREE)
    first = store.apply_okr_tree(load_tree([mapping_dir]))
    second = store.apply_okr_tree(load_tree([mapping_dir]))
    assert len(first.added) == 4
    assert (second.added, second.updated, second.archived) == ([], [], [])


def test_changes_update_and_removals_archive_without_losing_checkins(
    store: Store, mapping_dir: Path
) -> None:
    """A changed target updates, a removed key result is archived and keeps its history."""
    load(store, mapping_dir)
    store.add_checkin("latency", 25, confidence=0.5, note="baseline")
    changed = TREE.replace("target = 12", "target = 14")
    without_latency = changed.split('[[key_result]]\nid = "latency"')[0] + (
        '[[tactic]]\nid = "checkout"\nkey_result = "conv"\ntitle = "Checkout revamp"\n'
    )
    write(mapping_dir / "okrs.toml", without_latency)
    report = store.apply_okr_tree(load_tree([mapping_dir]))
    assert report.updated == ["key_result:conv"]
    assert report.archived == ["key_result:latency"]
    with pytest.raises(ConfigError, match="archived"):
        store.add_checkin("latency", 20)
    write(mapping_dir / "okrs.toml", TREE)
    report = store.apply_okr_tree(load_tree([mapping_dir]))
    assert report.restored == ["key_result:latency"]
    assert [c.value for c in store.checkins("latency")] == [25.0]


def test_checkins_drive_outcome_progress_with_direction(store: Store, mapping_dir: Path) -> None:
    """A decrease key result from 40 to 10 at 25 is 50%; history is kept in order."""
    load(store, mapping_dir)
    store.add_checkin("latency", 30, at=T0)
    store.add_checkin("latency", 25, at=T0 + timedelta(days=7), note="week 2")
    history = store.checkins("latency")
    assert [c.value for c in history] == [30.0, 25.0]
    latest = store.latest_checkins()["latency"]
    assert outcome_progress(40, 10, latest.value, "decrease") == pytest.approx(0.5)


def test_checkin_rejects_unknown_key_result_and_bad_confidence(
    store: Store, mapping_dir: Path
) -> None:
    """Bad check-ins are refused with a message, nothing is written."""
    load(store, mapping_dir)
    with pytest.raises(ConfigError, match="no key result 'nope'"):
        store.add_checkin("nope", 1)
    with pytest.raises(ConfigError, match="between 0 and 1"):
        store.add_checkin("conv", 9, confidence=1.5)
    assert store.checkins("conv") == []


def test_commit_page_counts_creates_updates_and_dedupes(store: Store) -> None:
    """Re-seeing an item with the same `updated` is not a change; a newer one is."""
    page = Page([item(1), item(2)], cursor={"since": "a"})
    r1 = store.commit_page("gh", page)
    r2 = store.commit_page("gh", page)
    r3 = store.commit_page("gh", Page([item(1, updated=T0 + timedelta(minutes=1))], {"since": "b"}))
    assert (r1.created, r1.updated) == (2, 0)
    assert (r2.created, r2.updated, r2.unchanged) == (0, 0, 2)
    assert (r3.created, r3.updated) == (0, 1)
    assert store.cursor("gh") == {"since": "b"}
    stored = {i.external_id: i for i in store.items("gh")}
    assert stored["1"].updated == T0 + timedelta(minutes=1)
    assert stored["1"].updated.tzinfo is not None


def test_a_page_larger_than_one_upsert_statement_is_stored_whole(store: Store) -> None:
    """Rows go to SQLite in multi-row statements: a page spanning several (Jira DC sends up
    to 1,000 issues) stores every item, counts each once and keeps earlier keys."""
    n = 1001
    r1 = store.commit_page("gh", Page([item(i) for i in range(n)], {"page": 1}))
    later = T0 + timedelta(minutes=5)
    changed = [item(i, updated=later, key=f"o/moved#{i}") for i in range(0, n, 2)]
    r2 = store.commit_page("gh", Page(changed + [item(i) for i in range(1, n, 2)], {"page": 2}))
    assert (r1.created, r1.updated) == (n, 0)
    assert (r2.created, r2.updated, r2.unchanged) == (0, len(changed), n - len(changed))
    stored = {i.external_id: i for i in store.items("gh")}
    assert len(stored) == n
    assert stored["1000"].key == "o/moved#1000"
    assert stored["1000"].previous_keys == ["o/r#1000"]
    assert stored["999"].updated == T0
    assert store.cursor("gh") == {"page": 2}


def test_a_new_title_with_the_same_updated_is_a_change(store: Store) -> None:
    """Asana sections carry no modification time (their creation time stands in): a rename
    must still reach the store, on SQLite as on PostgreSQL."""
    store.commit_page("gh", Page([item(1)], {}))
    r = store.commit_page("gh", Page([item(1, title="Renamed")], {}))
    assert (r.updated, r.unchanged) == (1, 0)
    assert [i.title for i in store.items("gh")] == ["Renamed"]


def test_moved_item_keeps_previous_key(store: Store) -> None:
    """An item that comes back under a new key remembers the old one."""
    store.commit_page("gh", Page([item(1)], {}))
    store.commit_page("gh", Page([item(1, key="o/other#9", updated=T0 + timedelta(1))], {}))
    (row,) = store.items("gh")
    assert row.key == "o/other#9"
    assert row.previous_keys == ["o/r#1"]


def test_deletions_and_census_flag_but_keep_items(store: Store) -> None:
    """Deleted and census-missing items stay in the store, flagged."""
    store.commit_page("gh", Page([item(1), item(2), item(3)], {}))
    r = store.commit_page("gh", Page([], {}, deleted=["1"]))
    r2 = store.commit_page("gh", Page([], {}, census={"o/r": ["3"]}))
    assert (r.deleted, r2.deleted) == (1, 1)
    rows = {i.external_id: i for i in store.items("gh")}
    assert len(rows) == 3
    assert rows["1"].deleted_at
    assert rows["2"].deleted_at
    assert rows["3"].deleted_at is None


def test_page_and_cursor_commit_together_or_not_at_all(store: Store) -> None:
    """A failure while storing a page leaves neither its items nor its cursor."""
    store.commit_page("gh", Page([item(1)], {"page": 1}))
    bad = item(2)
    bad.created = datetime(2026, 1, 1)  # noqa: DTZ001 - naive on purpose: the store refuses it
    with pytest.raises((ValueError, StoreError, sa.exc.StatementError)):
        store.commit_page("gh", Page([item(3), bad], {"page": 2}))
    assert store.cursor("gh") == {"page": 1}
    assert [i.external_id for i in store.items("gh")] == ["1"]


def test_links_record_the_rule(store: Store, mapping_dir: Path) -> None:
    """Links are replaced per item and keep the rule that made them."""
    load(store, mapping_dir)
    store.commit_page("gh", Page([item(1)], {}), links={"1": [("checkout", "checkout#1")]})
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT tactic_id, rule_id FROM item_link")).all()
    assert [tuple(r) for r in rows] == [("checkout", "checkout#1")]


def test_runs_are_recorded(store: Store) -> None:
    """A run row collects per-page counts and its final status."""
    run = store.start_run("gh")
    store.commit_page("gh", Page([item(1)], {}, lost_scopes=["o/gone"]), run_id=run)
    store.finish_run(run, "ok", requests=3, retries=1, rate_limit_wait_s=2.5)
    (row,) = store.runs("gh")
    assert (row.status, row.pages, row.items_created, row.requests) == ("ok", 1, 1, 3)
    assert row.lost_scopes == ["o/gone"]
    assert row.ended_at is not None


def test_item_commits_of_any_size_use_few_statement_shapes(tmp_path: Path) -> None:
    """Groups of every size from 1 to 300 items reuse at most 8 upsert and 10 lookup
    statement shapes (each prepared shape stays cached, ~4 KB per row: memory stays flat)."""
    s = Store.open(f"sqlite:///{tmp_path / 'okrsync.db'}")
    seen: set[str] = set()

    @sa.event.listens_for(s.engine, "before_cursor_execute")
    def _record(*args: object) -> None:
        seen.add(str(args[2]))

    n = 0
    for size in range(1, 301):
        s.commit_page("gh", Page([item(i) for i in range(n, n + size)], {"page": size}))
        n += size
    s.commit_page("gh", Page([item(i, title="Renamed") for i in range(0, n, 2)], {"page": 0}))
    stored = s.items("gh")
    s.close()
    upserts = {sql for sql in seen if sql.startswith("INSERT INTO work_item")}
    lookups = {sql for sql in seen if sql.startswith("SELECT external_id, updated")}
    assert len(upserts) <= 8
    assert len(lookups) <= 10
    assert len(stored) == n
    assert sum(i.title == "Renamed" for i in stored) == len(range(0, n, 2))


def test_a_census_flags_the_missing_in_one_statement_on_sqlite(tmp_path: Path) -> None:
    """A census of 3,000 stored items is one statement on SQLite (no row read back one by
    one), flags exactly the live items of that container missing from it, and the same ts."""
    s = Store.open(f"sqlite:///{tmp_path / 'okrsync.db'}")
    other = [item(i, container="o/other") for i in range(3000, 3010)]
    s.commit_page("gh", Page([item(i) for i in range(3000)] + other, {}))
    s.commit_page("gh", Page([], {}, deleted=["0", "1"]))
    statements: list[str] = []

    @sa.event.listens_for(s.engine, "before_cursor_execute")
    def _record(*args: object) -> None:
        statements.append(str(args[2]))

    present = [str(i) for i in range(0, 3000, 3)] + ["not-stored"]
    (r,) = s.commit_pages("gh", [Page([], {"census": 1}, census={"o/r": present})])
    touched = [sql for sql in statements if "work_item" in sql]
    rows = {i.external_id: i for i in s.items("gh")}
    s.close()
    assert len(touched) == 1
    gone = {str(i) for i in range(2, 3000) if i % 3}
    assert r.deleted == len(gone)
    flagged = {ext for ext, row in rows.items() if row.deleted_at is not None}
    assert flagged == gone | {"0", "1"}
    assert len({rows[ext].deleted_at for ext in gone}) == 1
