"""GitHubConnector against GitHub's published examples and recorded real responses."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

import httpx
import pytest
import respx
from okrsync_connectors.github import GitHubConnector
from okrsync_connectors.github.cursor import GitHubCursor
from okrsync_connectors.github.normalise import Normaliser, Skipped

from okrsync.config import ConnectorConfig
from okrsync.errors import AuthError, CursorRejected
from okrsync.http import Http
from okrsync.models import ItemKind, Page, StatusCategory
from tests.vendor import VENDOR_API

VENDOR = VENDOR_API / "github"
BASE = "https://api.github.com"
SCOPE = "octocat/Hello-World"
ISSUES = f"{BASE}/repos/{SCOPE}/issues"
TOKEN_ENV = "OKRSYNC_TEST_GITHUB_TOKEN"
HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "content-encoding", "status"}

Handler = Callable[[httpx.Request], httpx.Response]


# --- vendor data ----------------------------------------------------------------------


@cache
def _load(rel: str) -> Any:
    return json.loads((VENDOR / rel).read_text(encoding="utf-8"))


def vendor(rel: str) -> Any:
    """A fresh copy of a vendor file, safe to modify per case."""
    return copy.deepcopy(_load(rel))


def pr_item(**changes: Any) -> dict[str, Any]:
    """The spec's list-issues example: an open pull request with a label and a milestone."""
    item: dict[str, Any] = vendor("examples/list-repo-issues.json")[0]
    item.update(changes)
    return item


def issue_item(number: int, updated: str, **changes: Any) -> dict[str, Any]:
    """The spec's get-issue example turned into a plain issue (no `pull_request` key)."""
    item: dict[str, Any] = vendor("examples/get-issue.json")
    del item["pull_request"]
    item.update(id=1000 + number, number=number, updated_at=updated, state_reason=None)
    item.update(changes)
    return item


def recorded_headers(pairs: list[Any]) -> dict[str, str]:
    """Headers of a recording ([[name, value], ...] or nock's flat list), minus framing."""
    flat = [x for pair in pairs for x in pair] if pairs and isinstance(pairs[0], list) else pairs
    out: dict[str, str] = {}
    for name, value in zip(flat[::2], flat[1::2], strict=True):
        if name.lower() not in HOP_BY_HOP:
            out[name] = value
    return out


def paginate_fixture() -> list[dict[str, Any]]:
    """The five recorded GET pages of octokit's paginate-issues scenario."""
    data = vendor("recorded/octokit-fixtures/paginate-issues.raw-fixture.json")
    return [x for x in data if x["method"] == "get"]


# --- harness --------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "ghp_test_token")


def config(scope: list[str] | None = None, **kw: Any) -> ConnectorConfig:
    return ConnectorConfig(
        name="gh",
        type="github",
        base_url=BASE,
        scope=scope or [SCOPE],
        token_env=TOKEN_ENV,
        **kw,
    )


class Recorder:
    """Everything the connector did, in order: requests sent and sleeps taken."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    @property
    def requests(self) -> list[httpx.Request]:
        return [e[1] for e in self.events if e[0] == "request"]

    @property
    def sleeps(self) -> list[float]:
        return [e[1] for e in self.events if e[0] == "sleep"]

    async def sleep(self, seconds: float) -> None:
        self.events.append(("sleep", seconds))

    def serve(self, handler: Handler) -> Handler:
        def side_effect(request: httpx.Request) -> httpx.Response:
            self.events.append(("request", request))
            return handler(request)

        return side_effect


def run(
    handler: Handler,
    cursor: dict[str, Any] | None = None,
    cfg: ConnectorConfig | None = None,
    *,
    follow_redirects: bool = False,
    pages: list[Page] | None = None,
    recorder: Recorder | None = None,
) -> tuple[list[Page], Recorder, Http]:
    """One pull over a respx-mocked client; pages and events so far survive an exception."""
    rec = recorder or Recorder()
    out: list[Page] = [] if pages is None else pages

    async def go() -> Http:
        async with httpx.AsyncClient(follow_redirects=follow_redirects) as client:
            http = Http(client, connector="t", sleep=rec.sleep)
            async for page in GitHubConnector(cfg or config(), http).pull(cursor):
                out.append(page)
            return http

    with respx.mock(assert_all_called=False) as router:
        router.route(host="api.github.com").mock(side_effect=rec.serve(handler))
        http = asyncio.run(go())
    return out, rec, http


def ok(
    body: Any,
    *,
    link: str | None = None,
    etag: str | None = None,
    date_hdr: str | None = "Tue, 01 Jan 2030 00:00:00 GMT",
) -> httpx.Response:
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if link:
        headers["Link"] = link
    if etag:
        headers["ETag"] = etag
    if date_hdr:
        headers["Date"] = date_hdr
    return httpx.Response(200, json=body, headers=headers)


def next_link(url: str) -> str:
    return f'<{url}>; rel="next", <{url}>; rel="last"'


def items_of(pages: list[Page]) -> list[Any]:
    return [i for p in pages for i in p.items]


def issues_of(pages: list[Page]) -> list[Any]:
    return [i for i in items_of(pages) if not i.kind.is_container]


def by_url(table: dict[str, httpx.Response | Callable[[], httpx.Response]]) -> Handler:
    """Serve exact URLs (the first list call is matched by path + its query params)."""

    def handler(request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if url in table:
            answer = table[url]
            return answer() if callable(answer) else answer
        key = f"{request.url.path}?since={request.url.params.get('since', '')}"
        if "sort" in request.url.params and key in table:
            answer = table[key]
            return answer() if callable(answer) else answer
        if "sort" not in request.url.params and f"census:{request.url.path}" in table:
            answer = table[f"census:{request.url.path}"]
            return answer() if callable(answer) else answer
        return httpx.Response(418, json={"message": f"unexpected request {url}"})

    return handler


FIRST = "/repos/octocat/Hello-World/issues?since="


def cursor_for(since: str | None, etag: str | None = None, runs: int = 1) -> dict[str, Any]:
    return {"v": 1, "scopes": {SCOPE: {"since": since, "etag": etag, "runs": runs}}}


# --- paging ---------------------------------------------------------------------------


def test_replays_recorded_pages_to_the_end_following_link_urls() -> None:
    """All 13 recorded issues arrive over the 5 recorded pages, each Link URL requested as given."""
    fixture = paginate_fixture()
    pages_by_url = {f"{f['scope'].replace(':443', '')}{f['path']}": f for f in fixture}
    first = fixture[0]

    def handler(request: httpx.Request) -> httpx.Response:
        f = pages_by_url.get(str(request.url))
        if f is None and request.url.path == first["path"].split("?")[0]:
            f = first
        assert f is not None, str(request.url)
        return httpx.Response(
            f["status"], json=f["response"], headers=recorded_headers(f["rawHeaders"])
        )

    scope = first["path"].split("/")[2] + "/" + first["path"].split("/")[3]
    pages, rec, _ = run(handler, cfg=config([scope], page_size=3))
    incremental = pages[:5]
    assert [len(p.items) for p in incremental] == [3, 3, 3, 3, 1]
    assert sorted(int(i.key.rsplit("#", 1)[1]) for i in items_of(incremental)) == list(range(1, 14))
    followed = [str(r.url) for r in rec.requests[1:5]]
    assert followed == [f"https://api.github.com{f['path']}" for f in fixture[1:]]
    first_params = rec.requests[0].url.params
    assert dict(first_params) == {
        "state": "all",
        "sort": "updated",
        "direction": "asc",
        "per_page": "3",
    }


def test_recorded_issue_changed_at_run_start_holds_window_and_defers_census() -> None:
    """Issue 13 was updated in the second of the first response's Date: window kept, census run."""
    fixture = paginate_fixture()
    pages_by_url = {f"https://api.github.com{f['path']}": f for f in fixture}
    first = fixture[0]

    def handler(request: httpx.Request) -> httpx.Response:
        f = pages_by_url.get(str(request.url)) or first
        return httpx.Response(
            f["status"], json=f["response"], headers=recorded_headers(f["rawHeaders"])
        )

    scope = "/".join(first["path"].split("/")[2:4])
    pages, rec, _ = run(handler, cfg=config([scope], page_size=3))
    assert pages[4].census == {}
    assert pages[4].cursor["scopes"][scope]["since"] is None
    assert "since" not in rec.requests[5].url.params  # the census listing
    assert "sort" not in rec.requests[5].url.params
    assert len(pages) == 10
    assert len(pages[-1].census[scope]) == 13
    assert pages[-1].cursor["scopes"][scope]["runs"] == 0


def test_link_next_url_is_requested_verbatim() -> None:
    """A next URL with an odd extra parameter is requested byte for byte, never rebuilt."""
    odd = f"{BASE}/repositories/1296269/issues?per_page=100&page=2&odd=a%2Cb&x=&y=%7Bz%7D"
    handler = by_url(
        {
            f"{FIRST}2024-12-31T00:00:00Z": ok(
                [issue_item(1, "2025-01-01T00:00:00Z")], link=next_link(odd)
            ),
            odd: ok([issue_item(2, "2025-01-02T00:00:00Z")]),
        }
    )
    pages, rec, _ = run(handler, cursor_for("2024-12-31T00:00:00Z"))
    assert str(rec.requests[1].url) == odd
    assert len(rec.requests) == 2
    assert [i.key for i in issues_of(pages)] == [f"{SCOPE}#1", f"{SCOPE}#2"]


def test_equal_timestamps_across_page_boundary_no_loss_no_loop() -> None:
    """Ties split over two pages are all kept; the next run re-reads the tie once and stops."""
    tie = "2025-02-01T10:00:00Z"
    page2 = f"{BASE}/repositories/1296269/issues?page=2"
    handler = by_url(
        {
            f"{FIRST}": ok(
                [issue_item(1, "2025-01-31T00:00:00Z"), issue_item(2, tie)],
                link=next_link(page2),
                date_hdr="Mon, 03 Feb 2025 00:00:00 GMT",
            ),
            page2: ok([issue_item(3, tie)]),
            f"{FIRST}{tie}": ok([issue_item(2, tie), issue_item(3, tie)], etag='W/"tie"'),
            f"census:{ISSUES.removeprefix(BASE)}": ok([]),
        }
    )
    pages, _, _ = run(handler, cfg=config(page_size=2))
    assert {i.key for i in issues_of(pages)} == {f"{SCOPE}#1", f"{SCOPE}#2", f"{SCOPE}#3"}
    cursor = pages[-1].cursor
    assert cursor["scopes"][SCOPE]["since"] == tie
    again, rec, _ = run(handler, cursor, cfg=config(page_size=3))
    assert len(rec.requests) == 1
    assert rec.requests[0].url.params["since"] == tie
    assert {i.key for i in issues_of(again)} == {f"{SCOPE}#2", f"{SCOPE}#3"}
    assert again[-1].cursor["scopes"][SCOPE] == {"since": tie, "etag": 'W/"tie"', "runs": 1}


def test_killed_run_resumes_at_the_next_link_replaying_at_most_one_page() -> None:
    """The cursor of page 1 carries the next URL: a new run starts there, not at page 1."""
    page2 = f"{BASE}/repositories/1296269/issues?since=x&page=2"
    page3 = f"{BASE}/repositories/1296269/issues?since=x&page=3"
    handler = by_url(
        {
            f"{FIRST}2025-01-01T00:00:00Z": ok(
                [issue_item(1, "2025-01-02T00:00:00Z")], link=next_link(page2)
            ),
            page2: ok([issue_item(2, "2025-01-03T00:00:00Z")], link=next_link(page3)),
            page3: ok([issue_item(3, "2025-01-04T00:00:00Z")]),
        }
    )
    pages, _, _ = run(handler, cursor_for("2025-01-01T00:00:00Z"))
    assert [i.key for i in issues_of(pages)] == [f"{SCOPE}#1", f"{SCOPE}#2", f"{SCOPE}#3"]
    resumed, rec, _ = run(handler, pages[0].cursor)
    assert [str(r.url) for r in rec.requests] == [page2, page3]
    assert resumed[-1].cursor["scopes"][SCOPE]["since"] == "2025-01-04T00:00:00Z"
    assert "pass" not in resumed[-1].cursor["scopes"][SCOPE]


def test_item_updated_during_the_run_keeps_the_starting_window() -> None:
    """An item whose updated_at is at/after the server Date of the first page holds `since`."""
    window = "2025-01-01T00:00:00Z"
    page2 = f"{BASE}/repositories/1296269/issues?page=2"
    handler = by_url(
        {
            f"{FIRST}{window}": ok(
                [issue_item(1, "2025-01-02T00:00:00Z")],
                link=next_link(page2),
                date_hdr="Fri, 03 Jan 2025 12:00:00 GMT",
            ),
            page2: ok([issue_item(2, "2025-01-03T12:00:05Z")]),
        }
    )
    pages, _, _ = run(handler, cursor_for(window))
    assert pages[-1].cursor["scopes"][SCOPE]["since"] == window


def test_expired_link_restarts_from_window_then_gives_up() -> None:
    """A 422 on a next link restarts the scope from its window; the fourth refusal raises."""
    page2 = f"{BASE}/repositories/1296269/issues?after=Y3Vyc29y"
    refused = httpx.Response(
        422,
        json={"message": "Pagination with the page parameter is not supported for large datasets"},
    )
    handler = by_url(
        {
            f"{FIRST}2025-01-01T00:00:00Z": ok(
                [issue_item(1, "2025-01-02T00:00:00Z")], link=next_link(page2)
            ),
            page2: refused,
        }
    )
    pages: list[Page] = []
    with pytest.raises(CursorRejected):
        run(handler, cursor_for("2025-01-01T00:00:00Z"), pages=pages)
    assert len(pages) == 4  # page 1 of the first try and of each of the 3 restarts
    assert pages[-1].cursor["scopes"][SCOPE]["pass"]["window"] == "2025-01-01T00:00:00Z"


# --- conditional requests -------------------------------------------------------------


def test_no_change_rerun_is_one_request_answered_304() -> None:
    """With the stored ETag for the same `since`, the one request is conditional and gets 304."""
    rec304 = vendor("recorded/pygithub/conditional-request-304.json")["interactions"][0]
    etag = rec304["request"]["headers"]["If-None-Match"]
    since = "2025-01-01T00:00:00Z"
    handler = by_url(
        {
            f"{FIRST}{since}": httpx.Response(
                304, headers=recorded_headers(rec304["response"]["headers"])
            ),
        }
    )
    pages, rec, http = run(handler, cursor_for(since, etag))
    assert len(rec.requests) == 1
    assert rec.requests[0].headers["If-None-Match"] == etag
    assert rec.requests[0].url.params["since"] == since
    assert [p.items for p in pages] == [[]]
    assert pages[0].cursor["scopes"][SCOPE] == {"since": since, "etag": etag, "runs": 2}
    assert http.stats.not_modified == 1


def test_since_stays_stable_between_runs_so_the_etag_can_match() -> None:
    """Run 2 stores since + ETag in the exact string form; run 3 sends the same URL, gets 304."""
    stamp = "2011-04-22T13:33:48Z"
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if request.headers.get("If-None-Match") == 'W/"e1"':
            return httpx.Response(304)
        return ok(vendor("examples/list-repo-issues.json"), etag='W/"e1"')

    first, _, _ = run(handler)
    assert first[-1].cursor["scopes"][SCOPE]["since"] == stamp
    assert first[-1].cursor["scopes"][SCOPE]["etag"] is None  # obtained without a since
    second, _, _ = run(handler, first[-1].cursor)
    assert second[-1].cursor["scopes"][SCOPE]["since"] == stamp
    assert second[-1].cursor["scopes"][SCOPE]["etag"] == 'W/"e1"'
    third, rec, _ = run(handler, second[-1].cursor)
    assert len(rec.requests) == 1
    assert str(rec.requests[0].url) == str(calls[1].url)
    assert third[-1].items == []


def test_full_page_is_never_cached_by_etag() -> None:
    """A first page as long as per_page may hide a change on page 2: its ETag is not stored."""
    since = "2025-01-01T00:00:00Z"
    handler = by_url(
        {
            f"{FIRST}{since}": ok([issue_item(1, since), issue_item(2, since)], etag='"full"'),
        }
    )
    pages, _, _ = run(handler, cursor_for(since), cfg=config(page_size=2))
    assert pages[-1].cursor["scopes"][SCOPE] == {"since": since, "etag": None, "runs": 2}


def test_two_repos_without_changes_cost_one_request_each() -> None:
    """Every configured repo gets exactly one conditional request on a no-change run."""
    other = "octocat/Spoon-Knife"
    cursor = cursor_for("2025-01-01T00:00:00Z", '"a"')
    cursor["scopes"][other] = {"since": "2025-01-02T00:00:00Z", "etag": '"b"', "runs": 1}
    pages, rec, _ = run(lambda r: httpx.Response(304), cursor, config([SCOPE, other]))
    assert [r.url.path for r in rec.requests] == [
        f"/repos/{SCOPE}/issues",
        f"/repos/{other}/issues",
    ]
    assert [r.headers["If-None-Match"] for r in rec.requests] == ['"a"', '"b"']
    assert [p.scope for p in pages] == [SCOPE, other]


# --- normalisation --------------------------------------------------------------------


def test_pull_request_and_its_milestone_are_normalised() -> None:
    """The spec example: an open PR (in progress) plus its milestone as a repo container."""
    handler = by_url({FIRST: ok(vendor("examples/list-repo-issues.json"))})
    pages, _, _ = run(handler, cursor_for(None))
    milestone, pr = pages[0].items
    assert pr.kind is ItemKind.PULL_REQUEST
    assert pr.item_type == "pull_request"
    assert pr.external_id == "1"
    assert pr.key == f"{SCOPE}#1347"
    assert pr.container == SCOPE
    assert pr.status is StatusCategory.IN_PROGRESS
    assert pr.status_raw == "open:completed"
    assert pr.labels == ("bug",)
    assert pr.assignee == "octocat"
    assert pr.milestone == "v1.0"
    assert pr.url == "https://github.com/octocat/Hello-World/issues/1347"
    assert pr.created == datetime(2011, 4, 22, 13, 33, 48, tzinfo=UTC)
    assert pr.completed_at is None
    assert pr.custom == {"repo": SCOPE, "author": "octocat"}
    assert milestone.kind is ItemKind.MILESTONE
    assert milestone.external_id == f"milestone:{SCOPE}#1"
    assert milestone.key == f"{SCOPE}#m1"
    assert milestone.title == "v1.0"
    assert milestone.container == SCOPE
    assert milestone.due == date(2012, 10, 9)
    assert milestone.status is StatusCategory.TODO


def test_recorded_plain_issue_is_an_open_todo_issue() -> None:
    """A real recorded issue has no `pull_request` key: kind issue, todo, author kept."""
    recorded = paginate_fixture()[0]["response"][0]
    pages, _, _ = run(by_url({FIRST: ok([recorded])}), cursor_for(None))
    (item,) = issues_of(pages)
    assert item.kind is ItemKind.ISSUE
    assert item.item_type == "issue"
    assert item.status is StatusCategory.TODO
    assert item.assignee is None
    assert item.custom == {"repo": SCOPE, "author": "octokit-fixture-user-a"}


def _label(name: str) -> dict[str, Any]:
    lab: dict[str, Any] = copy.deepcopy(vendor("examples/get-issue.json")["labels"][0])
    lab["name"] = name
    return lab


CLOSED = "2025-01-05T08:00:00Z"


@pytest.mark.parametrize(
    ("changes", "pr", "status", "completed"),
    [
        (
            {"state": "closed", "closed_at": CLOSED, "state_reason": "not_planned"},
            False,
            StatusCategory.DROPPED,
            None,
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
            None,
        ),
        (
            {"state": "closed", "closed_at": CLOSED, "merged_at": None},
            True,
            StatusCategory.DROPPED,
            None,
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
    cfg = config(dropped_statuses=["Won't Do", "Duplicate", "WontFix"])
    (got,) = issues_of(run(by_url({FIRST: ok([item])}), cursor_for(None), cfg)[0])
    assert (got.status, got.completed_at) == (status, completed)


@pytest.mark.parametrize(
    ("field", "labels", "estimate"),
    [
        (None, ["bug", "points:3"], 3.0),
        (None, ["Points: 0.5"], 0.5),
        ("size", ["points:3", "size:8"], 8.0),
        (None, ["points:many"], None),
    ],
)
def test_estimate_from_label(field: str | None, labels: list[str], estimate: float | None) -> None:
    """`<estimate_field or points>:<number>` labels give the estimate."""
    item = issue_item(7, "2025-01-05T08:00:00Z", labels=[_label(n) for n in labels])
    (got,) = issues_of(
        run(by_url({FIRST: ok([item])}), cursor_for(None), config(estimate_field=field))[0]
    )
    assert got.estimate == estimate


def test_closed_milestone_is_done_and_shared_milestones_appear_once() -> None:
    """Two issues of one closed milestone give one `done` milestone container per page."""
    first, second = issue_item(1, "2025-01-02T00:00:00Z"), issue_item(2, "2025-01-03T00:00:00Z")
    for item in (first, second):
        item["milestone"]["state"] = "closed"
    pages, _, _ = run(by_url({FIRST: ok([first, second])}), cursor_for(None))
    milestones = [i for i in pages[0].items if i.kind is ItemKind.MILESTONE]
    assert len(milestones) == 1
    assert milestones[0].status is StatusCategory.DONE
    assert milestones[0].completed_at == datetime(2013, 2, 12, 13, 22, 1, tzinfo=UTC)


def test_auth_headers_are_set() -> None:
    """Bearer token, GitHub media type and API version go on every request."""
    _, rec, _ = run(by_url({FIRST: ok([])}), cursor_for(None))
    headers = rec.requests[0].headers
    assert headers["Authorization"] == "Bearer ghp_test_token"
    assert headers["Accept"] == "application/vnd.github+json"
    assert headers["X-GitHub-Api-Version"] == "2022-11-28"


def test_enterprise_base_url_is_used_as_given() -> None:
    """GitHub Enterprise Server: requests go under the configured `/api/v3` base."""
    rec = Recorder()
    cfg = ConnectorConfig(
        name="gh",
        type="github",
        base_url="https://ghe.example.com/api/v3/",
        scope=[SCOPE],
        token_env=TOKEN_ENV,
    )

    async def go() -> list[Page]:
        async with httpx.AsyncClient() as client:
            http = Http(client, connector="t", sleep=rec.sleep)
            return [p async for p in GitHubConnector(cfg, http).pull(None)]

    with respx.mock(assert_all_called=False) as router:
        router.route(host="ghe.example.com").mock(side_effect=rec.serve(lambda r: ok([])))
        pages = asyncio.run(go())
    assert rec.requests[0].url.path == f"/api/v3/repos/{SCOPE}/issues"
    assert pages[0].census == {SCOPE: []}


# --- retries and rate limits ----------------------------------------------------------


def test_429_waits_for_retry_after() -> None:
    """A 429 with Retry-After is retried only after at least that many seconds."""
    answers = iter([httpx.Response(429, headers={"Retry-After": "7"}), ok([])])
    pages, rec, http = run(lambda r: next(answers), cursor_for("2025-01-01T00:00:00Z"))
    assert [e[0] for e in rec.events] == ["request", "sleep", "request"]
    assert rec.sleeps[0] >= 7
    assert http.stats.rate_limit_wait_s >= 7
    assert len(pages) == 1


def test_recorded_403_rate_limit_waits_until_reset() -> None:
    """The recorded 403 (remaining 0) plus a reset time: no request before reset − now."""
    recorded = vendor("recorded/pygithub/rate-limit-exceeded-403.json")["interactions"][1]
    headers = recorded_headers(recorded["response"]["headers"])
    reset = int(time.time()) + 120
    headers["x-ratelimit-reset"] = str(reset)
    answers = iter(
        [httpx.Response(403, json=recorded["response"]["body"], headers=headers), ok([])]
    )
    pages, rec, _ = run(lambda r: next(answers), cursor_for("2025-01-01T00:00:00Z"))
    after = time.time()
    assert [e[0] for e in rec.events] == ["request", "sleep", "request"]
    assert rec.sleeps[0] >= reset - after
    assert pages[0].lost_scopes == []


def test_5xx_is_retried() -> None:
    """A 502 is retried and the run completes."""
    answers = iter([httpx.Response(502), ok([issue_item(1, "2025-01-02T00:00:00Z")])])
    pages, rec, http = run(lambda r: next(answers), cursor_for("2025-01-01T00:00:00Z"))
    assert len(rec.requests) == 2
    assert http.stats.retries == 1
    assert len(issues_of(pages)) == 1


def test_401_raises_auth_error_and_stops() -> None:
    """A 401 mid-scope raises AuthError: no further pages, no further requests."""
    page2 = f"{BASE}/repositories/1296269/issues?page=2"
    handler = by_url(
        {
            f"{FIRST}2025-01-01T00:00:00Z": ok(
                [issue_item(1, "2025-01-02T00:00:00Z")], link=next_link(page2)
            ),
            page2: httpx.Response(401, json={"message": "Bad credentials"}),
        }
    )
    pages: list[Page] = []
    rec = Recorder()
    with pytest.raises(AuthError):
        run(
            handler,
            cursor_for("2025-01-01T00:00:00Z"),
            config([SCOPE, "octocat/other"]),
            pages=pages,
            recorder=rec,
        )
    assert len(pages) == 1
    assert [str(r.url) for r in rec.requests][1:] == [page2]


def test_401_on_the_list_call_is_not_a_lost_scope() -> None:
    """Bad credentials fail the run instead of being reported as a lost repo."""
    pages: list[Page] = []
    with pytest.raises(AuthError):
        run(
            lambda r: httpx.Response(401, json={"message": "Bad credentials"}),
            cursor_for(None),
            pages=pages,
        )
    assert pages == []


# --- lost scopes, moves and census ----------------------------------------------------


@pytest.mark.parametrize("status", [404, 403, 410])
def test_unreachable_repo_is_a_lost_scope_and_others_continue(status: int) -> None:
    """404/403/410 on a repo's list call → lost_scopes for it; the next repo still syncs."""
    other = "octocat/Spoon-Knife"

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == f"/repos/{SCOPE}/issues":
            return httpx.Response(status, json={"message": "Not Found"})
        return ok([issue_item(1, "2025-01-02T00:00:00Z")])

    cursor = cursor_for("2025-01-01T00:00:00Z", '"e"')
    cursor["scopes"][other] = {"since": "2025-01-01T00:00:00Z", "etag": None, "runs": 1}
    pages, _, _ = run(handler, cursor, config([SCOPE, other]))
    assert pages[0].lost_scopes == [SCOPE]
    assert pages[0].items == []
    assert pages[0].census == {}
    assert pages[0].deleted == []
    assert pages[0].cursor["scopes"][SCOPE]["since"] == "2025-01-01T00:00:00Z"
    assert pages[1].scope == other
    assert len(issues_of(pages[1:])) == 1


@pytest.mark.parametrize("follow", [False, True])
def test_renamed_repo_301_is_a_lost_scope_not_deletion(follow: bool) -> None:
    """The recorded 301 after a rename is reported as lost, also when httpx follows it."""
    fixture = vendor("recorded/octokit-fixtures/rename-repository.raw-fixture.json")
    moved = next(f for f in fixture if f["status"] == 301)
    target = next(f for f in fixture if f["method"] == "get" and f["status"] == 200)
    location = recorded_headers(moved["rawHeaders"])["Location"]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/repositories/"):
            return ok([issue_item(1, "2025-01-02T00:00:00Z")])
        assert request.url.path == f"/repos/{SCOPE}/issues"
        headers = recorded_headers(moved["rawHeaders"])
        headers["Location"] = f"{location}/issues?{request.url.query.decode()}"
        return httpx.Response(301, json=moved["response"], headers=headers)

    assert target["response"]["id"] == int(location.rsplit("/", 1)[1])
    pages, _, _ = run(handler, cursor_for("2025-01-01T00:00:00Z"), follow_redirects=follow)
    assert len(pages) == 1
    assert pages[0].lost_scopes == [SCOPE]
    assert pages[0].items == []
    assert pages[0].census == {}


def test_first_full_run_emits_the_census() -> None:
    """A first run (no since) lists everything: its last page carries every id + milestone."""
    page2 = f"{BASE}/repositories/1296269/issues?page=2"
    handler = by_url(
        {
            FIRST: ok([issue_item(1, "2025-01-02T00:00:00Z")], link=next_link(page2)),
            page2: ok(vendor("examples/list-repo-issues.json")),
        }
    )
    pages, rec, _ = run(handler)
    assert len(rec.requests) == 2
    assert pages[0].census == {}
    assert pages[1].census == {SCOPE: ["milestone:octocat/Hello-World#1", "1001", "1"]}
    assert pages[1].cursor["scopes"][SCOPE]["runs"] == 0


def test_census_every_n_runs_lists_all_ids_without_since() -> None:
    """When census_every runs have passed, a full id listing follows the incremental pass."""
    page2 = f"{BASE}/repositories/1296269/issues?per_page=100&page=2"
    census_first = ISSUES.removeprefix(BASE)
    handler = by_url(
        {
            f"{FIRST}2025-01-01T00:00:00Z": httpx.Response(304),
            f"census:{census_first}": ok(
                [issue_item(5, "2024-01-01T00:00:00Z")], link=next_link(page2)
            ),
            page2: ok([issue_item(4, "2023-01-01T00:00:00Z", milestone=None)]),
        }
    )
    cursor = cursor_for("2025-01-01T00:00:00Z", '"e"', runs=2)
    pages, rec, _ = run(handler, cursor, config(census_every=3))
    assert dict(rec.requests[1].url.params) == {"state": "all", "per_page": "100"}
    assert str(rec.requests[2].url) == page2
    assert [p.census for p in pages[:2]] == [{}, {}]
    assert pages[2].census == {SCOPE: ["milestone:octocat/Hello-World#1", "1005", "1004"]}
    assert pages[2].cursor["scopes"][SCOPE] == {
        "since": "2025-01-01T00:00:00Z",
        "etag": '"e"',
        "runs": 0,
    }


def test_census_is_not_due_before_n_runs() -> None:
    """Between censuses a no-change run is the one 304 request and counts the run."""
    cursor = cursor_for("2025-01-01T00:00:00Z", '"e"', runs=1)
    pages, rec, _ = run(lambda r: httpx.Response(304), cursor, config(census_every=3))
    assert len(rec.requests) == 1
    assert pages[-1].cursor["scopes"][SCOPE]["runs"] == 2


def test_cursor_is_json_serialisable_and_not_shared_between_pages() -> None:
    """Each page carries its own JSON-serialisable snapshot of the full cursor."""
    page2 = f"{BASE}/repositories/1296269/issues?page=2"
    handler = by_url(
        {
            f"{FIRST}2025-01-01T00:00:00Z": ok(
                [issue_item(1, "2025-01-02T00:00:00Z")], link=next_link(page2)
            ),
            page2: ok([issue_item(2, "2025-01-03T00:00:00Z")]),
        }
    )
    pages, _, _ = run(handler, cursor_for("2025-01-01T00:00:00Z"))
    json.dumps([p.cursor for p in pages])
    assert pages[0].cursor["scopes"][SCOPE]["pass"]["next"] == page2
    assert "pass" not in pages[1].cursor["scopes"][SCOPE]


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
    start, url = "2025-01-02T00:00:00+00:00", f"{BASE}/x?page=2"
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
