"""Read the OKR tree back from the store, with outcome progress and linked-item counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import sqlalchemy as sa

from okrsync.models import CONTAINER_KINDS
from okrsync.signals import outcome_progress
from okrsync.store import Checkin, Store
from okrsync.store._store import LINK, WI
from okrsync.store.tables import KEY_RESULT, OBJECTIVE, TACTIC

CONTAINERS = tuple(str(k) for k in CONTAINER_KINDS)


@dataclass
class TacticView:
    id: str
    title: str
    weight: float
    linked_items: int


@dataclass
class KeyResultView:
    id: str
    title: str
    unit: str | None
    start: float
    target: float
    direction: str
    weight: float
    latest: Checkin | None
    tactics: list[TacticView] = field(default_factory=list)

    @property
    def current(self) -> float | None:
        return self.latest.value if self.latest else None

    @property
    def progress(self) -> float | None:
        return outcome_progress(self.start, self.target, self.current, self.direction)


@dataclass
class ObjectiveView:
    id: str
    title: str
    owner: str | None
    period: str | None
    start: date
    end: date
    parent: str | None
    weight: float
    key_results: list[KeyResultView] = field(default_factory=list)


def load_tree_view(store: Store) -> list[ObjectiveView]:
    """Active objectives → key results → tactics, ordered by id (four queries)."""
    latest = store.latest_checkins()
    counts = _link_counts(store)
    with store.engine.connect() as conn:
        objs = conn.execute(
            sa.select(OBJECTIVE).where(sa.column("archived_at").is_(None)).order_by(sa.column("id"))
        ).all()
        krs = conn.execute(
            sa.select(KEY_RESULT)
            .where(sa.column("archived_at").is_(None))
            .order_by(sa.column("id"))
        ).all()
        tacs = conn.execute(
            sa.select(TACTIC).where(sa.column("archived_at").is_(None)).order_by(sa.column("id"))
        ).all()
    views = {
        o.id: ObjectiveView(
            o.id, o.title, o.owner, o.period, o.period_start, o.period_end, o.parent_id, o.weight
        )
        for o in objs
    }
    kr_views: dict[str, KeyResultView] = {}
    for k in krs:
        kv = KeyResultView(
            k.id,
            k.title,
            k.unit,
            k.start_value,
            k.target_value,
            k.direction,
            k.weight,
            latest.get(k.id),
        )
        kr_views[k.id] = kv
        if k.objective_id in views:
            views[k.objective_id].key_results.append(kv)
    for t in tacs:
        if t.key_result_id in kr_views:
            kr_views[t.key_result_id].tactics.append(
                TacticView(t.id, t.title, t.weight, counts.get(t.id, 0))
            )
    return list(views.values())


def _link_counts(store: Store) -> dict[str, int]:
    q = (
        sa.select(
            LINK.c.tactic_id, sa.func.count(sa.distinct(WI.c.connector + ":" + WI.c.external_id))
        )
        .join(
            WI, sa.and_(WI.c.connector == LINK.c.connector, WI.c.external_id == LINK.c.external_id)
        )
        .where(WI.c.deleted_at.is_(None), WI.c.kind.not_in(CONTAINERS))
        .group_by(LINK.c.tactic_id)
    )
    with store.engine.connect() as conn:
        return {tid: int(n) for tid, n in conn.execute(q)}
