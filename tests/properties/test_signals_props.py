"""Properties of tactic completion over random item sets (SQLite store)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from okrsync.config import SignalsConfig
from okrsync.pipeline import signals_of
from okrsync.store import Store
from okrsync.store.tables import ITEM_LINK, WORK_ITEM
from tests.signal_fixtures import AS_OF, days_ago, item, link, load_tree_into

STATUSES = st.sampled_from(["todo", "in_progress", "done", "dropped"])
ITEMS = st.lists(st.tuples(STATUSES, st.integers(0, 120)), max_size=25)


@pytest.fixture(scope="module")
def prop_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """One SQLite store for every example; items are cleared between examples."""
    folder: Path = tmp_path_factory.mktemp("props")
    store = Store.open(f"sqlite:///{folder / 'p.db'}")
    load_tree_into(store, folder / "mappings")
    yield store
    store.close()


def reset(store: Store, specs: list[tuple[str, int]]) -> None:
    with store.tx() as conn:
        conn.execute(sa.delete(ITEM_LINK))
        conn.execute(sa.delete(WORK_ITEM))
    items = [item(n, s, updated=days_ago(age)) for n, (s, age) in enumerate(specs)]
    if items:
        link(store, items)


def completion(store: Store) -> float | None:
    return signals_of(store, SignalsConfig(), AS_OF).tactics["checkout"].completion


@settings(max_examples=40, deadline=None)
@given(specs=ITEMS, pick=st.integers(0, 1000))
def test_completion_in_bounds_and_never_falls_when_an_item_is_done(
    prop_store: Store, specs: list[tuple[str, int]], pick: int
) -> None:
    """Completion stays within 0..1 (or null) and an item moving to done never lowers it."""
    reset(prop_store, specs)
    before = completion(prop_store)
    assert before is None or 0 <= before <= 1
    if not specs:
        return
    n = pick % len(specs)
    link(prop_store, [item(n, "done", updated=days_ago(0, hour=23))])  # a later update
    after = completion(prop_store)
    assert after is not None
    assert 0 <= after <= 1
    assert before is None or after >= before
