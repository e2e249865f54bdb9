"""Read the OKR tree back from the store, with outcome progress and linked-item counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from okrsync.signals import outcome_progress
from okrsync.store import Checkin, Store


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
    counts = store.linked_item_counts()
    objs, krs, tacs = store.active_tree_rows()
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
