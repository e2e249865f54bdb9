"""Reads of stored work items for linking: the matchable fields of every item, and the keys
and parents a page's linker needs, on one connection (one read snapshot)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from okrsync.models import CONTAINER_KINDS, StoredItem
from okrsync.store.tables import WORK_ITEM

WI = WORK_ITEM
CHUNK = 500
CONTAINERS = tuple(str(k) for k in CONTAINER_KINDS)
ItemId = tuple[str, str]  # (connector, external_id)
ITEM_COLUMNS = (
    WI.c.connector,
    WI.c.external_id,
    WI.c.key,
    WI.c.kind,
    WI.c.item_type,
    WI.c.title,
    WI.c.container,
    WI.c.parent_key,
    WI.c.labels,
    WI.c.milestone,
    WI.c.section,
    WI.c.assignee,
    WI.c.custom,
    WI.c.previous_keys,
    WI.c.deleted_at,
)


def _stored(m: sa.RowMapping) -> StoredItem:
    return StoredItem(
        m["connector"],
        m["external_id"],
        m["key"],
        m["kind"],
        m["item_type"],
        m["title"],
        m["container"],
        m["parent_key"],
        tuple(m["labels"] or ()),
        m["milestone"],
        m["section"],
        m["assignee"],
        dict(m["custom"] or {}),
        tuple(m["previous_keys"] or ()),
        m["deleted_at"] is not None,
    )


def load_items(conn: Connection) -> list[StoredItem]:
    """Every stored work item (deleted ones included), in a stable order."""
    q = sa.select(*ITEM_COLUMNS).order_by(WI.c.connector, WI.c.external_id)
    return [_stored(r) for r in conn.execute(q).mappings()]


def _chunks(seq: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(seq), CHUNK):
        yield seq[i : i + CHUNK]


class ItemReader:
    """Item reads on one connection, so a page's linker sees one snapshot of the store."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def keys_of(
        self, connector: str, external_ids: Sequence[str]
    ) -> Iterator[tuple[str, str, tuple[str, ...]]]:
        """(external_id, key, previous_keys) of the stored items among these ids."""
        for chunk in _chunks(external_ids):
            q = sa.select(WI.c.external_id, WI.c.key, WI.c.previous_keys).where(
                WI.c.connector == connector, WI.c.external_id.in_(chunk)
            )
            for ext, key, prev in self._conn.execute(q):
                yield ext, key, tuple(prev or ())

    def by_keys(
        self, connector: str, keys: Sequence[str]
    ) -> Iterator[tuple[Sequence[str], list[tuple[str, str | None, tuple[str, ...]]]]]:
        """Per chunk of keys: the chunk and the (key, parent_key, previous_keys) stored."""
        for chunk in _chunks(keys):
            q = sa.select(WI.c.key, WI.c.parent_key, WI.c.previous_keys).where(
                WI.c.connector == connector, WI.c.key.in_(chunk)
            )
            rows: list[Any] = list(self._conn.execute(q))
            yield chunk, [(k, p, tuple(prev or ())) for k, p, prev in rows]
