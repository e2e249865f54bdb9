"""Work items in the store: the item commit (the hot path of every sync) and the reads of
stored items for linking (the matchable fields of every item, and the keys and parents a
page's linker needs, on one connection: one read snapshot)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from types import SimpleNamespace
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from okrsync.models import CONTAINER_KINDS, IdList, StatusCategory, StoredItem, WorkItem
from okrsync.store._sql import chunks, upsert
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
    WI.c.container_name,
    WI.c.assignee_ids,
    WI.c.boards,
    WI.c.board_names,
    WI.c.iteration,
    WI.c.iteration_start,
    WI.c.iteration_end,
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
        m["container_name"],
        tuple(m["assignee_ids"] or ()),
        tuple(m["boards"] or ()),
        tuple(m["board_names"] or ()),
        m["iteration"],
        m["iteration_start"],
        m["iteration_end"],
    )


def load_items(conn: Connection) -> list[StoredItem]:
    """Every stored work item (deleted ones included), in a stable order."""
    q = sa.select(*ITEM_COLUMNS).order_by(WI.c.connector, WI.c.external_id)
    return [_stored(r) for r in conn.execute(q).mappings()]


class ItemReader:
    """Item reads on one connection, so a page's linker sees one snapshot of the store."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def keys_of(
        self, connector: str, external_ids: Sequence[str]
    ) -> Iterator[tuple[str, str, tuple[str, ...]]]:
        """(external_id, key, previous_keys) of the stored items among these ids."""
        for chunk in chunks(external_ids, CHUNK):
            q = sa.select(WI.c.external_id, WI.c.key, WI.c.previous_keys).where(
                WI.c.connector == connector, WI.c.external_id.in_(chunk)
            )
            for ext, key, prev in self._conn.execute(q):
                yield ext, key, tuple(prev or ())

    def by_keys(
        self, connector: str, keys: Sequence[str]
    ) -> Iterator[tuple[Sequence[str], list[tuple[str, str | None, tuple[str, ...]]]]]:
        """Per chunk of keys: the chunk and the (key, parent_key, previous_keys) stored."""
        for chunk in chunks(keys, CHUNK):
            q = sa.select(WI.c.key, WI.c.parent_key, WI.c.previous_keys).where(
                WI.c.connector == connector, WI.c.key.in_(chunk)
            )
            rows: list[Any] = list(self._conn.execute(q))
            yield chunk, [(k, p, tuple(prev or ())) for k, p, prev in rows]


# --- the item commit ---------------------------------------------------------------------


@dataclass
class PageResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0


def upsert_items(
    conn: Connection,
    connector: str,
    items: Sequence[WorkItem],
    ts: datetime,
    results: Sequence[PageResult],
) -> None:
    """Upsert `items`; `results[i]` counts what happened to `items[i]` (its page's)."""
    if not items:
        return
    if conn.dialect.name == "sqlite":
        _upsert_items_sqlite(conn, connector, items, ts, results)
    else:
        _upsert_items_generic(conn, connector, items, ts, results)


def _upsert_items_generic(
    conn: Connection,
    connector: str,
    items: Sequence[WorkItem],
    ts: datetime,
    results: Sequence[PageResult],
) -> None:
    existing: dict[str, Any] = {}
    ids = [i.external_id for i in items]
    for chunk in chunks(ids, CHUNK):
        q = sa.select(
            WI.c.external_id,
            WI.c.updated,
            WI.c.key,
            WI.c.container,
            WI.c.previous_keys,
            WI.c.deleted_at,
            WI.c.lost_at,
            WI.c.first_seen,
            WI.c.title,
            WI.c.boards,
        ).where(WI.c.connector == connector, WI.c.external_id.in_(chunk))
        existing.update({r.external_id: r for r in conn.execute(q)})
    rows: dict[str, dict[str, Any]] = {}
    for item, result in zip(items, results, strict=True):
        old = existing.get(item.external_id)
        if (
            old is not None
            and old.updated == item.updated
            and old.key == item.key
            and old.container == item.container
            and old.title == item.title
            and _same_boards(old.boards, item.boards)
            and (old.deleted_at is None and old.lost_at is None)
        ):
            result.unchanged += 1
            continue
        prev = list(old.previous_keys) if old is not None else []
        if old is not None and old.key != item.key and old.key not in prev:
            prev.append(old.key)
        _count_change(result, created=old is None)
        values = _item_values(item, prev, old.first_seen if old else ts, ts)
        rows[item.external_id] = values
        # A later sighting in this batch compares with this one, as a later commit would.
        existing[item.external_id] = SimpleNamespace(**values)
    if rows:
        _bulk_upsert(conn, list(rows.values()))


def _bulk_upsert(conn: Connection, rows: list[dict[str, Any]]) -> None:
    dialect = conn.dialect.name
    ins = upsert(dialect, WI)
    cols = {
        c: getattr(ins.excluded, c)
        for c in rows[0]
        if c not in ("connector", "external_id", "first_seen")
    }
    conn.execute(
        ins.on_conflict_do_update(index_elements=["connector", "external_id"], set_=cols),
        rows,
    )


_ITEM_COLS = tuple(c.name for c in WI.columns)
assert _ITEM_COLS == (  # noqa: S101 - `_sqlite_item_row` writes in exactly this order
    "connector",
    "external_id",
    "key",
    "kind",
    "item_type",
    "title",
    "url",
    "container",
    "parent_key",
    "labels",
    "milestone",
    "section",
    "assignee",
    "estimate",
    "due",
    "created",
    "updated",
    "completed_at",
    "status_raw",
    "status",
    "custom",
    "previous_keys",
    "deleted_at",
    "lost_at",
    "first_seen",
    "last_seen",
    "status_basis",
    "status_names",
    "container_name",
    "assignee_ids",
    "boards",
    "board_names",
    "iteration",
    "iteration_start",
    "iteration_end",
)
_SQLITE_UPSERT = (
    f"INSERT INTO work_item ({', '.join(_ITEM_COLS)}) VALUES ({', '.join('?' * len(_ITEM_COLS))}) "
    "ON CONFLICT (connector, external_id) DO UPDATE SET "
    + ", ".join(
        f"{c} = excluded.{c}"
        for c in _ITEM_COLS
        if c not in ("connector", "external_id", "first_seen")
    )
)
_COL_PREVIOUS_KEYS = _ITEM_COLS.index("previous_keys")
_COL_FIRST_SEEN = _ITEM_COLS.index("first_seen")
# Rows per upsert statement (128 x 35 parameters, well under SQLite's 32,766), a power of two.
# The sqlite3 module keeps up to 128 prepared statements per connection, and a prepared
# multi-row upsert costs ~4 KB per row: one statement per group size (a group holds whatever
# pages were waiting, any count up to `commit_items`) kept ~60 MB of them alive during a
# sync. The rows of a group go in statements of 128 rows and the rest in powers of two
# (64, 32, ..., 1): eight shapes in all, ~1 MB prepared, whatever the group sizes.
UPSERT_ROWS = 128
# Ids per `existing` SELECT, a power of two: a shorter list is padded to the next power of
# two with its last id (an IN list ignores repeats), so ten shapes of that statement exist.
SELECT_IDS = 512


@functools.cache
def _upsert_sql(rows: int) -> str:
    """The upsert of `rows` rows in one statement (see `_upsert_items_sqlite`)."""
    values = "(" + ", ".join("?" * len(_ITEM_COLS)) + ")"
    head, _, tail = _SQLITE_UPSERT.partition(f" VALUES {values} ")
    return f"{head} VALUES {', '.join([values] * rows)} {tail}"


def statement_rows(n: int) -> list[int]:
    """`n` rows as statement sizes: `UPSERT_ROWS` each, then the rest in powers of two."""
    full, rest = divmod(n, UPSERT_ROWS)
    sizes = [UPSERT_ROWS] * full
    size = UPSERT_ROWS // 2
    while rest:
        if rest >= size:
            sizes.append(size)
            rest -= size
        size //= 2
    return sizes


def padded(ids: Sequence[str]) -> Sequence[str]:
    """`ids` (1 to `SELECT_IDS` of them) padded with the last to a power-of-two length."""
    size = 1 << (len(ids) - 1).bit_length()
    return [*ids, *[ids[-1]] * (size - len(ids))] if size > len(ids) else ids


def _json(value: Any) -> str:
    """JSON text for a JSON column (orjson: ~10x json.dumps; the column reads any JSON)."""
    return orjson.dumps(value).decode()


def sqlite_dt(v: datetime | None) -> str | None:
    """A datetime as SQLAlchemy stores it on SQLite: naive UTC with microseconds."""
    if v is None:
        return None
    if v.tzinfo is None:
        raise ValueError("naive datetime given to the store; use an aware UTC datetime")
    if v.utcoffset():
        v = v.astimezone(UTC)
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (  # noqa: UP031 - the hot path
        v.year,
        v.month,
        v.day,
        v.hour,
        v.minute,
        v.second,
        v.microsecond,
    )


def _same_boards(stored: Any, boards: Sequence[str]) -> bool:
    """Whether the stored `boards` (a list, or SQLite's JSON text) are `boards`: an item that
    left or joined a board is rewritten even when its `updated` did not move."""
    if isinstance(stored, str):
        stored = json.loads(stored)
    return list(stored or ()) == list(boards)


_SQLITE_EXISTING = (
    "SELECT external_id, updated, key, container, previous_keys, deleted_at, lost_at, "
    "first_seen, title, boards FROM work_item WHERE connector = ? AND external_id IN ({})"
)


def _upsert_items_sqlite(
    conn: Connection,
    connector: str,
    items: Sequence[WorkItem],
    ts: datetime,
    results: Sequence[PageResult],
) -> None:
    """The hot path of a sync on SQLite: one SELECT and one multi-row upsert per page.

    Values are encoded exactly as SQLAlchemy stores them on SQLite (naive-UTC datetimes with
    microseconds, JSON text), skipping its per-value bind processing, which cost most of the
    page time.

    Rows go in multi-row statements (`statement_rows`), not `executemany`: pages are stored
    on a worker thread while the event loop parses the next one, and `executemany` gives up
    and takes back the GIL around every row's step. Each take-back waits for the event loop
    to let go (up to the 5 ms switch interval), which stretched a 100-row page to about twice
    its CPU time. One statement releases the GIL once for many rows.
    """
    existing: dict[str, tuple[Any, ...]] = {}
    ids = [i.external_id for i in items]
    for chunk in chunks(ids, SELECT_IDS):
        chunk = padded(chunk)
        sql = _SQLITE_EXISTING.format(", ".join("?" * len(chunk)))
        existing.update({r[0]: tuple(r) for r in conn.exec_driver_sql(sql, (connector, *chunk))})
    now_s = sqlite_dt(ts)
    rows: dict[str, tuple[Any, ...]] = {}
    for item, result in zip(items, results, strict=True):
        updated = sqlite_dt(item.updated)
        old = existing.get(item.external_id)
        if (
            old is not None
            and old[1:4] == (updated, item.key, item.container)
            and old[8] == item.title
            and _same_boards(old[9], item.boards)
            and (old[5] is None and old[6] is None)
        ):
            result.unchanged += 1
            continue
        prev: list[str] = json.loads(old[4]) if old is not None else []
        if old is not None and old[2] != item.key and old[2] not in prev:
            prev.append(old[2])
        _count_change(result, created=old is None)
        row = _sqlite_item_row(item, updated, prev, old[7] if old else now_s, now_s)
        rows[item.external_id] = row
        # A later sighting in this batch compares with this one, as a later commit would.
        existing[item.external_id] = (
            item.external_id,
            updated,
            item.key,
            item.container,
            row[_COL_PREVIOUS_KEYS],
            None,
            None,
            row[_COL_FIRST_SEEN],
            item.title,
            list(item.boards),
        )
    values = list(rows.values())
    start = 0
    for size in statement_rows(len(values)):
        batch = values[start : start + size]
        start += size
        conn.exec_driver_sql(_upsert_sql(size), tuple(chain.from_iterable(batch)))


def _count_change(result: PageResult, *, created: bool) -> None:
    if created:
        result.created += 1
    else:
        result.updated += 1


def _sqlite_item_row(
    i: WorkItem, updated: str | None, prev: list[str], first_seen: str | None, now_s: str | None
) -> tuple[Any, ...]:
    """A work_item row in `_ITEM_COLS` order."""
    return (
        i.connector,
        i.external_id,
        i.key,
        str(i.kind),
        i.item_type,
        i.title,
        i.url,
        i.container,
        i.parent_key,
        _json(list(i.labels)),
        i.milestone,
        i.section,
        i.assignee,
        i.estimate,
        i.due.isoformat() if i.due else None,
        sqlite_dt(i.created),
        updated,
        sqlite_dt(i.completed_at),
        i.status_raw,
        str(i.status),
        _json(i.custom),
        _json(prev),
        None,
        None,
        first_seen,
        now_s,
        None if i.status_basis is None else str(i.status_basis),
        _json(list(i.status_names)),
        i.container_name,
        _json(list(i.assignee_ids)),
        _json(list(i.boards)),
        _json(list(i.board_names)),
        i.iteration,
        i.iteration_start.isoformat() if i.iteration_start else None,
        i.iteration_end.isoformat() if i.iteration_end else None,
    )


def _item_values(
    item: WorkItem, prev: list[str], first_seen: datetime, ts: datetime
) -> dict[str, Any]:
    return {
        "connector": item.connector,
        "external_id": item.external_id,
        "key": item.key,
        "kind": str(item.kind),
        "item_type": item.item_type,
        "title": item.title,
        "url": item.url,
        "container": item.container,
        "parent_key": item.parent_key,
        "labels": list(item.labels),
        "milestone": item.milestone,
        "section": item.section,
        "assignee": item.assignee,
        "estimate": item.estimate,
        "due": item.due,
        "created": item.created,
        "updated": item.updated,
        "completed_at": item.completed_at,
        "status_raw": item.status_raw,
        "status": str(item.status),
        "custom": dict(item.custom),
        "previous_keys": prev,
        "deleted_at": None,
        "lost_at": None,
        "first_seen": first_seen,
        "last_seen": ts,
        "status_basis": None if item.status_basis is None else str(item.status_basis),
        "status_names": list(item.status_names),
        "container_name": item.container_name,
        "assignee_ids": list(item.assignee_ids),
        "boards": list(item.boards),
        "board_names": list(item.board_names),
        "iteration": item.iteration,
        "iteration_start": item.iteration_start,
        "iteration_end": item.iteration_end,
    }


def restatus(
    conn: Connection, connector: str, categorise: Callable[[StatusCategory, Sequence[str]], str]
) -> int:
    """Re-derive the status of `connector`'s stored items that have a status basis; write the
    ones that change. Returns how many changed."""
    q = sa.select(WI.c.external_id, WI.c.status, WI.c.status_basis, WI.c.status_names).where(
        WI.c.connector == connector, WI.c.status_basis.is_not(None)
    )
    changed = [
        {"c": connector, "e": ext, "s": new}
        for ext, status, basis, names in conn.execute(q)
        if (new := str(categorise(StatusCategory(basis), tuple(names or ())))) != status
    ]
    if changed:
        stmt = (
            sa.update(WI)
            .where(WI.c.connector == sa.bindparam("c"), WI.c.external_id == sa.bindparam("e"))
            .values(status=sa.bindparam("s"))
        )
        conn.execute(stmt, changed)
    return len(changed)


# --- deletions and censuses --------------------------------------------------------------


def mark_deleted(conn: Connection, connector: str, ids: Iterable[str], ts: datetime) -> int:
    """Flag these items deleted (kept stored); how many were not flagged before."""
    total = 0
    for chunk in chunks(list(ids), CHUNK):
        res = conn.execute(
            sa.update(WI)
            .where(
                WI.c.connector == connector,
                WI.c.external_id.in_(chunk),
                WI.c.deleted_at.is_(None),
            )
            .values(deleted_at=ts)
        )
        total += res.rowcount or 0
    return total


# The census on SQLite: one statement, the present ids as one JSON array (JSON1, which
# migration 0004 relies on too). Reading the container's ids into Python instead stepped
# SQLite once per stored item, each step handing the GIL to the event loop and waiting to
# get it back: ~0.3 s of a 30k-item first sync.
_SQLITE_CENSUS = (
    "UPDATE work_item SET deleted_at = ? WHERE connector = ? AND container = ? "
    "AND deleted_at IS NULL AND external_id NOT IN (SELECT value FROM json_each(?))"
)


def apply_census(
    conn: Connection, connector: str, container: str, present: IdList | list[str], ts: datetime
) -> int:
    """Flag deleted the live items of `container` missing from `present`; how many."""
    if conn.dialect.name == "sqlite":
        listed = present.json() if isinstance(present, IdList) else _json(present)
        args = (sqlite_dt(ts), connector, container, listed)
        return conn.exec_driver_sql(_SQLITE_CENSUS, args).rowcount or 0
    known = conn.execute(
        sa.select(WI.c.external_id).where(
            WI.c.connector == connector,
            WI.c.container == container,
            WI.c.deleted_at.is_(None),
        )
    ).scalars()
    gone = set(known) - set(present)
    return mark_deleted(conn, connector, sorted(gone), ts)
