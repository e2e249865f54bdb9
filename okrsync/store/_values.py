"""Reads for `okrsync explain` and `okrsync mappings values`: one stored item by its key with
its stored ancestors, and the values rules can name (labels, milestones, sections, types,
assignees, containers, custom fields) with how many live items carry each.

Values compare as rules compare them (ignoring case): "Growth" and "growth" are one value,
shown in its most common spelling. A value's `aliases` are the other names a rule condition
on it also matches: a container's name beside its key, an assignee's e-mail, username or
account id beside the display name.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from okrsync.models import StoredItem
from okrsync.store._items import ITEM_COLUMNS, _stored
from okrsync.store.tables import WORK_ITEM

WI = WORK_ITEM
MAX_DEPTH = 20  # parent levels followed, as in okrsync.linking
# (value in its most common spelling, live items carrying it, other names it also matches)
ValueCount = tuple[str, int, tuple[str, ...]]
FIELD_COLUMNS: dict[str, tuple[str, ...]] = {
    "labels": ("labels",),
    "milestone": ("milestone",),
    "section": ("section",),
    "type": ("kind", "item_type"),
    "assignee": ("assignee", "assignee_ids"),
    "container": ("container", "container_name", "boards", "board_names"),
    "iteration": ("iteration",),
    "custom": ("custom",),
}
FIELDS = tuple(FIELD_COLUMNS)


# -- one item and its ancestors ------------------------------------------------------------


def find_items(conn: Connection, key: str, connector: str | None) -> list[StoredItem]:
    """The stored items known as `key`: by key, else by tracker id, else by key ignoring
    case, else by an earlier key (after a move); deleted ones included."""
    where = [] if connector is None else [WI.c.connector == connector]
    for cond in (
        WI.c.key == key,
        WI.c.external_id == key,
        sa.func.lower(WI.c.key) == key.lower(),
    ):
        found = _select(conn, [*where, cond])
        if found:
            return found
    return _by_earlier_key(conn, key, where)


def ancestors(conn: Connection, connector: str, parent_key: str | None) -> list[StoredItem]:
    """The stored items up `parent_key`'s chain within `connector`, nearest first (each
    found by its key, else by an earlier key); stops at a cycle or MAX_DEPTH levels."""
    out: list[StoredItem] = []
    seen: set[str] = set()
    key = parent_key
    while key and key not in seen and len(out) < MAX_DEPTH:
        seen.add(key)
        where = [WI.c.connector == connector]
        found = _select(conn, [*where, WI.c.key == key]) or _by_earlier_key(conn, key, where)
        out += found
        key = found[0].parent_key if found else None
    return out


def _select(conn: Connection, where: Sequence[sa.ColumnElement[bool]]) -> list[StoredItem]:
    q = sa.select(*ITEM_COLUMNS).where(*where).order_by(WI.c.connector, WI.c.external_id)
    return [_stored(r) for r in conn.execute(q).mappings()]


def _by_earlier_key(
    conn: Connection, key: str, where: Sequence[sa.ColumnElement[bool]]
) -> list[StoredItem]:
    """Items whose earlier keys hold `key` (a text search of the JSON list, then checked)."""
    needle = json.dumps(key)
    for ch in ("\\", "%", "_"):
        needle = needle.replace(ch, "\\" + ch)
    text = sa.cast(WI.c.previous_keys, sa.Text)
    found = _select(conn, [*where, text.like(f"%{needle}%", escape="\\")])
    return [it for it in found if key in it.previous_keys]


# -- values rules can name -----------------------------------------------------------------


class _Tally:
    """Live items per value (ignoring case), each value's spellings and its aliases."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.spellings: dict[str, Counter[str]] = defaultdict(Counter)
        self.aliases: dict[str, dict[str, None]] = defaultdict(dict)

    def add(self, values: Iterable[str | None], aliases: Iterable[str | None] = ()) -> None:
        """Count one item under each of its distinct values."""
        seen: set[str] = set()
        for value in values:
            folded = value.casefold() if value else ""
            if not value or folded in seen:
                continue
            seen.add(folded)
            self.counts[folded] += 1
            self.spellings[folded][value] += 1
            for alias in aliases:
                if alias and alias.casefold() != folded:
                    self.aliases[folded].setdefault(alias)

    def _spelling(self, folded: str) -> str:
        """The value's most common spelling (on a tie, the first in code-point order)."""
        return min(self.spellings[folded].items(), key=lambda kv: (-kv[1], kv[0]))[0]

    def rows(self) -> list[ValueCount]:
        """Most common first, then alphabetically."""
        rows = [
            (self._spelling(f), n, tuple(self.aliases.get(f, ()))) for f, n in self.counts.items()
        ]
        return sorted(rows, key=lambda r: (-r[1], r[0].casefold(), r[0]))


def value_counts(
    conn: Connection, connector: str | None = None, fields: Sequence[str] = FIELDS
) -> dict[str, list[ValueCount]]:
    """Per field (custom fields as `custom.<name>`): the values live items carry, with how
    many carry each, most common first. Fields no live item has a value for are left out."""
    columns = sorted({c for f in fields for c in FIELD_COLUMNS[f]})
    q = sa.select(*(WI.c[c] for c in columns)).where(WI.c.deleted_at.is_(None))
    if connector is not None:
        q = q.where(WI.c.connector == connector)
    tallies: dict[str, _Tally] = defaultdict(_Tally)
    custom_names: dict[str, str] = {}
    for row in conn.execute(q).mappings():
        for name in fields:
            _count(name, row, tallies, custom_names)
    found = {name: t.rows() for name, t in tallies.items() if t.counts}
    order = {f: i for i, f in enumerate(fields)}
    return dict(sorted(found.items(), key=lambda kv: (order.get(kv[0].split(".")[0], 0), kv[0])))


def _count(
    name: str, row: sa.RowMapping, tallies: dict[str, _Tally], custom_names: dict[str, str]
) -> None:
    """Count one row's values of field `name`."""
    if name == "custom":
        for field, value in (row["custom"] or {}).items():
            label = custom_names.setdefault(str(field).casefold(), str(field))
            tallies[f"custom.{label}"].add((str(value),))
    elif name == "labels":
        tallies[name].add(row["labels"] or ())
    elif name == "type":
        tallies[name].add((row["kind"], row["item_type"]))
    elif name == "assignee":
        ids: list[Any] = list(row["assignee_ids"] or ())
        first = row["assignee"] or (ids.pop(0) if ids else None)
        tallies[name].add((first,), ids)
    elif name == "container":
        tallies[name].add((row["container"] or row["container_name"],), (row["container_name"],))
        for board, title in zip(row["boards"] or (), row["board_names"] or (), strict=False):
            tallies[name].add((board,), (title,))  # a board is a container too (issue 19)
    else:
        tallies[name].add((row[name],))
