"""Schema upgrades are atomic: killed half-way, the store keeps its previous schema and data.

An upgrade runs in a child process that pauses right after one chosen DDL statement; the
test SIGKILLs it there, then upgrades again with `okrsync db upgrade`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime
from pathlib import Path

import sqlalchemy as sa

from okrsync.okrfile import OkrTree, load_tree
from okrsync.store import Store
from okrsync.store.migrate import current_revision, upgrade
from okrsync.store.tables import CHECKIN, KEY_RESULT, OBJECTIVE, SYNC_RUN, WORK_ITEM
from tests.helpers import TREE, run_cli, write

HEAD = "0009"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
# The child: upgrade the store, pausing forever after the first statement holding MARKER.
PAUSING_UPGRADE = textwrap.dedent(
    """
    import sys, time
    import sqlalchemy as sa
    from okrsync.store import Store

    url, marker = sys.argv[1], sys.argv[2]
    store = Store.open(url, upgrade=False)

    @sa.event.listens_for(store.engine, "after_cursor_execute")
    def pause(conn, cursor, statement, *args):
        if marker in statement:
            print("paused", flush=True)
            time.sleep(600)

    store.upgrade()
    """
)


def kill_upgrade_after(tmp_path: Path, url: str, marker: str) -> None:
    """Run an upgrade that stops after the statement holding `marker`; SIGKILL it there."""
    script = write(tmp_path / "pausing_upgrade.py", PAUSING_UPGRADE)
    proc = subprocess.Popen(
        [sys.executable, str(script), url, marker],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "paused", proc.stderr.read() if proc.stderr else line
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def upgrade_with_cli(tmp_path: Path, url: str) -> None:
    cfg = write(tmp_path / "okrsync.toml", f'[store]\nurl = "{url}"\n')
    r = run_cli("-c", str(cfg), "db", "upgrade", cwd=tmp_path)
    assert r.code == 0, r.stderr
    assert f"revision {HEAD}" in r.stdout


def tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_killed_in_its_first_migration_leaves_an_empty_store(
    tmp_path: Path, store_url: str
) -> None:
    """kill -9 after the first table of 0001: no table stays; the next upgrade succeeds."""
    kill_upgrade_after(tmp_path, store_url, "CREATE TABLE item_link")
    assert tables(store_url) == set()
    upgrade_with_cli(tmp_path, store_url)
    assert {"item_link", "work_item", "sync_run", "alembic_version"} <= tables(store_url)


def fill_previous_schema(url: str, mapping_dir: Path) -> None:
    """A store at revision 0002 holding an OKR tree, a check-in, an item and a run."""
    store = Store.open(url, upgrade=False)
    try:
        upgrade(store.engine, "0002")
        write(mapping_dir / "okrs.toml", TREE)
        # 0002's tables and columns only: commits, start_run, add_checkin and the tree's
        # load (a key result's owner, 0009) write later ones
        with store.tx() as conn:
            insert_old_tree(conn, load_tree([mapping_dir]))
            conn.execute(sa.insert(CHECKIN).values(key_result_id="conv", value=9.5, recorded_at=T0))
            conn.execute(sa.insert(OLD_WORK_ITEM), [OLD_ITEM, ASANA_ITEM])
            store._save_cursor(conn, "gh", {"since": "a"}, T0, None)
            conn.execute(
                sa.insert(SYNC_RUN).values(
                    connector="gh",
                    started_at=T0,
                    status="ok",
                    pages=1,
                    requests=2,
                    retries=0,
                    rate_limit_wait_s=0.0,
                    items_created=1,
                    items_updated=0,
                    items_deleted=0,
                    lost_scopes=[],
                    host="old:1",
                )
            )
    finally:
        store.close()


def insert_old_tree(conn: sa.Connection, tree: OkrTree) -> None:
    """The objectives and key results of `tree` in the columns 0002 has."""
    conn.execute(
        sa.insert(OBJECTIVE),
        [{"id": o.id, "title": o.title, "owner": o.owner, "period": o.period,
          "period_start": o.start, "period_end": o.end, "weight": o.weight, "updated_at": T0}
         for o in tree.objectives.values()],
    )  # fmt: skip
    conn.execute(
        sa.insert(OLD_KEY_RESULT),
        [{"id": k.id, "objective_id": k.objective, "title": k.title, "unit": k.unit,
          "start_value": k.start, "target_value": k.target, "direction": k.direction,
          "weight": k.weight, "source": "", "updated_at": T0}
         for k in tree.key_results.values()],
    )  # fmt: skip


OLD_KEY_RESULT = sa.table(
    "key_result", *(sa.column(c.name, c.type) for c in KEY_RESULT.columns if c.name != "owner")
)
OLD_ITEM = {
    "connector": "gh",
    "external_id": "1",
    "key": "o/r#1",
    "kind": "issue",
    "title": "Item 1",
    "status": "todo",
    "status_raw": "open",
    "container": "o/r",
    "labels": [],
    "custom": {},
    "previous_keys": [],
    "created": T0,
    "updated": T0,
    "first_seen": T0,
    "last_seen": T0,
}
# An Asana task as connectors stored it before 0004: the project's name in custom.project.
ASANA_ITEM = {
    **OLD_ITEM,
    "connector": "asana",
    "external_id": "1201",
    "key": "1201",
    "kind": "task",
    "container": "1200000000000001",
    "custom": {"project": "Growth", "section": "Doing"},
}


# work_item as 0002 and 0003 had it: only the columns the items above fill, typed as today.
OLD_WORK_ITEM = sa.table("work_item", *(sa.column(c, WORK_ITEM.c[c].type) for c in OLD_ITEM))


def assert_data_kept(url: str) -> None:
    store = Store.open(url, upgrade=False)
    try:
        with store.engine.connect() as conn:  # the columns every revision has
            titles = conn.execute(sa.text("SELECT title FROM work_item WHERE connector = 'gh'"))
            assert [t for (t,) in titles] == ["Item 1"]
        assert store.cursor("gh") == {"since": "a"}
        assert [c.value for c in store.checkins("conv")] == [9.5]
        with store.engine.connect() as conn:
            runs = conn.execute(sa.text("SELECT host, items_created FROM sync_run")).all()
        assert [tuple(r) for r in runs] == [("old:1", 1)]
    finally:
        store.close()


def test_upgrade_from_the_previous_schema_keeps_data_and_survives_a_kill(
    tmp_path: Path, store_url: str, mapping_dir: Path
) -> None:
    """kill -9 inside 0003 leaves 0002 and its data; the next upgrade adds owner columns."""
    fill_previous_schema(store_url, mapping_dir)
    kill_upgrade_after(tmp_path, store_url, "ADD COLUMN owner_host")
    engine = sa.create_engine(store_url)
    try:
        assert current_revision(engine) == "0002"
        columns = {c["name"] for c in sa.inspect(engine).get_columns("sync_run")}
        assert "owner_host" not in columns
    finally:
        engine.dispose()
    assert_data_kept(store_url)
    upgrade_with_cli(tmp_path, store_url)
    assert_data_kept(store_url)
    store = Store.open(store_url, upgrade=False)
    try:
        (old,) = store.runs("gh")
        assert (old.owner_host, old.owner_pid, old.owner_start) == (None, None, None)
        new = store.start_run("gh")
        assert next(r for r in store.runs("gh") if r.id == new).owner_pid == os.getpid()
    finally:
        store.close()


def test_0004_fills_container_names_from_custom_project(
    tmp_path: Path, store_url: str, mapping_dir: Path
) -> None:
    """After 0004 a task stored with custom.project gets it as its container_name (so a
    `container = "Growth"` rule still matches it); other items get none, empty names and ids,
    and no status basis."""
    fill_previous_schema(store_url, mapping_dir)
    upgrade_with_cli(tmp_path, store_url)
    store = Store.open(store_url, upgrade=False)
    try:
        by_id = {i.external_id: i for i in store.stored_items()}
        assert by_id["1201"].container_name == "Growth"
        assert by_id["1"].container_name is None
        assert by_id["1"].assignee_ids == ()
        with store.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT status_basis, status_names FROM work_item"))
            assert {(basis, str(names)) for basis, names in rows} == {(None, "[]")}
    finally:
        store.close()


def test_0009_keeps_key_results_without_an_owner_until_the_next_load(
    tmp_path: Path, store_url: str, mapping_dir: Path
) -> None:
    """After 0009 a key result stored before has no owner (the objective's answers); the next
    load of a file giving it `owner` stores it, and the tree the reminder reads carries it."""
    fill_previous_schema(store_url, mapping_dir)
    upgrade_with_cli(tmp_path, store_url)
    store = Store.open(store_url, upgrade=False)
    try:
        day = date(2026, 11, 2)
        assert store.current_inputs(day)[0].key_results["conv"].owner is None
        owned = TREE.replace('unit = "%"', 'unit = "%"\nowner = "Lee <lee@example.com>"')
        write(mapping_dir / "okrs.toml", owned)
        report = store.apply_okr_tree(load_tree([mapping_dir]))
        assert "key_result:conv" in report.updated
        krs = store.current_inputs(day)[0].key_results
        assert (krs["conv"].owner, krs["latency"].owner) == ("Lee <lee@example.com>", None)
        assert [c.value for c in store.checkins("conv")] == [9.5]
    finally:
        store.close()
