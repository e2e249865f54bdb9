"""The fault matrix: okrsync against a misbehaving sandbox, over real HTTP.

Every case ends in the same check (`assert_converged`): the store equals the sandbox's
ground truth for the connector, no item is stored twice, and the cursor is consistent (a
follow-up sync with nothing changed upstream changes nothing and, unless a census is due,
costs exactly one request per scope). Each case also asserts its own run outcome.

The default run keeps one tracker per fault (a diagonal, ~60 s); `--run-slow` adds the rest of
the matrix. A case that shows a product bug is `xfail(strict=True)` with the bug in its reason.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import okrsync.sync as sync_module
from okrsync.config import Settings
from okrsync.models import Page
from okrsync.sandbox import RequestLog, Sandbox
from okrsync.store import Link, PageResult, Store
from okrsync.sync import PageQueue, RunResult
from tests.integration.sandbox_utils import TRACKER, differences, sandbox_world, sync

NAMES = list(TRACKER)
# The request path (after the tracker prefix) that carries the items, for `path_contains`.
DATA_PATH = {"jira": "/search", "jira-dc": "/search", "asana": "/tasks", "github": "/issues"}
SMALL = 20  # items per tracker that a case does not look at (cheap to generate)
CONTAINER_PREFIXES = ("section:", "milestone:")


def burst(request: pytest.FixtureRequest) -> int:
    """Faults per burst: 2 in the fast diagonal (backoff 0.5 s + 1 s), 3 in the full matrix."""
    return 3 if request.node.get_closest_marker("slow") else 2


def case(*values: Any, fast: bool = False, xfail: str | None = None) -> Any:
    """One parameter set; slow unless `fast`; `xfail` = the product bug it shows."""
    marks: list[pytest.MarkDecorator] = [] if fast else [pytest.mark.slow]
    if xfail:
        marks.append(pytest.mark.xfail(reason=xfail))  # strict: xfail_strict in pyproject
    return pytest.param(*values, marks=marks, id="-".join(str(v) for v in values))


# --- the world and the common check ------------------------------------------------------


@contextmanager
def world(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, **overrides: Any
) -> Iterator[tuple[Sandbox, Settings, Store]]:
    """`sandbox_world` with the full data set only for the tracker under test."""
    sizes = {t: SMALL for t in TRACKER.values()} | {TRACKER[name]: 150}
    with sandbox_world(monkeypatch, tmp_path, sizes=sizes, **overrides) as w:
        yield w


def run(settings: Settings, store: Store, name: str) -> RunResult:
    (result,) = sync(settings, store, name)
    return result


def settle() -> None:
    """Let the current wall-clock second pass.

    Trackers stamp `Date` in whole seconds and a change within the second a run starts is
    deliberately re-read by the next run; waiting for the next second makes checks exact.
    """
    deadline = int(time.time()) + 1.05
    while (left := deadline - time.time()) > 0:
        time.sleep(left)


def assert_no_duplicates(store: Store, name: str) -> None:
    items = store.items(name)
    ids = Counter(i.external_id for i in items)
    keys = Counter(i.key for i in items if i.deleted_at is None)
    assert [k for k, n in ids.items() if n > 1] == []
    assert [k for k, n in keys.items() if n > 1] == []


def assert_same_as_truth(sb: Sandbox, store: Store, name: str) -> None:
    diffs = differences(sb, store, name)
    assert diffs == [], f"{name}: {len(diffs)} differences, first: {diffs[:10]}"


def assert_converged(
    sb: Sandbox, settings: Settings, store: Store, name: str, *, census: bool = False
) -> None:
    """Store == truth, no duplicates, and a no-change follow-up sync changes nothing.

    The follow-up runs with the default page size: with a deliberately tiny page size, the
    items at the watermark (inclusive windows, Jira's lookback) can legitimately fill more
    than one page, which says nothing about the cursor. With `census` (census_every=1) the
    follow-up lists every scope again, so only "changes nothing" is asserted.
    """
    assert_same_as_truth(sb, store, name)
    assert_no_duplicates(store, name)
    followup = Settings(
        store=settings.store,
        connectors=[c.model_copy(update={"page_size": None}) for c in settings.connectors],
    )
    settle()
    before = {i.external_id: (i.updated, i.key, i.deleted_at) for i in store.items(name)}
    sb.clear_requests()
    result = run(followup, store, name)
    assert result.status == "ok", result.error
    assert (result.created, result.updated, result.deleted) == (0, 0, 0)
    after = {i.external_id: (i.updated, i.key, i.deleted_at) for i in store.items(name)}
    assert after == before
    tracker = TRACKER[name]
    if not census:  # a census left due by an earlier disturbed run is a one-off extra
        sent = [r.path for r in sb.requests if r.tracker == tracker and not is_census(r)]
        assert len(sent) == len(sb.scopes(tracker)), sent
    assert_same_as_truth(sb, store, name)


def is_census(r: RequestLog) -> bool:
    """A request of a census listing (every id of a scope), not of the incremental pull."""
    if r.tracker in ("jira", "jira_dc"):
        # A count (POST, JQL in the body) in a no-change run is the census' own: an
        # incremental pass counts only when it spans pages, which the searches show anyway.
        jql = r.query.get("jql", "").casefold()
        return "order by key" in jql or r.path.endswith("/approximate-count")
    if r.tracker == "github":
        return "sort" not in r.query
    return r.query.get("opt_fields") == "gid" or r.path.endswith("/sections")


def has_leaf(page: Page) -> bool:
    return any(not i.external_id.startswith(CONTAINER_PREFIXES) for i in page.items)


@contextmanager
def after_item_page(
    store: Store,
    n: int,
    action: Callable[[Page], None],
    match: Callable[[Page], bool] = has_leaf,
    cursors: list[Any] | None = None,
) -> Iterator[None]:
    """Call `action(page)` once, right after the connector hands over the n-th page that
    `match`es and before it asks the tracker for the next one: "between pages" from the
    tracker's point of view, however far ahead of the store the orchestrator fetches.
    `cursors` collects the cursor of every commit (its last page's)."""
    original_produce = sync_module._produce
    original_commit = store.commit_pages
    seen = 0

    async def tapped(pages: AsyncIterator[Page]) -> AsyncIterator[Page]:
        nonlocal seen
        async for page in pages:
            yield page
            if match(page):
                seen += 1
                if seen == n:
                    action(page)

    async def produce(pages: AsyncIterator[Page], queue: PageQueue) -> None:
        await original_produce(tapped(pages), queue)

    def commit(
        connector: str,
        batch: Sequence[Page],
        links: Mapping[str, Sequence[Link]] | None = None,
        run_id: int | None = None,
    ) -> list[PageResult]:
        result = original_commit(connector, batch, links, run_id)
        if cursors is not None:
            cursors.append(batch[-1].cursor)
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sync_module, "_produce", produce)
        patch.setattr(store, "commit_pages", commit)
        yield


def of(sb: Sandbox, name: str) -> list[RequestLog]:
    tracker = TRACKER[name]
    return sorted((r for r in sb.requests if r.tracker == tracker), key=lambda r: r.started)


def leaves(sb: Sandbox, name: str) -> dict[str, list[str]]:
    """Live non-container external ids per scope, in (updated, id) order."""
    by_scope: dict[str, list[Any]] = {}
    for t in sb.truth(TRACKER[name]).values():
        if not t.deleted and not t.external_id.startswith(CONTAINER_PREFIXES):
            by_scope.setdefault(t.scope, []).append(t)
    return {
        s: [t.external_id for t in sorted(ts, key=lambda t: (t.updated, t.external_id))]
        for s, ts in by_scope.items()
    }


# --- rate limits -------------------------------------------------------------------------

RATE_LIMITS = [
    case("jira", "429", fast=True),
    case("jira-dc", "429"),
    case("asana", "429"),
    case("github", "429"),
    case("github", "403-primary"),
    case("github", "403-secondary"),
    case("github", "429-secondary"),
]
RATE_PARAMS = {
    "429": {"retry_after": 1},
    "403-primary": {"status": 403, "retry_after": 2},
    "403-secondary": {"status": 403, "secondary": True, "retry_after": 1},
    "429-secondary": {"status": 429, "secondary": True, "retry_after": 1},
}


@pytest.mark.parametrize(("name", "variant"), RATE_LIMITS)
def test_rate_limit_burst_is_waited_out(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    name: str,
    variant: str,
    request: pytest.FixtureRequest,
) -> None:
    """A burst of rate-limit answers: no request of that tracker before the wait is over."""
    params = RATE_PARAMS[variant]
    wait = float(params["retry_after"])
    # GitHub's primary limit says when only by x-ratelimit-reset (whole epoch seconds)
    by_reset = name == "github" and not params.get("secondary")
    with world(monkeypatch, tmp_path, name) as (sb, settings, store):
        clock = time.time() - time.monotonic()
        n = burst(request)
        sb.inject(TRACKER[name], "429", count=n, path_contains=DATA_PATH[name], **params)
        result = run(settings, store, name)
        assert result.status == "ok", result.error
        assert result.retries >= n
        assert result.rate_limit_wait_s > 0
        log = of(sb, name)
        limited = [r for r in log if r.status in (403, 429)]
        assert len(limited) == n
        for hit in limited:
            later = [r.started for r in log if r.started > hit.started]
            assert later, "the rate-limited request was never retried"
            # by reset: the reset is a whole epoch second ≥ int(wall clock at the 429) + wait
            by_clock = int(hit.started + clock) + wait - clock
            earliest = by_clock if by_reset else hit.started + wait
            assert min(later) >= earliest, f"retried {earliest - min(later):.3f}s early"
        assert_converged(sb, settings, store, name)


# --- server errors, resets, timeouts, broken bodies ----------------------------------------


@pytest.mark.parametrize(
    ("name", "code"),
    [
        case(name, code, fast=(name, code) in {("asana", "503"), ("jira", "500")})
        for name in NAMES
        for code in ("500", "502", "503")
    ],
)
def test_server_error_burst_is_retried(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    name: str,
    code: str,
    request: pytest.FixtureRequest,
) -> None:
    with world(monkeypatch, tmp_path, name) as (sb, settings, store):
        n = burst(request)
        sb.inject(TRACKER[name], code, count=n, path_contains=DATA_PATH[name])
        result = run(settings, store, name)
        assert result.status == "ok", result.error
        assert result.retries >= n
        assert [r.status for r in of(sb, name)].count(int(code)) == n
        assert_converged(sb, settings, store, name)


@pytest.mark.parametrize("name", [case(n, fast=n == "jira-dc") for n in NAMES])
def test_connection_resets_are_retried(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, request: pytest.FixtureRequest
) -> None:
    with world(monkeypatch, tmp_path, name) as (sb, settings, store):
        n = burst(request)
        sb.inject(TRACKER[name], "reset", count=n, path_contains=DATA_PATH[name])
        result = run(settings, store, name)
        assert result.status == "ok", result.error
        assert result.retries >= n
        assert sb.faults.fired.get("reset") == n
        assert_converged(sb, settings, store, name)


@pytest.mark.parametrize("name", [case(n, fast=n == "github") for n in NAMES])
def test_slow_response_beyond_timeout_is_retried(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, request: pytest.FixtureRequest
) -> None:
    with world(monkeypatch, tmp_path, name, timeout_s=1.0) as (sb, settings, store):
        n = burst(request) - 1
        sb.inject(TRACKER[name], "slow", count=n, delay=3.0, path_contains=DATA_PATH[name])
        result = run(settings, store, name)
        assert result.status == "ok", result.error
        assert result.retries >= n
        assert sb.faults.fired.get("slow") == n
        assert_converged(sb, settings, store, name)


BODY_FAULTS: dict[str, tuple[str, dict[str, Any]]] = {
    "truncate": ("truncate", {"mode": "long"}),  # Content-Length promises more than arrives
    "truncate-short": ("truncate", {"mode": "short"}),  # cut body, honest length: bad JSON
    "invalid_json": ("invalid_json", {}),
}


@pytest.mark.parametrize(
    ("name", "body"),
    [
        case(n, b, fast=(n, b) in {("jira", "invalid_json"), ("asana", "truncate-short")})
        for n in NAMES
        for b in BODY_FAULTS
    ],
)
def test_broken_bodies_are_retried(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    name: str,
    body: str,
    request: pytest.FixtureRequest,
) -> None:
    fault, params = BODY_FAULTS[body]
    with world(monkeypatch, tmp_path, name) as (sb, settings, store):
        n = burst(request) - 1
        sb.inject(TRACKER[name], fault, count=n, path_contains=DATA_PATH[name], **params)
        result = run(settings, store, name)
        assert result.status == "ok", result.error
        assert result.retries >= n
        assert_converged(sb, settings, store, name)


@pytest.mark.parametrize(
    "body",
    [
        case("invalid_json", fast=True),
        case("truncate-short"),
        case("truncate"),
    ],
)
def test_broken_body_on_asana_412_is_retried(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, body: str
) -> None:
    """The events probe's 412 (fresh sync token) arrives garbled: retried like any other."""
    fault, params = BODY_FAULTS[body]
    with world(monkeypatch, tmp_path, "asana") as (sb, settings, store):
        sb.inject("asana", fault, path_contains="/events", **params)
        result = run(settings, store, "asana")
        assert result.status == "ok", result.error
        assert_converged(sb, settings, store, "asana")


# --- expired paging and sync tokens --------------------------------------------------------


@pytest.mark.parametrize("mode", [case("full", fast=True), case("incremental")])
def test_expired_jira_page_token_restarts_the_query(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mode: str
) -> None:
    """Jira Cloud refuses a nextPageToken mid-listing: the scope's query restarts, run ok."""
    with world(monkeypatch, tmp_path, "jira", page_size=10) as (sb, settings, store):
        if mode == "incremental":
            assert run(settings, store, "jira").status == "ok"
            sb.mutate("jira", 40)
            settle()
        sb.inject("jira", "expire_page_token", count=2)
        result = run(settings, store, "jira")
        assert result.status == "ok", result.error
        assert sb.faults.fired.get("expire_page_token") == 2
        assert_converged(sb, settings, store, "jira")


@pytest.mark.slow
def test_jira_page_token_refused_too_often_fails_then_recovers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """More refusals than restarts: the run fails clearly; the next run converges."""
    with world(monkeypatch, tmp_path, "jira", page_size=10) as (sb, settings, store):
        sb.inject("jira", "expire_page_token", count=4)
        result = run(settings, store, "jira")
        assert result.status == "failed"
        assert "page tokens" in (result.error or "")
        settle()
        assert run(settings, store, "jira").status == "ok"
        assert_converged(sb, settings, store, "jira")


@pytest.mark.parametrize("mode", [case("full"), case("incremental", fast=True)])
def test_expired_asana_offset_restarts_the_listing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mode: str
) -> None:
    with world(monkeypatch, tmp_path, "asana", page_size=10) as (sb, settings, store):
        if mode == "incremental":
            assert run(settings, store, "asana").status == "ok"
            sb.mutate("asana", 40)
            settle()
        sb.inject("asana", "expire_offset", count=2)
        result = run(settings, store, "asana")
        assert result.status == "ok", result.error
        assert sb.faults.fired.get("expire_offset") == 2
        assert_converged(sb, settings, store, "asana")


@pytest.mark.slow
def test_expired_asana_sync_token_falls_back_to_the_poll(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A refused events token (412) still picks up every change through the poll."""
    with world(monkeypatch, tmp_path, "asana", page_size=10) as (sb, settings, store):
        assert run(settings, store, "asana").status == "ok"
        sb.mutate("asana", 15)
        settle()
        sb.inject("asana", "expire_sync_token", count=len(sb.scopes("asana")))
        result = run(settings, store, "asana")
        assert result.status == "ok", result.error
        assert sb.faults.fired.get("expire_sync_token") == len(sb.scopes("asana"))
        assert_converged(sb, settings, store, "asana")


# --- credentials ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", [case(n, fast=n == "github") for n in NAMES])
def test_token_revoked_mid_run_fails_clearly_and_recovers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    """401 after two pages: run failed, cursor = last committed page, next run converges."""
    tracker = TRACKER[name]
    with world(monkeypatch, tmp_path, name, page_size=10) as (sb, settings, store):
        committed: list[Any] = []
        revoke = after_item_page(store, 2, lambda p: sb.revoke_token(tracker), cursors=committed)
        with revoke:
            result = run(settings, store, name)
        assert result.status == "failed"
        assert "refused the credentials" in (result.error or "")
        for secret in sb.credentials.values():
            assert secret not in (result.error or "")
        assert result.pages >= 2
        assert store.runs(name)[0].status == "failed"
        assert store.cursor(name) == committed[-1]
        stored = len(store.items(name))
        assert 0 < stored < len(sb.truth(tracker))
        sb.restore_token(tracker)
        sb.mutate(tracker, 5)
        settle()
        result = run(settings, store, name)
        assert result.status == "ok", result.error
        # The resumed pass saw items changed since the pass began (offsets may have shifted):
        # by design it keeps its window and the next run re-reads it.
        settle()
        assert run(settings, store, name).status == "ok"
        assert_converged(sb, settings, store, name)


@pytest.mark.parametrize("name", [case(n) for n in NAMES])
def test_expired_token_fails_the_run_then_next_converges(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    """A single 401 on a data request is not retried: run failed, next run completes."""
    with world(monkeypatch, tmp_path, name, page_size=25) as (sb, settings, store):
        sb.inject(TRACKER[name], "expire_token", path_contains=DATA_PATH[name])
        result = run(settings, store, name)
        assert result.status == "failed"
        assert "refused the credentials" in (result.error or "")
        settle()
        assert run(settings, store, name).status == "ok"
        assert_converged(sb, settings, store, name)


# --- live data under the pager ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        case(n, m, fast=(n, m) == ("jira-dc", "incremental"))
        for n in NAMES
        for m in ("full", "incremental")
    ],
)
def test_items_updated_while_paging_are_not_lost(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, mode: str
) -> None:
    """Changes between pages shift offsets; the run holds its window, the next catches up."""
    tracker = TRACKER[name]
    with world(monkeypatch, tmp_path, name, page_size=10) as (sb, settings, store):
        if mode == "incremental":
            assert run(settings, store, name).status == "ok"
            sb.mutate(tracker, 40)
            settle()
        with after_item_page(store, 2, lambda page: _mutate(sb, tracker, 8)):
            result = run(settings, store, name)
        assert result.status == "ok", result.error
        settle()
        assert run(settings, store, name).status == "ok"
        assert_converged(sb, settings, store, name)


@pytest.mark.parametrize(
    "name",
    [
        case("jira", fast=True),
        case("jira-dc"),
        case("asana"),
        case("github"),
    ],
)
def test_item_deleted_while_paging_does_not_hide_another(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    """A deletion between pages of a full listing; census every run; two runs later: truth."""
    tracker = TRACKER[name]
    deleted: list[str] = []

    def delete_one(page: Page) -> None:
        leaf = next(i for i in page.items if not i.external_id.startswith(CONTAINER_PREFIXES))
        deleted.append(leaf.external_id)
        sb.delete(tracker, leaf.external_id)

    # Tiny pages and the first page: the deletion lands before the next page is asked for,
    # so the shift always hides one.
    with world(monkeypatch, tmp_path, name, page_size=5, census_every=1) as (sb, settings, store):
        with after_item_page(store, 1, delete_one):
            assert run(settings, store, name).status == "ok"
        assert deleted
        for _ in range(2):
            settle()
            assert run(settings, store, name).status == "ok"
        assert_converged(sb, settings, store, name, census=True)


@pytest.mark.parametrize(
    ("name", "interrupted"),
    [case(n, i, fast=(n, i) == ("github", True)) for n in NAMES for i in (True, False)],
)
def test_items_sharing_one_updated_across_a_page_boundary(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, interrupted: bool
) -> None:
    """~2 pages of one scope share one `updated`; the run (optionally cut mid-tie) resumes."""
    tracker = TRACKER[name]
    # Page size 5: the tie spans 5 pages, so a token revoked right after the first tied page
    # (before the next is asked for) always cuts the run.
    with world(monkeypatch, tmp_path, name, page_size=5) as (sb, settings, store):
        assert run(settings, store, name).status == "ok"
        scope, ids = max(leaves(sb, name).items(), key=lambda kv: len(kv[1]))
        tied = ids[:23]
        when = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=2)
        sb.set_updated(tracker, tied, when)
        for eid in tied[::4]:  # a real change on some, so the store has something to learn
            sb.update(tracker, eid, title=f"tied {eid}")
        sb.set_updated(tracker, tied, when)
        settle()
        if interrupted:
            cut = after_item_page(
                store, 1, lambda p: sb.revoke_token(tracker), match=lambda p: _any_of(p, tied)
            )
            with cut:
                assert run(settings, store, name).status == "failed"
            sb.restore_token(tracker)
        assert run(settings, store, name).status == "ok"
        stored = {i.external_id: i.updated for i in store.items(name)}
        assert all(stored[e] == when for e in tied), scope
        assert_converged(sb, settings, store, name)


@pytest.mark.parametrize("name", [case("jira", fast=True), case("jira-dc")])
def test_jira_user_in_utc_minus_8(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    """Jira renders times in the user's zone (UTC−8 here); windows and values stay exact."""
    tracker = TRACKER[name]
    with world(monkeypatch, tmp_path, name, page_size=25) as (sb, settings, store):
        sb.jira_timezone = "America/Los_Angeles"
        assert run(settings, store, name).status == "ok"
        assert_same_as_truth(sb, store, name)
        sb.mutate(tracker, 12)
        settle()
        result = run(settings, store, name)
        assert result.status == "ok", result.error
        assert result.updated >= 12
        assert_converged(sb, settings, store, name)


# --- deletion and move -----------------------------------------------------------------------


@pytest.mark.parametrize("name", [case(n, fast=n == "asana") for n in NAMES])
def test_deletion_and_move_with_census_every_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    """One item deleted, one moved (Jira move, Asana project change, GitHub transfer)."""
    tracker = TRACKER[name]
    with world(monkeypatch, tmp_path, name, census_every=1) as (sb, settings, store):
        assert run(settings, store, name).status == "ok"
        truth = sb.truth(tracker)
        by_scope = leaves(sb, name)
        source = sb.scopes(tracker)[0]
        gone, moving = (
            by_scope[source][0],
            next(e for e in by_scope[source][1:] if truth[e].parent_key is None),
        )
        target = next(s for s in sb.scopes(tracker) if s != source)
        sb.delete(tracker, gone)
        sb.move(tracker, moving, target)
        settle()
        for _ in range(2):
            result = run(settings, store, name)
            assert result.status == "ok", result.error
        assert_converged(sb, settings, store, name, census=True)
        stored = {i.external_id: i for i in store.items(name)}
        assert stored[gone].deleted_at is not None
        assert stored[moving].deleted_at is None
        assert stored[moving].container == target
        if truth[moving].key != sb.truth(tracker)[moving].key:
            assert truth[moving].key in stored[moving].previous_keys


def _any_of(page: Page, ids: list[str]) -> bool:
    wanted = set(ids)
    return any(i.external_id in wanted for i in page.items)


def _mutate(sb: Sandbox, tracker: str, n: int) -> None:
    sb.mutate(tracker, n)


def test_census_does_not_rewrite_unchanged_asana_sections(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A census with nothing changed upstream rewrites no Asana section."""
    with world(monkeypatch, tmp_path, "asana", census_every=1) as (_, settings, store):
        assert run(settings, store, "asana").status == "ok"
        settle()
        result = run(settings, store, "asana")
        assert result.status == "ok", result.error
        assert (result.created, result.updated, result.deleted) == (0, 0, 0)


# --- GitHub Projects (GraphQL): rate limits and errors beside data ---------------------------

BOARD = "project:acme/12"


@contextmanager
def board_world(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[Sandbox, Settings, Store]]:
    """The GitHub connector over the sandbox's board `acme/12` only."""
    with world(monkeypatch, tmp_path, "github") as (sb, settings, store):
        connectors = [
            c.model_copy(update={"scope": [BOARD]}) if c.name == "github" else c
            for c in settings.connectors
        ]
        yield sb, Settings(store=settings.store, connectors=connectors), store


def assert_board_converged(sb: Sandbox, settings: Settings, store: Store) -> None:
    """The stored work is the board's live items, each once; a follow-up run with nothing
    changed changes nothing and costs one request (the board's `updatedAt`)."""
    truth = {
        t["key"] or f"{BOARD}#draft-{t['id']}" for t in sb.project_truth(BOARD) if not t["archived"]
    }
    stored = [i for i in store.items("github") if i.deleted_at is None and i.kind != "milestone"]
    assert sorted(i.key for i in stored) == sorted(truth)
    assert_no_duplicates(store, "github")
    settle()
    sb.clear_requests()
    result = run(settings, store, "github")
    assert result.status == "ok", result.error
    assert (result.created, result.updated, result.deleted) == (0, 0, 0)
    assert [r.path for r in sb.requests if r.tracker == "github"] == ["/graphql"]


GRAPHQL_LIMITS = [
    case("graphql_rate_limited", 200, fast=True),
    case("graphql_rate_limited", 403),
    case("graphql_secondary", 403),
]


@pytest.mark.parametrize(("fault", "status"), GRAPHQL_LIMITS)
def test_graphql_rate_limit_burst_is_waited_out(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    fault: str,
    status: int,
    request: pytest.FixtureRequest,
) -> None:
    """A burst of GraphQL `RATE_LIMITED` answers (HTTP 200 or 403) or secondary-limit 403s:
    no GraphQL request before the stated wait is over, then the board converges."""
    with board_world(monkeypatch, tmp_path) as (sb, settings, store):
        n = burst(request)
        sb.inject("github", fault, count=n, status=status, reset_after=1, retry_after=1)
        clock = time.time() - time.monotonic()
        result = run(settings, store, "github")
        assert result.status == "ok", result.error
        assert result.retries >= n
        assert result.rate_limit_wait_s > 0
        log = of(sb, "github")
        assert sb.faults.fired.get(fault) == n
        for hit in log[:n]:
            later = [r.started for r in log if r.started > hit.started]
            assert later, "the rate-limited request was never retried"
            # reset: whole epoch seconds, ≥ int(wall clock at the answer) + 1
            earliest = (
                int(hit.started + clock) + 1 - clock
                if fault != "graphql_secondary"
                else (hit.started + 1)
            )
            assert min(later) >= earliest, f"retried {earliest - min(later):.3f}s early"
        assert_board_converged(sb, settings, store)


def test_graphql_error_fails_the_run_clearly_then_next_converges(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An answer with `errors` fails the run with one line naming the GraphQL error (nothing
    of that page stored); the next run converges."""
    with board_world(monkeypatch, tmp_path) as (sb, settings, store):
        sb.inject("github", "graphql_partial", mode="timeout")
        failed = run(settings, store, "github")
        assert failed.status == "failed"
        assert failed.error is not None
        assert "GitHub GraphQL error on the board project:acme/12" in failed.error
        assert "\n" not in failed.error
        assert store.items("github") == []
        result = run(settings, store, "github")
        assert result.status == "ok", result.error
        assert_board_converged(sb, settings, store)
