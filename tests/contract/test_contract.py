"""The connector contract (DEVELOPERS.md "The connector contract"), the same cases for every
installed connector against the sandbox in process: paging, resume from every cursor, equal
`updated` ties across page boundaries, 401, 429 with Retry-After, lost scope, deletion census.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from okrsync.errors import AuthError
from okrsync.http import RetryPolicy
from okrsync.models import Page, WorkItem
from okrsync.sandbox import TruthItem
from tests.contract.conftest import PAGE_SIZE, Harness
from tests.contract.replica import Replica, differences

CONTAINERS = {"epic", "project", "milestone", "section"}
_MINUTE = timedelta(minutes=1)


def _work(truth: dict[str, TruthItem]) -> list[TruthItem]:
    return [t for t in truth.values() if t.kind not in CONTAINERS and not t.deleted]


def _resumed_differences(h: Harness, pages: list[Page]) -> dict[int, list[str]]:
    """For each page i of a full pull: pages[:i+1] plus a pull from page i's cursor."""
    truth = h.sb.truth(h.tracker)
    out: dict[int, list[str]] = {}
    for i, page in enumerate(pages):
        got = Replica().apply(pages[: i + 1]).apply(h.pull(page.cursor))
        if diff := differences(truth, got):
            out[i] = diff[:5]
    return out


def _force_ties(h: Harness) -> list[str]:
    """Give positions 20-29 of each scope's (updated, id) order one `updated`: a tie group that
    straddles the boundary after position 25 wherever a listing pages by updated."""
    by_scope: dict[str, list[TruthItem]] = {}
    for t in _work(h.sb.truth(h.tracker)):
        by_scope.setdefault(t.scope, []).append(t)
    tied: list[str] = []
    for items in by_scope.values():
        items.sort(key=lambda t: (t.updated, t.external_id))
        group = items[PAGE_SIZE - 5 : PAGE_SIZE + 5]
        if len(group) < 10:
            continue
        when = group[4].updated.replace(microsecond=0)
        h.sb.set_updated(h.tracker, [t.external_id for t in group], when)
        tied += [t.external_id for t in group]
    return tied


def test_full_pull_yields_exactly_truth_over_several_pages(contract: Harness) -> None:
    """A full pull pages through every scope and yields exactly the truth, each record once."""
    pages = contract.pull(None)
    ids = Counter(i.external_id for p in pages for i in p.items if i.kind not in CONTAINERS)
    assert [k for k, n in ids.items() if n > 1] == []
    first: dict[str, WorkItem] = {}
    for item in (i for p in pages for i in p.items if i.kind in CONTAINERS):
        # A container derived from records (a GitHub milestone) may come again, always the same.
        assert first.setdefault(item.external_id, item) == item
    per_scope = Counter(p.scope for p in pages if p.items)
    assert max(per_scope.values()) >= 2, f"expected several pages in a scope: {per_scope}"
    assert differences(contract.sb.truth(contract.tracker), Replica().apply(pages)) == []


def test_resume_from_every_cursor_loses_nothing(contract: Harness) -> None:
    """Resuming from any page's cursor of a full pull, after the pages before it: the truth."""
    pages = contract.pull(None)
    assert len(pages) >= 3
    assert _resumed_differences(contract, pages) == {}


def test_equal_updated_ties_across_page_boundaries_survive_resume(contract: Harness) -> None:
    """Items sharing one `updated` across a page boundary are all kept, by a full pull and by a
    pull resumed from any cursor."""
    tied = set(_force_ties(contract))
    assert len(tied) >= 10
    pages = contract.pull(None)
    spans = Counter(p.scope for p in pages if tied & {i.external_id for i in p.items})
    assert max(spans.values()) >= 2, f"a tie group should span a page boundary: {spans}"
    assert differences(contract.sb.truth(contract.tracker), Replica().apply(pages)) == []
    assert _resumed_differences(contract, pages) == {}


def test_revoked_token_raises_auth_error_without_retrying(contract: Harness) -> None:
    """A 401 fails the pull with the connector's AuthError at once: no retry, no wait."""
    contract.sb.revoke_token(contract.tracker)
    with pytest.raises(AuthError) as caught:
        contract.pull(None)
    assert caught.value.status == 401
    assert contract.sleeps == []
    statuses = [r.status for r in contract.sb.requests]
    assert statuses.count(401) == 1, statuses


def test_429_waits_retry_after_then_succeeds(contract: Harness) -> None:
    """A 429 with Retry-After waits at least that long (plus jitter only), then goes on."""
    contract.sb.inject(contract.tracker, "429", retry_after=7, secondary=True)
    pages = contract.pull(None)
    assert len(contract.sleeps) == 1
    assert 7 <= contract.sleeps[0] <= 7 + RetryPolicy().jitter_s
    assert [r.status for r in contract.sb.requests].count(429) == 1
    assert differences(contract.sb.truth(contract.tracker), Replica().apply(pages)) == []


def test_lost_scope_is_reported_never_as_deletions(contract: Harness) -> None:
    """A scope that became invisible is reported in `lost_scopes`; its stored items are not
    deleted and the other scopes sync on."""
    first = contract.pull(None)
    lost = contract.sb.scopes(contract.tracker)[0]
    contract.configure(census_every=1)
    contract.sb.hide_scope(contract.tracker, lost)
    contract.sb.mutate(contract.tracker, 6, rng_seed=2)
    pages = contract.pull(first[-1].cursor)
    assert [p.lost_scopes for p in pages if p.lost_scopes] == [[lost]]
    assert all(lost not in p.census for p in pages)
    got = Replica().apply(first).apply(pages)
    lost_ids = {k for k, v in got.items.items() if v.container == lost}
    assert lost_ids
    assert not lost_ids & got.deleted
    truth = contract.sb.truth(contract.tracker)
    visible = {k: t for k, t in truth.items() if t.scope != lost}
    assert differences(visible, _without(got, lost_ids)) == []


def _without(got: Replica, ids: set[str]) -> Replica:
    items = {k: v for k, v in got.items.items() if k not in ids}
    return Replica(items, got.deleted - ids)


def test_deleted_item_is_reported_on_next_pull(contract: Harness) -> None:
    """An item deleted after a full pull is reported deleted (census or `deleted`) by the next
    pull when a census is due (`census_every = 1`), and nothing else is."""
    first = contract.pull(None)
    contract.configure(census_every=1)
    gone = sorted(_work(contract.sb.truth(contract.tracker)), key=lambda t: t.external_id)[3]
    contract.sb.delete(contract.tracker, gone.external_id)
    got = Replica().apply(first).apply(contract.pull(first[-1].cursor))
    assert got.deleted == {gone.external_id}
    assert differences(contract.sb.truth(contract.tracker), got) == []


def test_ties_at_the_next_window_span_pages_and_survive_resume(contract: Harness) -> None:
    """After a full pull, more than a page of items updated at one same instant are all pulled
    by the next run, and by that run resumed from any of its cursors."""
    first = contract.pull(None)
    truth = contract.sb.truth(contract.tracker)
    newest = max(t.updated for t in truth.values())
    scope = Counter(t.scope for t in _work(truth)).most_common(1)[0][0]
    tied = sorted(t.external_id for t in _work(truth) if t.scope == scope)[: PAGE_SIZE + 10]
    assert len(tied) > PAGE_SIZE
    contract.sb.set_updated(contract.tracker, tied, newest.replace(microsecond=0) + _MINUTE)
    pages = contract.pull(first[-1].cursor)
    tied_pages = {n for n, p in enumerate(pages) for i in p.items if i.external_id in tied}
    assert len(tied_pages) >= 2, "the tie group (one scope) should span a page boundary"
    truth = contract.sb.truth(contract.tracker)
    assert differences(truth, Replica().apply(first).apply(pages)) == []
    for n, page in enumerate(pages):
        got = Replica().apply(first).apply(pages[: n + 1]).apply(contract.pull(page.cursor))
        assert differences(truth, got) == [], f"resumed from page {n}"
