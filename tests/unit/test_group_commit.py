"""Pages fetched ahead are stored together: `PageQueue` groups them, `Store.commit_pages`
stores a group exactly as committing its pages one by one would, in one transaction."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Unpack

import pytest
import sqlalchemy as sa
import structlog

from okrsync.errors import StoreError
from okrsync.mapping import Matcher
from okrsync.models import Page, WorkItem
from okrsync.pipeline import page_linker
from okrsync.store import Link, PageResult, Store
from okrsync.sync import PageQueue, RunResult, _drain
from tests.unit.test_mapping import EPIC_RULES, load, store_links
from tests.unit.test_mapping import item as jira_item
from tests.unit.test_store import T0, ItemFields, item


def pages_for(connector: str) -> list[Page]:
    """Four consecutive pages: an item seen again unchanged (an offset shift) and again
    changed (edited while paging), keys that move within the group, and a census in the middle
    that must not see the items of the pages after it."""

    def it(
        n: int, *, updated: datetime = T0, key: str | None = None, **kw: Unpack[ItemFields]
    ) -> WorkItem:
        return dataclasses.replace(item(n, updated=updated, key=key, **kw), connector=connector)

    later = T0 + timedelta(minutes=3)
    census = {"o/r": ["1", "2", "4"]}
    return [
        Page([it(1), it(2), it(3)], {"page": 1}),
        Page([it(3), it(4), it(2, updated=later)], {"page": 2}, census=census),
        Page([it(5), it(6, container="o/other"), it(7)], {"page": 3}, deleted=["6"]),
        Page(
            [it(1, key="o/moved#1", updated=later), it(7, key="o/m#7", updated=later)], {"page": 4}
        ),
    ]


def snapshot(store: Store, connector: str) -> list[tuple[object, ...]]:
    return sorted(
        (
            i.external_id,
            i.key,
            i.updated,
            tuple(i.previous_keys),
            i.deleted_at is not None,
            i.container,
        )
        for i in store.items(connector)
    )


def test_a_group_stores_what_pages_one_by_one_would(store: Store) -> None:
    one_by_one = [store.commit_page("seq", p) for p in pages_for("seq")]
    grouped = store.commit_pages("grp", pages_for("grp"))
    assert snapshot(store, "grp") == snapshot(store, "seq")
    counts = [(r.created, r.updated, r.unchanged, r.deleted) for r in grouped]
    assert counts == [(r.created, r.updated, r.unchanged, r.deleted) for r in one_by_one]
    assert counts == [
        (3, 0, 0, 0),
        (1, 1, 1, 1),  # 3 again as it was, 2 again newer; 3 missing from the census
        (3, 0, 0, 1),
        (0, 2, 0, 0),
    ]
    moved = {i.external_id: i.previous_keys for i in store.items("grp")}
    assert (moved["1"], moved["7"]) == (["o/r#1"], ["o/r#7"])
    assert store.cursor("grp") == {"page": 4}


def test_a_group_is_stored_whole_or_not_at_all(store: Store) -> None:
    store.commit_page("gh", Page([item(1)], {"page": 1}))
    bad = item(9)
    bad.created = datetime(2026, 1, 1)  # noqa: DTZ001 - naive on purpose: the store refuses it
    group = [Page([item(2)], {"page": 2}), Page([item(3), bad], {"page": 3})]
    with pytest.raises((ValueError, StoreError, sa.exc.StatementError)):
        store.commit_pages("gh", group)
    assert store.cursor("gh") == {"page": 1}
    assert [i.external_id for i in store.items("gh")] == ["1"]


def page_of(n: int, tag: int) -> Page:
    return Page([item(i) for i in range(n)], {"tag": tag})


def test_the_queue_hands_over_what_waits_up_to_a_bound_then_the_end() -> None:
    async def scenario() -> None:
        q = PageQueue(max_items=1000)
        for tag in range(4):
            await q.put(page_of(100, tag))
        await q.put(None)
        group, end = await q.take(250)
        assert [p.cursor["tag"] for p in group] == [0, 1]
        assert end is False
        group, end = await q.take(250)
        assert [p.cursor["tag"] for p in group] == [2, 3]
        assert end is None  # the end comes with the last pages, after them

    asyncio.run(scenario())


def test_an_error_travels_after_the_pages_before_it() -> None:
    async def scenario() -> None:
        q = PageQueue(max_items=1000)
        await q.put(page_of(10, 0))
        boom = RuntimeError("HTTP 401")
        await q.put(boom)
        group, end = await q.take(1000)
        assert [p.cursor["tag"] for p in group] == [0]
        assert end is boom

    asyncio.run(scenario())


def test_a_big_page_is_taken_alone_and_the_producer_waits_for_room() -> None:
    """A page larger than the bounds still moves (alone); a full queue holds the producer."""

    async def scenario() -> None:
        q = PageQueue(max_items=150)
        await q.put(page_of(1000, 0))  # an empty queue takes any page
        blocked = asyncio.create_task(q.put(page_of(10, 1)))
        await asyncio.sleep(0.05)
        assert not blocked.done()
        group, end = await q.take(150)
        assert [len(p.items) for p in group] == [1000]
        await asyncio.wait_for(blocked, 1)
        group, end = await q.take(150)
        assert [p.cursor["tag"] for p in group] == [1]
        assert end is False

    asyncio.run(scenario())


@pytest.mark.parametrize("commit_items", [1, 2000])
def test_commit_items_bounds_each_transaction(
    tmp_path: Path, commit_items: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`[store] commit_items = 1` stores strictly page by page; the default lets pages that
    wait for the store share a transaction. Either way every page and the last cursor land."""
    store = Store.open(f"sqlite:///{tmp_path / 'x.db'}")
    calls: list[int] = []
    real = store.commit_pages

    def spy(
        connector: str,
        pages: Sequence[Page],
        links: Mapping[str, Sequence[Link]] | None = None,
        run_id: int | None = None,
    ) -> list[PageResult]:
        calls.append(len(pages))
        return real(connector, pages, links, run_id)

    monkeypatch.setattr(store, "commit_pages", spy)

    async def pull() -> AsyncIterator[Page]:
        for tag in range(6):
            yield Page([item(tag * 10 + i) for i in range(10)], {"tag": tag})

    run_id = store.start_run("gh")
    result = RunResult("gh", run_id)
    log = structlog.get_logger("test")
    asyncio.run(_drain(pull(), store, None, result, log, commit_items))
    assert sum(calls) == result.pages == 6
    assert result.created == 60
    assert store.cursor("gh") == {"tag": 5}
    if commit_items == 1:
        assert calls == [1] * 6
    else:
        assert max(calls) > 1  # the generator outruns the store: pages wait and go together


@pytest.mark.parametrize("commit_items", [1, 2000])
def test_a_group_links_items_whose_parent_or_old_key_came_earlier_in_it(
    store: Store, tmp_path: Path, commit_items: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An epic on one page and its story on the next, or an item that moves between them, link
    the same whether the pages commit one by one or together (then the group is linked as one:
    the earlier page is not in the store yet when the later one is linked)."""
    matcher = Matcher(load(tmp_path, EPIC_RULES))
    linker = page_linker(store, lambda: matcher)
    later = datetime(2026, 10, 6, tzinfo=UTC)
    pages = [
        Page([jira_item("ALPHA-1"), jira_item("OLD-9", external_id="77")], {"page": 1}),
        Page(
            [
                jira_item("ALPHA-2", parent_key="ALPHA-1"),
                jira_item("NEW-1", external_id="77", updated=later),
            ],
            {"page": 2},
        ),
    ]
    calls: list[int] = []
    real = store.commit_pages

    def spy(
        connector: str,
        pages: Sequence[Page],
        links: Mapping[str, Sequence[Link]] | None = None,
        run_id: int | None = None,
    ) -> list[PageResult]:
        calls.append(len(pages))
        return real(connector, pages, links, run_id)

    monkeypatch.setattr(store, "commit_pages", spy)

    async def pull() -> AsyncIterator[Page]:
        for page in pages:
            yield page

    run_id = store.start_run("jira")
    result = RunResult("jira", run_id)
    asyncio.run(_drain(pull(), store, linker, result, structlog.get_logger(), commit_items))
    assert calls == ([1, 1] if commit_items == 1 else [2])
    assert store_links(store) == [
        ("77", "checkout", "checkout#2"),
        ("ALPHA-2", "checkout", "checkout#1"),
    ]
