"""Item links written by a remap: the items and links read and the changes written in one
transaction, under the link table's write lock."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from okrsync.models import StoredItem
from okrsync.store._items import load_items
from okrsync.store.tables import ITEM_LINK

LINK = ITEM_LINK
LinkRow = tuple[str, str, str, str]  # (connector, external_id, tactic_id, rule_id)


@dataclass(frozen=True)
class Relinked:
    items: list[StoredItem]
    links: int
    added: int
    removed: int


def relink(
    conn: Connection, dialect: str, wanted_of: Callable[[list[StoredItem]], set[LinkRow]]
) -> Relinked:
    """Read every item, ask `wanted_of` for the links they should have, write only changes."""
    _lock_links(conn, dialect)
    items = load_items(conn)
    wanted = wanted_of(items)
    existing = {
        (r.connector, r.external_id, r.tactic_id, r.rule_id)
        for r in conn.execute(
            sa.select(LINK.c.connector, LINK.c.external_id, LINK.c.tactic_id, LINK.c.rule_id)
        )
    }
    _delete_links(conn, existing - wanted)
    _insert_links(conn, wanted - existing)
    return Relinked(items, len(wanted), len(wanted - existing), len(existing - wanted))


def _lock_links(conn: Connection, dialect: str) -> None:
    """Take the write lock first, so the items read and the links written are one snapshot."""
    if dialect == "sqlite":
        conn.execute(sa.delete(LINK).where(sa.false()))
    elif dialect == "postgresql":
        conn.execute(sa.text("LOCK TABLE item_link IN EXCLUSIVE MODE"))


def _delete_links(conn: Connection, rows: Collection[LinkRow]) -> None:
    if not rows:
        return
    stmt = sa.delete(LINK).where(
        LINK.c.connector == sa.bindparam("c"),
        LINK.c.external_id == sa.bindparam("e"),
        LINK.c.tactic_id == sa.bindparam("t"),
        LINK.c.rule_id == sa.bindparam("r"),
    )
    conn.execute(stmt, [{"c": c, "e": e, "t": t, "r": r} for c, e, t, r in sorted(rows)])


def _insert_links(conn: Connection, rows: Collection[LinkRow]) -> None:
    if not rows:
        return
    ts = datetime.now(UTC)
    values = [
        {"connector": c, "external_id": e, "tactic_id": t, "rule_id": r, "linked_at": ts}
        for c, e, t, r in sorted(rows)
    ]
    conn.execute(sa.insert(LINK), values)
