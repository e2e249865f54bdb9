"""Reads of the active OKR tree for display: its rows, and live linked items per tactic."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from okrsync.models import CONTAINER_KINDS
from okrsync.store.tables import ITEM_LINK, KEY_RESULT, OBJECTIVE, TACTIC, WORK_ITEM

CONTAINERS = tuple(str(k) for k in CONTAINER_KINDS)


class TreeRows(NamedTuple):
    """The active rows, each ordered by id; every row reads like its table's columns."""

    objectives: Sequence[Any]
    key_results: Sequence[Any]
    tactics: Sequence[Any]


def active_rows(engine: Engine) -> TreeRows:
    """Active objectives, key results and tactics (three queries on one connection)."""
    live = sa.column("archived_at").is_(None)
    by_id: sa.ColumnClause[Any] = sa.column("id")
    with engine.connect() as conn:
        return TreeRows(
            *(
                conn.execute(sa.select(t).where(live).order_by(by_id)).all()
                for t in (OBJECTIVE, KEY_RESULT, TACTIC)
            )
        )


def active_ids(engine: Engine) -> dict[str, list[str]]:
    """The active ids of each kind ("objective", "key_result", "tactic"), ordered."""
    kinds = (("objective", OBJECTIVE), ("key_result", KEY_RESULT), ("tactic", TACTIC))
    found: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for kind, table in kinds:
            q = sa.select(table.c.id).where(table.c.archived_at.is_(None)).order_by(table.c.id)
            found[kind] = [row[0] for row in conn.execute(q)]
    return found


def linked_item_counts(engine: Engine) -> dict[str, int]:
    """Live work items (containers left out) linked to each tactic, counted once each."""
    wi, link = WORK_ITEM, ITEM_LINK
    q = (
        sa.select(
            link.c.tactic_id, sa.func.count(sa.distinct(wi.c.connector + ":" + wi.c.external_id))
        )
        .join(
            wi, sa.and_(wi.c.connector == link.c.connector, wi.c.external_id == link.c.external_id)
        )
        .where(wi.c.deleted_at.is_(None), wi.c.kind.not_in(CONTAINERS))
        .group_by(link.c.tactic_id)
    )
    with engine.connect() as conn:
        return {tid: int(n) for tid, n in conn.execute(q)}
