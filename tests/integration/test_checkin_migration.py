"""Migration 0005 (check-in audit): an upgrade from 0004 keeps every check-in with its id,
starts an empty audit trail, never reuses a deleted check-in's id, and is atomic under kill -9."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from okrsync.store import CheckinChange, Store
from okrsync.store.migrate import current_revision, upgrade
from okrsync.store.tables import CHECKIN
from tests.integration.test_migrate import (
    T0,
    fill_previous_schema,
    kill_upgrade_after,
    tables,
    upgrade_with_cli,
)

# (id, value, author, note) of the check-ins stored at 0004
OLD_CHECKINS = [(1, 9.5, None, None), (2, 10.0, "dana", "week 2")]


def fill_0004(url: str, mapping_dir: Path) -> None:
    """A store at revision 0004 with the previous schema's data and two check-ins of conv."""
    fill_previous_schema(url, mapping_dir)  # 0002, with check-in #1 (9.5)
    store = Store.open(url, upgrade=False)
    try:
        upgrade(store.engine, "0004")
        with store.tx() as conn:  # 0004's tables: add_checkin writes the audit of 0005
            conn.execute(
                sa.insert(CHECKIN).values(
                    key_result_id="conv",
                    value=10.0,
                    author="dana",
                    note="week 2",
                    recorded_at=T0 + timedelta(days=7),
                )
            )
    finally:
        store.close()


def checkins_of(url: str) -> list[tuple[int | None, float, str | None, str | None]]:
    store = Store.open(url, upgrade=False)
    try:
        return [(c.id, c.value, c.author, c.note) for c in store.checkins("conv")]
    finally:
        store.close()


def test_upgrade_from_0004_keeps_checkins_and_never_reuses_a_deleted_id(
    tmp_path: Path, store_url: str, mapping_dir: Path
) -> None:
    """After 0005 the check-ins keep their ids and values, the audit is empty, and once the
    newest (#2) is deleted the next check-in is #3: the audit's #2 stays unambiguous."""
    fill_0004(store_url, mapping_dir)
    upgrade_with_cli(tmp_path, store_url)
    assert checkins_of(store_url) == OLD_CHECKINS
    store = Store.open(store_url, upgrade=False)
    try:
        assert store.cursor("gh") == {"since": "a"}
        assert store.checkin_audit("conv") == []
        store.delete_checkin(2, CheckinChange(by="lee"))
        assert store.add_checkin("conv", 11.0).id == 3
        trail = store.checkin_audit("conv")
        assert [(a.action, a.checkin_id, a.old_value, a.value) for a in trail] == [
            ("delete", 2, 10.0, None),
            ("add", 3, None, 11.0),
        ]
    finally:
        store.close()


def test_upgrade_killed_inside_0005_leaves_0004_and_its_checkins(
    tmp_path: Path, store_url: str, mapping_dir: Path
) -> None:
    """kill -9 inside 0005 (on SQLite right after the old check-in table is dropped for its
    rebuild) leaves revision 0004 with every check-in; the next upgrade completes it."""
    fill_0004(store_url, mapping_dir)
    sqlite = store_url.startswith("sqlite")
    kill_upgrade_after(
        tmp_path, store_url, "DROP TABLE checkin" if sqlite else "CREATE TABLE checkin_audit"
    )
    engine = sa.create_engine(store_url)
    try:
        assert current_revision(engine) == "0004"
    finally:
        engine.dispose()
    assert "checkin_audit" not in tables(store_url)
    assert checkins_of(store_url) == OLD_CHECKINS
    upgrade_with_cli(tmp_path, store_url)
    assert checkins_of(store_url) == OLD_CHECKINS
    assert "checkin_audit" in tables(store_url)
