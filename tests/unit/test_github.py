"""GitHubConnector driven through the sandbox's fake GitHub (in process, no socket); the pure
normaliser and the typed cursor on GitHub's published examples and recorded real responses."""

from __future__ import annotations

import asyncio
import copy
import gc
import json
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

import httpx
import pytest
from okrsync_connectors.github import GitHubConnector
from okrsync_connectors.github.cursor import GitHubCursor
from okrsync_connectors.github.normalise import Normaliser, Skipped

from okrsync.config import ConnectorConfig
from okrsync.demo import sandbox_connectors, sandbox_env
from okrsync.errors import AuthError, CursorRejected
from okrsync.http import Http, translate
from okrsync.models import ItemKind, Page, StatusCategory, WorkItem
from okrsync.sandbox import Sandbox, TruthItem
from tests.vendor import VENDOR_API

VENDOR = VENDOR_API / "github"
SEED = 3
SIZE = 60
# With SEED and SIZE: 13 issues and PRs (3 milestones) in SCOPE, 22 in OTHER.
SCOPE = "acme/web"
OTHER = "acme/api"
EARLY = "2000-01-01T00:00:00Z"  # a `since` before every sandbox item


# --- vendor data (for the pure normaliser) ----------------------------------------------


@cache
def _load(rel: str) -> Any:
    return json.loads((VENDOR / rel).read_text(encoding="utf-8"))


def vendor(rel: str) -> Any:
    """A fresh copy of a vendor file, safe to modify per case."""
    return copy.deepcopy(_load(rel))


def issue_item(number: int, updated: str, **changes: Any) -> dict[str, Any]:
    """The spec's get-issue example turned into a plain issue (no `pull_request` key)."""
    item: dict[str, Any] = vendor("examples/get-issue.json")
    del item["pull_request"]
    item.update(id=1000 + number, number=number, updated_at=updated, state_reason=None)
    item.update(changes)
    return item


def _label(name: str) -> dict[str, Any]:
    lab: dict[str, Any] = copy.deepcopy(vendor("examples/get-issue.json")["labels"][0])
    lab["name"] = name
    return lab


def normalise(issues: list[dict[str, Any]], **cfg: Any) -> list[WorkItem]:
    """The connector's normaliser as `config(**cfg)` builds it; nothing may be skipped."""
    norm = Normaliser.build(
        "gh", cfg.get("dropped_statuses", []), cfg.get("estimate_field"), cfg.get("status_map")
    )
    items, skipped = norm.page(issues, "octocat/Hello-World")
    assert skipped == []
    return items


# --- harness: the sandbox in process ------------------------------------------------------


def sandbox(monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """A fresh fake GitHub (no socket), its token exported as the connector expects."""
    box = Sandbox(seed=SEED, sizes={"github": SIZE})
    for name, value in sandbox_env(box).items():
        monkeypatch.setenv(name, value)
    return box


@pytest.fixture
def sb(monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    return sandbox(monkeypatch)


def config(sb: Sandbox, scope: list[str] | None = None, **kw: Any) -> ConnectorConfig:
    """The demo's GitHub connector on this sandbox, over `scope` (default [SCOPE])."""
    (cfg,) = [c for c in sandbox_connectors(sb, **kw) if c.type == "github"]
    return cfg.model_copy(update={"scope": scope or [SCOPE]})


@dataclass
class Run:
    """What one pull did, in order: requests sent, responses served, sleeps taken."""

    pages: list[Page] = field(default_factory=list)
    events: list[tuple[str, Any]] = field(default_factory=list)
    http: Http | None = None

    def of(self, kind: str) -> list[Any]:
        return [e[1] for e in self.events if e[0] == kind]

    @property
    def requests(self) -> list[httpx.Request]:
        return self.of("request")

    @property
    def responses(self) -> list[httpx.Response]:
        return self.of("response")

    @property
    def sleeps(self) -> list[float]:
        return self.of("sleep")

    @property
    def cursor(self) -> dict[str, Any]:
        return self.pages[-1].cursor

    def state(self, scope: str = SCOPE) -> dict[str, Any]:
        """The last page's cursor entry of `scope`."""
        entry: dict[str, Any] = self.cursor["scopes"][scope]
        return entry

    def next_links(self) -> list[str]:
        """The `rel="next"` URL of every served response that had one."""
        return [r.links["next"]["url"] for r in self.responses if "next" in r.links]

    async def sleep(self, seconds: float) -> None:
        self.events.append(("sleep", seconds))


def pull(
    sb: Sandbox,
    cfg: ConnectorConfig,
    cursor: dict[str, Any] | None = None,
    *,
    follow_redirects: bool = False,
    during: Callable[[int], None] | None = None,
    into: Run | None = None,
) -> Run:
    """One pull through `sb.transport()`; `during(n)` runs after the n-th response is served.
    Pass `into` to keep the pages and events of a pull that raises."""
    run = into or Run()
    inner = sb.transport()

    def handle(request: httpx.Request) -> httpx.Response:
        run.events.append(("request", request))
        response = inner.handle_request(request)
        run.events.append(("response", response))
        if during is not None:
            during(len(run.responses))
        return response

    async def go() -> None:
        transport = httpx.MockTransport(handle)
        async with httpx.AsyncClient(transport=transport, follow_redirects=follow_redirects) as c:
            run.http = Http(c, connector="t", sleep=run.sleep)
            async for page in GitHubConnector(cfg, run.http).pull(cursor):
                run.pages.append(page)

    asyncio.run(go())
    return run


def issues_of(pages: list[Page]) -> list[WorkItem]:
    return [i for p in pages for i in p.items if not i.kind.is_container]


def live(sb: Sandbox, scope: str = SCOPE, containers: bool = False) -> list[TruthItem]:
    """The scope's undeleted truth items (issues and PRs; milestones too if asked), oldest
    first in GitHub's `sort=updated` order."""
    items = [
        t
        for t in sb.truth("github").values()
        if t.scope == scope and not t.deleted and (containers or t.kind != "milestone")
    ]
    return sorted(items, key=lambda t: (t.updated, t.external_id))  # ids: equal-length digits


def stamp(when: datetime) -> str:
    """GitHub's `updated_at` form of a time."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def newest(sb: Sandbox, scope: str = SCOPE) -> str:
    return stamp(max(t.updated for t in live(sb, scope)))


def cursor_for(since: str | None, etag: str | None = None, runs: int = 1) -> dict[str, Any]:
    return {"v": 1, "scopes": {SCOPE: {"since": since, "etag": etag, "runs": runs}}}


def settled(sb: Sandbox, scopes: list[str] | None = None) -> tuple[Run, Run]:
    """Run 1 (full listing + census) and run 2 (since = newest, ETag stored)."""
    first = pull(sb, config(sb, scopes))
    return first, pull(sb, config(sb, scopes), first.cursor)


# --- paging ---------------------------------------------------------------------------


def test_pages_to_the_end_following_link_urls(sb: Sandbox) -> None:
    """All 13 issues of a repo arrive over 5 pages of 3, each Link URL requested as given."""
    run = pull(sb, config(sb, page_size=3))
    assert [len(issues_of([p])) for p in run.pages] == [3, 3, 3, 3, 1]
    assert [i.key for i in issues_of(run.pages)] == [t.key for t in live(sb)]
    assert [str(r.url) for r in run.requests[1:]] == run.next_links()
    assert len(run.requests) == 5
    assert all("/repositories/" in str(r.url) for r in run.requests[1:])
    assert dict(run.requests[0].url.params) == {
        "state": "all",
        "sort": "updated",
        "direction": "asc",
        "per_page": "3",
    }


def test_issue_changed_at_run_start_holds_window_and_defers_census(sb: Sandbox) -> None:
    """An issue updated in the second of the first response's Date: window kept, census run."""
    moved = live(sb)[6].external_id

    def touch(served: int) -> None:
        if served == 1:
            sb.update("github", moved, title="changed while listing")

    run = pull(sb, config(sb, page_size=3), during=touch)
    incremental = run.pages[:5]
    assert [len(issues_of([p])) for p in incremental] == [3, 3, 3, 3, 1]
    assert incremental[-1].census == {}
    assert incremental[-1].cursor["scopes"][SCOPE]["since"] is None
    census_call = run.requests[5].url.params
    assert "since" not in census_call
    assert "sort" not in census_call
    assert len(run.pages) == 10
    # The change shifted the listing by one, so some ids come twice: a census is a set.
    assert set(run.pages[-1].census[SCOPE]) == {t.external_id for t in live(sb, containers=True)}
    assert run.state()["runs"] == 0


def test_link_next_url_is_requested_verbatim(sb: Sandbox) -> None:
    """Page-number and `after`-cursor next URLs (percent-encoded since, opaque params) are
    requested byte for byte, never rebuilt."""
    by_page = pull(sb, config(sb, page_size=5), cursor_for(EARLY))
    sb.github_cursor_over = 0
    by_cursor = pull(sb, config(sb, page_size=5), cursor_for(EARLY))
    for run in (by_page, by_cursor):
        links = run.next_links()
        assert len(links) == 2
        assert all("since=2000-01-01T00%3A00%3A00Z" in link for link in links)
        assert [str(r.url) for r in run.requests[1:]] == links
    assert all("_sbx=" in link for link in by_page.next_links())
    assert all("after=" in link for link in by_cursor.next_links())
    assert [i.key for i in issues_of(by_cursor.pages)] == [i.key for i in issues_of(by_page.pages)]


def test_equal_timestamps_across_page_boundary_no_loss_no_loop(sb: Sandbox) -> None:
    """Ties split over two pages are all kept; the next run re-reads the tie once and stops."""
    ordered = live(sb)
    tie_at = ordered[-1].updated
    sb.set_updated("github", [t.external_id for t in ordered[-3:]], tie_at)
    tie = stamp(tie_at)
    tied = {t.key for t in live(sb) if t.updated == tie_at}
    assert len(tied) >= 3
    first = pull(sb, config(sb, page_size=2))
    assert len(first.requests) == 7  # 13 items by 2: no page read twice
    assert sorted(i.key for i in issues_of(first.pages)) == sorted(t.key for t in ordered)
    assert first.state()["since"] == tie
    again = pull(sb, config(sb, page_size=len(tied) + 1), first.cursor)
    assert len(again.requests) == 1
    assert again.requests[0].url.params["since"] == tie
    assert {i.key for i in issues_of(again.pages)} == tied
    etag = again.responses[0].headers["etag"]
    assert again.state() == {"since": tie, "etag": etag, "runs": 1}


def test_killed_run_resumes_at_the_next_link_replaying_at_most_one_page(sb: Sandbox) -> None:
    """The cursor of page 1 carries the next URL: a new run starts there, not at page 1."""
    full = pull(sb, config(sb, page_size=5), cursor_for(EARLY))
    assert [i.key for i in issues_of(full.pages)] == [t.key for t in live(sb)]
    resumed = pull(sb, config(sb, page_size=5), full.pages[0].cursor)
    assert [str(r.url) for r in resumed.requests] == full.next_links()
    assert resumed.state()["since"] == newest(sb)
    assert "pass" not in resumed.state()


def test_item_updated_during_the_run_keeps_the_starting_window(sb: Sandbox) -> None:
    """An item whose updated_at is at/after the server Date of the first page holds `since`."""
    changed = live(sb)[8].external_id
    calm = pull(sb, config(sb, page_size=5), cursor_for(EARLY))
    assert calm.state()["since"] == newest(sb)  # the same listing, undisturbed, moves on

    def touch(served: int) -> None:
        if served == 1:
            sb.update("github", changed, title="edited mid-run")

    run = pull(sb, config(sb, page_size=5), cursor_for(EARLY), during=touch)
    assert changed in {i.external_id for i in issues_of(run.pages)}
    assert run.state()["since"] == EARLY


def test_expired_link_restarts_from_window_then_gives_up(sb: Sandbox) -> None:
    """A 422 on a next link restarts the scope from its window; the fourth refusal raises."""
    sb.inject("github", "expire_page_token", count=10)
    run = Run()
    with pytest.raises(CursorRejected):
        pull(sb, config(sb, page_size=5), cursor_for(EARLY), into=run)
    assert len(run.pages) == 4  # page 1 of the first try and of each of the 3 restarts
    assert run.pages[-1].cursor["scopes"][SCOPE]["pass"]["window"] == EARLY
    assert [r.status_code for r in run.responses] == [200, 422] * 4
    assert all(r.url.params["since"] == EARLY for r in run.requests[::2])


# --- conditional requests -------------------------------------------------------------


def test_no_change_rerun_is_one_request_answered_304(sb: Sandbox) -> None:
    """With the stored ETag for the same `since`, the one request is conditional and gets 304."""
    _, second = settled(sb)
    etag = second.responses[0].headers["etag"]
    since = newest(sb)
    assert second.state() == {"since": since, "etag": etag, "runs": 1}
    run = pull(sb, config(sb), second.cursor)
    assert len(run.requests) == 1
    assert run.requests[0].headers["If-None-Match"] == etag
    assert run.requests[0].url.params["since"] == since
    assert run.responses[0].status_code == 304
    assert [p.items for p in run.pages] == [[]]
    assert run.state() == {"since": since, "etag": etag, "runs": 2}
    assert run.http is not None
    assert run.http.stats.not_modified == 1


def test_since_stays_stable_between_runs_so_the_etag_can_match(sb: Sandbox) -> None:
    """Run 2 stores since + ETag in the exact string form; run 3 sends the same URL, gets 304."""
    first, second = settled(sb)
    assert first.state()["since"] == newest(sb)
    assert first.state()["etag"] is None  # obtained without a since
    assert second.state()["since"] == newest(sb)
    assert second.state()["etag"] == second.responses[0].headers["etag"]
    third = pull(sb, config(sb), second.cursor)
    assert len(third.requests) == 1
    assert str(third.requests[0].url) == str(second.requests[0].url)
    assert third.pages[-1].items == []


def test_full_page_is_never_cached_by_etag(sb: Sandbox) -> None:
    """A first page as long as per_page may hide a change on page 2: its ETag is not stored."""
    first = pull(sb, config(sb))
    since = first.state()["since"]
    at_since = sum(1 for t in live(sb) if stamp(t.updated) == since)
    full = pull(sb, config(sb, page_size=at_since), first.cursor)
    assert len(full.requests) == 1
    assert len(issues_of(full.pages)) == at_since
    assert "etag" in full.responses[0].headers
    assert full.state() == {"since": since, "etag": None, "runs": 1}
    short = pull(sb, config(sb, page_size=at_since + 1), first.cursor)
    assert short.state()["etag"] == short.responses[0].headers["etag"]


def test_two_repos_without_changes_cost_one_request_each(sb: Sandbox) -> None:
    """Every configured repo gets exactly one conditional request on a no-change run."""
    scopes = [SCOPE, OTHER]
    _, second = settled(sb, scopes)
    etags = [second.state(s)["etag"] for s in scopes]
    assert all(etags)
    run = pull(sb, config(sb, scopes), second.cursor)
    assert [r.url.path for r in run.requests] == [f"/github/repos/{s}/issues" for s in scopes]
    assert [r.headers["If-None-Match"] for r in run.requests] == etags
    assert [r.status_code for r in run.responses] == [304, 304]
    assert [p.scope for p in run.pages] == scopes


# --- normalisation --------------------------------------------------------------------


def test_pull_request_and_its_milestone_are_normalised() -> None:
    """The spec example: an open PR (in progress) plus its milestone as a repo container."""
    scope = "octocat/Hello-World"
    milestone, pr = normalise(vendor("examples/list-repo-issues.json"))
    assert pr.kind is ItemKind.PULL_REQUEST
    assert pr.item_type == "pull_request"
    assert pr.external_id == "1"
    assert pr.key == f"{scope}#1347"
    assert pr.container == scope
    assert pr.status is StatusCategory.IN_PROGRESS
    assert pr.status_raw == "open:completed"
    assert pr.labels == ("bug",)
    assert pr.assignee == "octocat"
    assert pr.milestone == "v1.0"
    assert pr.url == "https://github.com/octocat/Hello-World/issues/1347"
    assert pr.created == datetime(2011, 4, 22, 13, 33, 48, tzinfo=UTC)
    assert pr.completed_at is None
    assert pr.custom == {"repo": scope, "author": "octocat"}
    assert milestone.kind is ItemKind.MILESTONE
    assert milestone.external_id == f"milestone:{scope}#1"
    assert milestone.key == f"{scope}#m1"
    assert milestone.title == "v1.0"
    assert milestone.container == scope
    assert milestone.due == date(2012, 10, 9)
    assert milestone.status is StatusCategory.TODO


def test_recorded_plain_issue_is_an_open_todo_issue() -> None:
    """A real recorded issue has no `pull_request` key: kind issue, todo, author kept."""
    data = vendor("recorded/octokit-fixtures/paginate-issues.raw-fixture.json")
    recorded = next(x for x in data if x["method"] == "get")["response"][0]
    (item,) = normalise([recorded])
    assert item.kind is ItemKind.ISSUE
    assert item.item_type == "issue"
    assert item.status is StatusCategory.TODO
    assert item.assignee is None
    assert item.custom == {"repo": "octocat/Hello-World", "author": "octokit-fixture-user-a"}


CLOSED = "2025-01-05T08:00:00Z"


@pytest.mark.parametrize(
    ("changes", "pr", "status", "completed"),
    [
        (
            {"state": "closed", "closed_at": CLOSED, "state_reason": "not_planned"},
            False,
            StatusCategory.DROPPED,
            datetime(2025, 1, 5, 8, tzinfo=UTC),
        ),
        (
            {"state": "closed", "closed_at": CLOSED, "state_reason": "completed"},
            False,
            StatusCategory.DONE,
            datetime(2025, 1, 5, 8, tzinfo=UTC),
        ),
        (
            {"state": "closed", "closed_at": CLOSED, "state_reason": "duplicate"},
            False,
            StatusCategory.DROPPED,
            datetime(2025, 1, 5, 8, tzinfo=UTC),
        ),
        (
            {"state": "closed", "closed_at": CLOSED, "merged_at": None},
            True,
            StatusCategory.DROPPED,
            datetime(2025, 1, 5, 8, tzinfo=UTC),
        ),
        (
            {"state": "closed", "closed_at": CLOSED, "merged_at": CLOSED},
            True,
            StatusCategory.DONE,
            datetime(2025, 1, 5, 8, tzinfo=UTC),
        ),
        ({"labels": [_label("In Progress")]}, False, StatusCategory.IN_PROGRESS, None),
        ({"labels": [_label("WIP")]}, False, StatusCategory.IN_PROGRESS, None),
        ({"labels": [_label("in-progress")]}, False, StatusCategory.IN_PROGRESS, None),
        ({"labels": [_label("wontfix")]}, False, StatusCategory.DROPPED, None),
        ({}, False, StatusCategory.TODO, None),
        ({"labels": [_label("Review")]}, False, StatusCategory.IN_PROGRESS, None),
        ({"labels": [_label("QA")]}, False, StatusCategory.IN_PROGRESS, None),
        ({"labels": [_label("blocked")]}, False, StatusCategory.IN_PROGRESS, None),
        ({"labels": [_label("icebox")]}, False, StatusCategory.DROPPED, None),
        ({"labels": [_label("Ready")]}, True, StatusCategory.TODO, None),
        (
            {"state": "closed", "closed_at": CLOSED, "labels": [_label("Review")]},
            False,
            StatusCategory.DONE,
            datetime(2025, 1, 5, 8, tzinfo=UTC),
        ),
    ],
    ids=[
        "not-planned",
        "completed",
        "duplicate",
        "pr-unmerged",
        "pr-merged",
        "label-in-progress",
        "label-wip",
        "label-in-progress-dash",
        "label-wontfix",
        "open",
        "label-review",
        "label-qa",
        "label-blocked",
        "status-map-icebox",
        "status-map-pr-ready",
        "closed-with-review-label",
    ],
)
def test_status_category(
    changes: dict[str, Any], pr: bool, status: StatusCategory, completed: datetime | None
) -> None:
    """Dropped / done / in progress / todo follow state, state_reason, merge and labels."""
    item = issue_item(7, "2025-01-05T08:00:00Z", labels=[])
    merged = changes.pop("merged_at", "absent")
    item.update(changes)
    if pr:
        item["pull_request"] = vendor("examples/get-issue.json")["pull_request"]
        if merged != "absent":
            item["pull_request"]["merged_at"] = merged
    dropped = ["Won't Do", "Duplicate", "WontFix"]
    status_map = {"Icebox": "dropped", "Ready": "todo"}
    got_all = normalise([item], dropped_statuses=dropped, status_map=status_map)
    (got,) = [i for i in got_all if not i.kind.is_container]
    assert (got.status, got.completed_at) == (status, completed)


def _one(run: Run, external_id: str) -> WorkItem:
    return next(i for i in issues_of(run.pages) if i.external_id == external_id)


def _open(sb: Sandbox, kind: str) -> TruthItem:
    """An open item of `kind` without labels (an open PR is in progress in truth)."""
    wanted = "todo" if kind == "issue" else "in_progress"
    everywhere = [t for scope in sb.scopes("github") for t in live(sb, scope)]
    return next(t for t in everywhere if t.kind == kind and t.status == wanted and not t.labels)


@pytest.mark.parametrize(
    ("kind", "change", "status"),
    [
        ("issue", {"status": "done"}, StatusCategory.DONE),
        ("issue", {"status": "dropped"}, StatusCategory.DROPPED),
        ("pull_request", {"status": "done"}, StatusCategory.DONE),
        ("pull_request", {"status": "dropped"}, StatusCategory.DROPPED),
        ("issue", {"labels": ["In Progress"]}, StatusCategory.IN_PROGRESS),
        ("issue", {"labels": ["wontfix"]}, StatusCategory.DROPPED),
    ],
    ids=["closed-completed", "not-planned", "pr-merged", "pr-unmerged", "label-wip", "wontfix"],
)
def test_sandbox_status_follows_state_reason_merge_and_labels(
    sb: Sandbox, kind: str, change: dict[str, Any], status: StatusCategory
) -> None:
    """An open item closed (completed / not planned, PR merged / not) or relabelled is pulled
    with its new status; closed items, done or dropped, carry closed_at as completed_at (an
    open item dropped by its label has none)."""
    item = _open(sb, kind)
    target = item.external_id
    sb.update("github", target, **change)
    run = pull(sb, config(sb, [item.scope], dropped_statuses=["WontFix"]))
    got = _one(run, target)
    truth = sb.truth("github")[target]
    assert got.status is status
    closed = "status" in change
    assert got.completed_at == (truth.updated if closed else None)
    assert got.kind.value == kind


def test_every_sandbox_item_gets_the_truths_status(sb: Sandbox) -> None:
    """Across three repos of open, closed, merged and abandoned items, each status is right."""
    scopes = sb.scopes("github")
    run = pull(sb, config(sb, scopes))
    got = {i.external_id: i.status.value for p in run.pages for i in p.items}
    truth = {t.external_id: t.status for t in sb.truth("github").values()}
    assert got == truth
    assert {"todo", "in_progress", "done", "dropped"} <= set(truth.values())


@pytest.mark.parametrize(
    ("field", "labels", "estimate"),
    [
        (None, ["bug", "points:3"], 3.0),
        (None, ["Points: 0.5"], 0.5),
        ("size", ["points:3", "size:8"], 8.0),
        (None, ["points:many"], None),
    ],
)
def test_estimate_from_label(
    sb: Sandbox, field: str | None, labels: list[str], estimate: float | None
) -> None:
    """`<estimate_field or points>:<number>` labels give the estimate."""
    target = live(sb)[0].external_id
    sb.update("github", target, labels=labels)
    run = pull(sb, config(sb, estimate_field=field))
    assert _one(run, target).estimate == estimate


def test_closed_milestone_is_done_and_shared_milestones_appear_once(sb: Sandbox) -> None:
    """Two issues of one closed milestone give one `done` milestone container per page."""
    closed = next(
        t for t in sb.truth("github").values() if t.kind == "milestone" and t.status == "done"
    )
    number = int(closed.key.rsplit("#m", 1)[1])
    issues = [t for t in live(sb, closed.scope) if t.kind == "issue"][:2]
    for t in issues:
        sb.update("github", t.external_id, milestone=number)
    run = pull(sb, config(sb, [closed.scope]))
    page = next(p for p in run.pages if {i.external_id for i in p.items} >= {issues[0].external_id})
    milestones = [i for i in page.items if i.external_id == closed.external_id]
    assert len(milestones) == 1
    assert milestones[0].status is StatusCategory.DONE
    assert milestones[0].completed_at == closed.updated
    for p in run.pages:
        ids = [i.external_id for i in p.items if i.kind is ItemKind.MILESTONE]
        assert len(ids) == len(set(ids))


def test_auth_headers_are_set(sb: Sandbox) -> None:
    """Bearer token, GitHub media type and API version go on every request."""
    run = pull(sb, config(sb, page_size=5))
    assert len(run.requests) > 1
    for request in run.requests:
        assert request.headers["Authorization"] == f"Bearer {sb.credentials['github_token']}"
        assert request.headers["Accept"] == "application/vnd.github+json"
        assert request.headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert {r.status_code for r in run.responses} == {200}


def test_enterprise_base_url_is_used_as_given(sb: Sandbox) -> None:
    """GitHub Enterprise Server: requests go under the configured `/api/v3`-like base."""
    for t in live(sb):
        sb.delete("github", t.external_id)
    cfg = config(sb).model_copy(update={"base_url": sb.base_url("github") + "/"})
    run = pull(sb, cfg)
    assert run.requests[0].url.path == f"/github/repos/{SCOPE}/issues"
    assert run.pages[0].census == {SCOPE: []}


# --- retries and rate limits ----------------------------------------------------------


def _kinds(run: Run) -> list[str]:
    return [e[0] for e in run.events if e[0] != "response"]


@pytest.mark.parametrize("status", [429, 403])
def test_secondary_limit_waits_for_retry_after(sb: Sandbox, status: int) -> None:
    """A 429 (or 403) with Retry-After is retried only after at least that many seconds."""
    sb.inject("github", "429", secondary=True, retry_after=7, status=status)
    run = pull(sb, config(sb), cursor_for(EARLY))
    assert run.responses[0].headers["retry-after"] == "7"
    assert _kinds(run) == ["request", "sleep", "request"]
    assert run.sleeps[0] >= 7
    assert run.http is not None
    assert run.http.stats.rate_limit_wait_s >= 7
    assert len(run.pages) == 1
    assert len(issues_of(run.pages)) == 13


def test_secondary_limit_without_retry_after_waits_a_minute(sb: Sandbox) -> None:
    """A 403 that says "secondary rate limit" but not how long is waited out for a minute
    and retried, as GitHub asks, instead of failing the run as refused credentials."""
    sb.inject("github", "429", secondary=True, bare=True, status=403)
    run = pull(sb, config(sb), cursor_for(EARLY))
    assert "retry-after" not in run.responses[0].headers
    assert _kinds(run) == ["request", "sleep", "request"]
    assert run.sleeps[0] >= 60
    assert len(issues_of(run.pages)) == 13


def test_a_plain_403_is_still_a_refusal(sb: Sandbox) -> None:
    """A 403 that says nothing of a rate limit is not retried."""
    resp = httpx.Response(403, json={"message": "Resource not accessible by integration"},
                          request=httpx.Request("GET", "https://api.github.com/x"))  # fmt: skip
    assert isinstance(translate(resp, "gh"), AuthError)


def test_403_primary_rate_limit_waits_until_reset(sb: Sandbox) -> None:
    """A 403 with remaining 0 and a reset time: no request before reset − now."""
    sb.inject("github", "429", status=403, retry_after=120)
    run = pull(sb, config(sb), cursor_for(EARLY))
    after = time.time()
    refused = run.responses[0]
    assert (refused.status_code, refused.headers["x-ratelimit-remaining"]) == (403, "0")
    reset = int(refused.headers["x-ratelimit-reset"])
    assert _kinds(run) == ["request", "sleep", "request"]
    assert run.sleeps[0] >= reset - after
    assert run.pages[0].lost_scopes == []


def test_5xx_is_retried(sb: Sandbox) -> None:
    """A 502 is retried and the run completes."""
    sb.inject("github", "502")
    run = pull(sb, config(sb), cursor_for(EARLY))
    assert [r.status_code for r in run.responses] == [502, 200]
    assert run.http is not None
    assert run.http.stats.retries == 1
    assert len(issues_of(run.pages)) == 13


def test_401_raises_auth_error_and_stops(sb: Sandbox) -> None:
    """A 401 mid-scope raises AuthError: no further pages, no further requests."""
    sb.inject("github", "expire_token", path_contains="/repositories/")
    run = Run()
    with pytest.raises(AuthError):
        pull(sb, config(sb, [SCOPE, OTHER], page_size=5), cursor_for(EARLY), into=run)
    assert len(run.pages) == 1
    assert [str(r.url) for r in run.requests][1:] == run.next_links()
    assert [r.status_code for r in run.responses] == [200, 401]


def test_401_on_the_list_call_is_not_a_lost_scope(sb: Sandbox) -> None:
    """Bad credentials fail the run instead of being reported as a lost repo."""
    sb.revoke_token("github")
    run = Run()
    with pytest.raises(AuthError):
        pull(sb, config(sb), into=run)
    assert run.pages == []
    assert [r.status_code for r in run.responses] == [401]


# --- lost scopes, moves and census ----------------------------------------------------


@pytest.mark.parametrize("status", [404, 403, 410])
def test_unreachable_repo_is_a_lost_scope_and_others_continue(sb: Sandbox, status: int) -> None:
    """404/403/410 on a repo's list call → lost_scopes for it; the next repo still syncs."""
    if status == 404:
        sb.hide_scope("github", SCOPE)
    else:
        sb.github_refuse(SCOPE, status)
    cursor = cursor_for(EARLY, 'W/"e"')
    cursor["scopes"][OTHER] = {"since": EARLY, "etag": None, "runs": 1}
    run = pull(sb, config(sb, [SCOPE, OTHER]), cursor)
    assert run.responses[0].status_code == status
    assert run.pages[0].lost_scopes == [SCOPE]
    assert run.pages[0].items == []
    assert run.pages[0].census == {}
    assert run.pages[0].deleted == []
    assert run.pages[0].cursor["scopes"][SCOPE]["since"] == EARLY
    assert run.pages[1].scope == OTHER
    assert len(issues_of(run.pages[1:])) == len(live(sb, OTHER))


@pytest.mark.parametrize("follow", [False, True])
def test_renamed_repo_301_is_a_lost_scope_not_deletion(sb: Sandbox, follow: bool) -> None:
    """The 301 for a renamed repo's old name is reported as lost, also when httpx follows it."""
    old = "acme/website"
    sb.github_rename(old, SCOPE)
    run = pull(sb, config(sb, [old]), cursor_for(EARLY), follow_redirects=follow)
    moved = run.responses[0]
    assert moved.status_code == 301
    assert "/github/repositories/" in moved.headers["location"]
    assert len(run.pages) == 1
    assert run.pages[0].lost_scopes == [old]
    assert run.pages[0].items == []
    assert run.pages[0].census == {}


def test_first_full_run_emits_the_census(sb: Sandbox) -> None:
    """A first run (no since) lists everything: its last page carries every id + milestone."""
    gone = live(sb)[3].external_id
    sb.delete("github", gone)
    run = pull(sb, config(sb, page_size=10))
    assert len(run.requests) == 2
    assert run.pages[0].census == {}
    ids = [i.external_id for p in run.pages for i in p.items]
    census = run.pages[1].census[SCOPE]
    assert sorted(census) == sorted(set(ids))
    assert sorted(census) == sorted(t.external_id for t in live(sb, containers=True))
    assert gone not in census
    assert run.state()["runs"] == 0


def test_census_every_n_runs_lists_all_ids_without_since(sb: Sandbox) -> None:
    """When census_every runs have passed, a full id listing follows the incremental pass."""
    _, second = settled(sb)
    oldest = live(sb)[0].external_id
    sb.delete("github", oldest)  # older than `since`: the incremental page is unchanged
    cursor = second.cursor
    cursor["scopes"][SCOPE]["runs"] = 2
    before = second.state()
    run = pull(sb, config(sb, page_size=5, census_every=3), cursor)
    assert run.responses[0].status_code == 304
    assert dict(run.requests[1].url.params) == {"state": "all", "per_page": "5"}
    assert [str(r.url) for r in run.requests[2:]] == run.next_links()
    assert len(run.pages) == 4  # the 304, then 12 issues by 5
    assert [p.census for p in run.pages[:-1]] == [{}, {}, {}]
    census = run.pages[-1].census[SCOPE]
    assert sorted(census) == sorted(t.external_id for t in live(sb, containers=True))
    assert oldest not in census
    assert run.state() == {"since": before["since"], "etag": before["etag"], "runs": 0}


def test_census_is_not_due_before_n_runs(sb: Sandbox) -> None:
    """Between censuses a no-change run is the one 304 request and counts the run."""
    _, second = settled(sb)
    assert second.state()["runs"] == 1
    run = pull(sb, config(sb, census_every=3), second.cursor)
    assert [r.status_code for r in run.responses] == [304]
    assert run.state()["runs"] == 2


def test_transferred_issue_leaves_one_repo_for_the_other_with_its_id(sb: Sandbox) -> None:
    """After a transfer the issue comes back from its new repo (same id, new key) and the old
    repo's census no longer lists it."""
    scopes = [SCOPE, OTHER]
    first = pull(sb, config(sb, scopes))
    issue = next(t for t in live(sb) if t.kind == "issue")
    sb.move("github", issue.external_id, OTHER)
    cursor = first.cursor
    cursor["scopes"][SCOPE]["runs"] = 1
    run = pull(sb, config(sb, scopes, census_every=2), cursor)
    (got,) = [i for i in issues_of(run.pages) if i.external_id == issue.external_id]
    assert (got.container, got.key) == (OTHER, sb.truth("github")[issue.external_id].key)
    assert got.key != issue.key
    census = [c for p in run.pages for c in p.census.get(SCOPE, [])]
    assert len(census) == len(live(sb, containers=True))
    assert issue.external_id not in census


def test_cursor_is_json_serialisable_and_not_shared_between_pages(sb: Sandbox) -> None:
    """Each page carries its own JSON-serialisable snapshot of the full cursor."""
    run = pull(sb, config(sb, page_size=10), cursor_for(EARLY))
    json.dumps([p.cursor for p in run.pages])
    assert run.pages[0].cursor["scopes"][SCOPE]["pass"]["next"] == run.next_links()[0]
    assert "pass" not in run.pages[1].cursor["scopes"][SCOPE]


def test_the_normaliser_is_a_function_of_the_json_and_names_what_it_skips() -> None:
    """No HTTP and no logging: a page of issues in, items (milestone first) and skips out."""
    good = issue_item(1, "2026-11-01T00:00:00Z", labels=[{"name": "wontfix"}])
    bad = {"id": 99, "number": 2, "title": "no timestamps"}
    items, skipped = Normaliser.build("gh", ["wontfix"], None).page([good, bad], "o/r")
    assert [(i.kind, i.key) for i in items] == [
        (ItemKind.MILESTONE, f"o/r#m{good['milestone']['number']}"),
        (ItemKind.ISSUE, "o/r#1"),
    ]
    assert items[1].status is StatusCategory.DROPPED
    assert skipped == [Skipped(99, "KeyError: 'created_at'")]


def test_the_cursor_is_typed_and_keeps_its_stored_json_shape() -> None:
    """A stored cursor loads as GitHubCursor and dumps back unchanged; another version restarts."""
    start, url = "2025-01-02T00:00:00+00:00", "https://api.github.com/x?page=2"
    listing = {"window": None, "start": start, "next": url, "high": None, "hold": False}
    raw: dict[str, Any] = {
        "v": 1,
        "scopes": {
            "o/r": {"since": None, "etag": None, "runs": 3, "pass": listing},
            "o/s": {"since": "2025-01-01T00:00:00Z", "etag": 'W/"x"', "runs": 1},
        },
    }
    cursor = GitHubCursor.load(raw)
    pending = cursor.scope("o/r").pending
    assert pending is not None
    assert pending.next == url
    assert cursor.dump() == raw
    assert GitHubCursor.load({**raw, "v": 2}).dump() == {"v": 1, "scopes": {}}


def test_a_yielded_page_holds_no_response_or_json_of_the_pull(sb: Sandbox) -> None:
    """While the consumer holds a page (the store busy), the pull keeps no response alive:
    each page's body and parsed JSON are freed before it is handed on (refcounts alone)."""
    cfg = config(sb, page_size=5)
    alive: list[weakref.ref[httpx.Response]] = []

    async def go() -> int:
        transport = httpx.MockTransport(sb.transport().handle_request)
        async with httpx.AsyncClient(transport=transport) as client:
            http = Http(client, connector="t")
            get_json = http.get_json

            async def recording(url: str, **kw: Any) -> tuple[httpx.Response, Any]:
                resp, body = await get_json(url, **kw)
                alive.append(weakref.ref(resp))
                return resp, body

            http.get_json = recording  # type: ignore[method-assign]
            pages = 0
            async for _ in GitHubConnector(cfg, http).pull(None):
                pages += 1
                assert [r for r in alive if r() is not None] == []
            return pages

    gc.disable()
    try:
        pages = asyncio.run(go())
    finally:
        gc.enable()
    assert pages > 2
