"""Item reads: the items behind a tactic's counts (`okrsync items`, `export --items`) and the
live items of a connector linked to no active tactic.

Both select with `_signal_reads.counting()`, the very predicates the signal aggregate sums,
bound to the same `_aggregate_params`: an item is listed under a filter exactly when the
aggregate counts it in the column of that name, so a list and its count cannot disagree.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from okrsync.store._signal_reads import CHUNK, _aggregate_params, active_tactics, counting
from okrsync.store._sql import chunks
from okrsync.store.tables import ITEM_LINK, WORK_ITEM

if TYPE_CHECKING:
    from okrsync.config import SignalsConfig
    from okrsync.signal_types import Structure

# The aggregate's count columns an item list can be narrowed to (`counting().counts`).
ITEM_FILTERS = (
    "total", "todo", "in_progress", "done", "dropped", "stale", "overdue", "scope_added",
    "done_in_window", "unestimated",
)  # fmt: skip


@dataclass(frozen=True)
class ListedItem:
    """One work item as `okrsync items` lists it; `tactic_id` and `rule_id` (the lowest rule
    linking it) are None for an unlinked item."""

    tactic_id: str | None
    rule_id: str | None
    connector: str
    key: str
    title: str
    status: str
    assignee: str | None
    created: datetime
    updated: datetime
    due: date | None
    completed_at: datetime | None
    url: str | None
    boards: Sequence[str] = ()  # GitHub Projects boards ("project:acme/12") and their titles
    board_names: Sequence[str] = ()
    iteration: str | None = None

    @property
    def board_label(self) -> str:
        """The boards (by title where known) and the iteration, e.g. `Roadmap · Sprint 14`;
        empty when the item is on no board."""
        names = list(self.board_names)
        shown = [names[i] if i < len(names) and names[i] else b for i, b in enumerate(self.boards)]
        return " · ".join([", ".join(shown), *([self.iteration] if self.iteration else [])])

    def as_json(self) -> dict[str, Any]:
        """Plain JSON values: dates as YYYY-MM-DD, timestamps as ISO 8601."""
        return {
            "tactic": self.tactic_id,
            "rule": self.rule_id,
            "connector": self.connector,
            "key": self.key,
            "title": self.title,
            "status": self.status,
            "assignee": self.assignee,
            "created": self.created.isoformat(),
            "updated": self.updated.isoformat(),
            "due": None if self.due is None else self.due.isoformat(),
            "completed_at": None if self.completed_at is None else self.completed_at.isoformat(),
            "url": self.url,
            "boards": list(self.boards),
            "board_names": list(self.board_names),
            "iteration": self.iteration,
        }


def _item_columns() -> tuple[sa.ColumnElement[Any], ...]:
    w = WORK_ITEM
    return (
        w.c.connector, w.c.key, w.c.title, w.c.status, w.c.assignee, w.c.created, w.c.updated,
        w.c.due, w.c.completed_at, w.c.url, w.c.boards, w.c.board_names, w.c.iteration,
    )  # fmt: skip


def _filters(
    counts: Mapping[str, sa.ColumnElement[bool]], filters: Collection[str]
) -> list[sa.ColumnElement[bool]]:
    unknown = sorted(set(filters) - set(counts))
    if unknown:
        raise ValueError(f"unknown item filter(s) {unknown}; known: {', '.join(ITEM_FILTERS)}")
    return [counts[f] for f in sorted(filters)]


@cache
def _linked_statement(filters: frozenset[str]) -> sa.Select[Any]:
    """The counted items of the bound `tactic_ids`, each once per tactic (its lowest rule),
    narrowed to the items every named count holds."""
    link, w, p = ITEM_LINK, WORK_ITEM, counting()
    return (
        sa.select(link.c.tactic_id, link.c.rule_id, *_item_columns())
        .select_from(w)
        .join(
            link, sa.and_(link.c.connector == w.c.connector, link.c.external_id == w.c.external_id)
        )
        .where(
            link.c.tactic_id.in_(sa.bindparam("tactic_ids", expanding=True)),
            p.first_rule,
            p.counted,
            *_filters(p.counts, filters),
        )
        .order_by(link.c.tactic_id, w.c.connector, w.c.key, w.c.external_id)
    )


def tactic_items(
    engine: Engine,
    structure: Structure,
    as_of: date,
    cfg: SignalsConfig,
    tactic_ids: Collection[str] | None = None,
    filters: Collection[str] = (),
) -> dict[str, list[ListedItem]]:
    """The items each tactic of `structure` (or of `tactic_ids`) counts, narrowed by
    `filters` (names of `ITEM_FILTERS`, all of which must hold); every tactic gets a list."""
    wanted = [t for t in (structure.tactics if tactic_ids is None else tactic_ids)
              if t in structure.tactics]  # fmt: skip
    by_start: dict[date, list[str]] = defaultdict(list)
    for tid in wanted:
        by_start[structure.period_of_tactic(tid).start].append(tid)
    stmt = _linked_statement(frozenset(filters))
    found: dict[str, list[ListedItem]] = {tid: [] for tid in wanted}
    with engine.connect() as conn:
        for start, ids in by_start.items():
            params = _aggregate_params(start, as_of, cfg)
            for chunk in chunks(sorted(ids), CHUNK):
                for row in conn.execute(stmt, {**params, "tactic_ids": list(chunk)}):
                    found[row.tactic_id].append(ListedItem(*row))
    return found


# Without a tactic there is no period: an unlinked item is never "scope added".
UNLINKED_FILTERS = frozenset(ITEM_FILTERS) - {"scope_added"}


@cache
def _unlinked_statement(filters: frozenset[str]) -> sa.Select[Any]:
    """A connector's present items (not deleted, not containers) with no link to an active
    tactic, narrowed to the items every named count would hold."""
    link, w, p = ITEM_LINK, WORK_ITEM, counting()
    linked = (
        sa.select(link.c.tactic_id)
        .where(
            link.c.connector == w.c.connector,
            link.c.external_id == w.c.external_id,
            link.c.tactic_id.in_(active_tactics()),
        )
        .exists()
    )
    return (
        sa.select(sa.null(), sa.null(), *_item_columns())
        .where(
            w.c.connector == sa.bindparam("connector"),
            p.present,
            ~linked,
            *_filters(p.counts, filters),
        )
        .order_by(w.c.key, w.c.external_id)
    )


def unlinked_items(
    engine: Engine,
    connector: str,
    as_of: date,
    cfg: SignalsConfig,
    filters: Collection[str] = (),
) -> list[ListedItem]:
    """The connector's present items that no active tactic counts, narrowed by `filters`
    (of `UNLINKED_FILTERS`)."""
    outside = sorted(set(filters) - UNLINKED_FILTERS)
    if outside:
        raise ValueError(f"filter(s) {outside} need a tactic's period")
    params = {**_aggregate_params(as_of, as_of, cfg), "connector": connector}
    with engine.connect() as conn:
        rows = conn.execute(_unlinked_statement(frozenset(filters)), params)
        return [ListedItem(*row) for row in rows]


def item_connectors(engine: Engine) -> list[str]:
    """The connectors the store holds items of, ordered."""
    q = sa.select(WORK_ITEM.c.connector).distinct().order_by(WORK_ITEM.c.connector)
    with engine.connect() as conn:
        return list(conn.execute(q).scalars())
