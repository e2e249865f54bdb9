"""Hand-built OKR trees and work items for the signal tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from okrsync.models import ItemKind, Page, StatusCategory, WorkItem
from okrsync.okrfile import load_tree
from okrsync.store import Store
from tests.helpers import write

AS_OF = date(2026, 11, 15)  # 2026-Q4: 2026-10-01 … 2026-12-31, L = 91 days, 45 days in
SIGNAL_TREE = """
[[objective]]
id = "grow"
title = "Grow revenue"
period = "2026-Q4"

[[key_result]]
id = "conv"
objective = "grow"
title = "Trial conversion"
start = 8
target = 12

[[key_result]]
id = "latency"
objective = "grow"
title = "p95 latency"
start = 40
target = 10
direction = "decrease"

[[tactic]]
id = "checkout"
key_result = "conv"
title = "Checkout revamp"

[[tactic]]
id = "pricing"
key_result = "conv"
title = "Pricing page"
weight = 3

[[tactic]]
id = "cache"
key_result = "latency"
title = "Cache layer"
"""


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def days_ago(n: int, hour: int = 12) -> datetime:
    return at(AS_OF - timedelta(days=n), hour)


def item(
    n: int | str,
    status: str = "todo",
    *,
    kind: ItemKind = ItemKind.ISSUE,
    created: datetime | None = None,
    updated: datetime | None = None,
    completed: datetime | None = None,
    estimate: float | None = None,
    due: date | None = None,
) -> WorkItem:
    """A work item; done items complete when last updated unless told otherwise."""
    upd = updated or days_ago(3)
    done = status == "done"
    return WorkItem(
        "gh", str(n), f"o/r#{n}", kind, f"item {n}", StatusCategory(status), status,
        created or days_ago(20), upd, estimate=estimate, due=due,
        completed_at=completed or (upd if done else None),
    )  # fmt: skip


def load_tree_into(store: Store, folder: Path, tree: str = SIGNAL_TREE) -> None:
    write(folder / "okrs.toml", tree)
    store.apply_okr_tree(load_tree([folder]))


def link(
    store: Store,
    items: Sequence[WorkItem],
    tactic: str | Sequence[str] = "checkout",
    rules: Sequence[str] = ("r1",),
) -> None:
    """Store items linked to one or more tactics, by one or more rules each."""
    tactics = [tactic] if isinstance(tactic, str) else list(tactic)
    pairs = [(t, r) for t in tactics for r in rules]
    store.commit_page("gh", Page(list(items), {}), {i.external_id: pairs for i in items})
