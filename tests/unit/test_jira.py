"""JiraConnector against the sandbox's Jira Cloud and Jira Data Center, in process.

Every connector test drives the real connector through `Sandbox.transport()` (no socket):
the sandbox serves `/rest/api/3/search/jql` (token paging, `isLast`), `/rest/api/2/search`
(`startAt`/`total`), `approximate-count`, `/field` and `/serverInfo`, evaluates the JQL the
connector sends, and is steered through its controls (update, delete, move, set_updated,
hide_scope, revoke_token, faults, settings). The tests at the end check the pure normaliser
on recorded vendor shapes (the Airbyte issue in tests/fixtures/vendor-api).
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from okrsync_connectors.jira import JiraConfig, JiraConnector
from okrsync_connectors.jira.normalise import Normaliser

from okrsync.demo import ENV, sandbox_env
from okrsync.errors import AuthError, ConfigError, CursorRejected, PagingLoop
from okrsync.http import Http
from okrsync.models import DEFAULT_DROPPED_NAMES, ItemKind, Page, StatusCategory, WorkItem
from okrsync.sandbox import Sandbox
from okrsync.sandbox._core import decode_token
from tests.vendor import VENDOR_API

CLOUD_SEARCH = "/rest/api/3/search/jql"
CLOUD_COUNT = "/rest/api/3/search/approximate-count"
SERVER_SEARCH = "/rest/api/2/search"
SEARCHES = (CLOUD_SEARCH, SERVER_SEARCH)
SEED = 1
SIZES = {"jira": 40, "jira_dc": 30}
T0 = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
DAY = timedelta(days=1)
BASE_FIELDS = (
    "summary,status,resolution,resolutiondate,issuetype,project,parent,labels,assignee,"
    "duedate,created,updated,fixVersions"
)


@dataclass
class Jira:
    """One sandbox tracker seen by one connector: what it sent, slept, and hooks per search."""

    sb: Sandbox
    tracker: str
    scope: str
    other: str
    ids: list[str]
    other_ids: list[str]
    requests: list[httpx.Request] = field(default_factory=list)
    events: list[tuple[str, Any]] = field(default_factory=list)
    after: dict[int, Callable[[], object]] = field(default_factory=dict)

    @property
    def cloud(self) -> bool:
        return self.tracker == "jira"

    @property
    def base(self) -> str:
        return self.sb.base_url(self.tracker)

    def path(self, request: httpx.Request) -> str:
        """The request's path after the sandbox's tracker prefix (as on a real site)."""
        return request.url.path.removeprefix(urlsplit(self.base).path)

    def paths(self) -> list[str]:
        return [self.path(r) for r in self.requests]

    @property
    def searches(self) -> list[httpx.Request]:
        return [r for r in self.requests if self.path(r) in SEARCHES]

    @property
    def counts(self) -> list[httpx.Request]:
        return [r for r in self.requests if self.path(r) == CLOUD_COUNT]

    def key(self, external_id: str) -> str:
        return self.sb.truth(self.tracker)[external_id].key

    def keys(self, ids: list[str] | None = None) -> list[str]:
        return [self.key(i) for i in (self.ids if ids is None else ids)]

    def pin(self, external_id: str, when: datetime) -> None:
        self.sb.set_updated(self.tracker, [external_id], when)


def jira(cloud: bool = True, n: int | None = 5, other: int = 0) -> Jira:
    """A sandbox whose first project holds `n` plain issues (no parent, no children) updated
    at T0 + 1, 2, ... minutes in id order, and whose second project holds `other` such issues
    at T0 - 1 day + 1, 2, ... minutes; n=None keeps the generated projects as they are."""
    tracker = "jira" if cloud else "jira_dc"
    sb = Sandbox(seed=SEED, sizes=SIZES)
    scope, second = sb.scopes(tracker)[:2]
    if n is None:
        return Jira(sb, tracker, scope, second, [], [])
    ids = _keep(sb, tracker, scope, n, T0)
    return Jira(sb, tracker, scope, second, ids, _keep(sb, tracker, second, other, T0 - DAY))


def _keep(sb: Sandbox, tracker: str, scope: str, n: int, start: datetime) -> list[str]:
    recs = sorted(
        (r for r in sb.world.state(tracker).recs.values() if r.scope == scope and not r.deleted),
        key=lambda r: r.id,
    )
    plain = [r.ext_id for r in recs if r.kind == "issue" and r.issuetype != "Sub-task"][:n]
    assert len(plain) == n, f"seed {SEED} has too few plain issues in {scope}"
    for rec in recs:
        if rec.ext_id not in plain:
            sb.delete(tracker, rec.ext_id)
    for number, external_id in enumerate(plain, start=1):
        sb.update(tracker, external_id, parent_key=None)
        sb.set_updated(tracker, [external_id], start + number * timedelta(minutes=1))
    return plain


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox's (fake) credentials in the environment variables the configs name."""
    for name, value in sandbox_env(Sandbox(sizes={})).items():
        monkeypatch.setenv(name, value)


def cfg(j: Jira, **kw: Any) -> JiraConfig:
    base: dict[str, Any] = {
        "name": "jira-t",
        "type": "jira",
        "base_url": j.base,
        "scope": [j.scope],
        "flavor": "cloud" if j.cloud else "server",
        "email_env": ENV["jira_email"] if j.cloud else None,
        "token_env": ENV["jira_token"] if j.cloud else ENV["jira_dc_token"],
    }
    return JiraConfig(**{**base, **kw})


def run(
    j: Jira,
    config: JiraConfig,
    cursor: dict[str, Any] | None = None,
    pages: list[Page] | None = None,
) -> list[Page]:
    """One pull to the end; pages yielded before an error land in `pages`. Every request is
    logged in `j.requests` and `j.events`; `j.after[n]` runs once the n-th search logged in
    `j.requests` has been answered (before the connector reads it)."""
    out: list[Page] = [] if pages is None else pages

    async def sleep(seconds: float) -> None:
        j.events.append(("sleep", seconds))

    async def sent(request: httpx.Request) -> None:
        j.requests.append(request)
        j.events.append(("request", j.path(request)))

    async def answered(response: httpx.Response) -> None:
        if j.path(response.request) in SEARCHES:
            j.after.pop(len(j.searches), lambda: None)()

    async def go() -> None:
        hooks: dict[str, list[Callable[..., Any]]] = {"request": [sent], "response": [answered]}
        async with httpx.AsyncClient(transport=j.sb.transport(), event_hooks=hooks) as client:
            connector = JiraConnector(config, Http(client, connector="t", sleep=sleep))
            async for page in connector.pull(cursor):
                out.append(page)

    asyncio.run(go())
    return out


def items(pages: list[Page]) -> list[str]:
    return [i.key for p in pages for i in p.items]


def offset(token: str | None) -> int | None:
    """The offset a sandbox page token stands for (None: no token sent)."""
    if token is None:
        return None
    data = decode_token(token)
    assert data is not None, token
    return int(data["o"])


# -- paging -----------------------------------------------------------------------------------


def test_cloud_token_paging_reaches_the_end(env: None) -> None:
    """Cloud follows nextPageToken until isLast and sends basic e-mail:token auth."""
    j = jira()
    pages = run(j, cfg(j, page_size=2))
    assert items(pages) == j.keys()
    assert [offset(r.url.params.get("nextPageToken")) for r in j.searches] == [None, 2, 4]
    assert all(j.path(r) == CLOUD_SEARCH for r in j.searches)
    assert j.searches[0].headers["authorization"].startswith("Basic ")


def test_cloud_short_page_with_is_last_false_keeps_paging(env: None) -> None:
    """A page shorter than maxResults is not the end: only isLast=true stops."""
    j = jira(n=3)
    j.sb.settings.jira_page_cap = 1
    pages = run(j, cfg(j, page_size=100))
    assert items(pages) == j.keys()
    assert len(j.searches) == 3


def test_server_pages_by_start_at_until_total(env: None) -> None:
    """DC pages with startAt/maxResults until total, with a Bearer PAT on /rest/api/2/search."""
    j = jira(cloud=False)
    pages = run(j, cfg(j, page_size=2))
    assert items(pages) == j.keys()
    assert [r.url.params["startAt"] for r in j.searches] == ["0", "2", "4"]
    assert all(j.path(r) == SERVER_SEARCH for r in j.searches)
    token = j.sb.credentials["jira_dc_token"]
    assert j.searches[0].headers["authorization"] == f"Bearer {token}"


def test_server_default_page_size_is_1000_and_cloud_100(env: None) -> None:
    """Without page_size, maxResults is 1000 on DC and 100 on Cloud."""
    dc, cloud = jira(cloud=False, n=0), jira(n=0)
    run(dc, cfg(dc))
    run(cloud, cfg(cloud))
    assert dc.searches[0].url.params["maxResults"] == "1000"
    assert cloud.searches[0].url.params["maxResults"] == "100"


@pytest.mark.parametrize(("cloud", "path"), [(True, CLOUD_SEARCH), (False, SERVER_SEARCH)])
def test_auto_flavor_is_detected_once_and_cached(env: None, cloud: bool, path: str) -> None:
    """flavor=auto asks serverInfo once; the answer is cached in the cursor."""
    j = jira(cloud=cloud, n=1)
    pages = run(j, cfg(j, flavor="auto"))
    assert j.path(j.requests[0]) == "/rest/api/2/serverInfo"
    assert j.path(j.searches[0]) == path
    assert pages[-1].cursor["flavor"] == ("cloud" if cloud else "server")
    j.requests.clear()
    run(j, cfg(j, flavor="auto"), pages[-1].cursor)
    assert j.paths() == [path]


# -- the JQL and the boundary -----------------------------------------------------------------


def test_jql_uses_epoch_ms_floored_minute_minus_lookback(env: None) -> None:
    """The next window is epoch ms of the high-water mark floored to the minute, minus lookback."""
    j = jira(n=1)
    j.pin(j.ids[0], datetime(2026, 11, 25, 18, 7, 31, 250_000, tzinfo=UTC))
    first = run(j, cfg(j, lookback_minutes=5))
    assert j.searches[0].url.params["jql"] == (
        f'project = "{j.scope}" ORDER BY updated ASC, key ASC'
    )
    run(j, cfg(j, lookback_minutes=5), first[-1].cursor)
    expected = int(datetime(2026, 11, 25, 18, 2, tzinfo=UTC).timestamp() * 1000)
    params = j.searches[1].url.params
    assert params["jql"] == (
        f'project = "{j.scope}" AND updated >= {expected} ORDER BY updated ASC, key ASC'
    )
    assert params["fields"] == f"{BASE_FIELDS},customfield_10016"


def test_equal_timestamps_across_page_boundary(env: None) -> None:
    """Ties at the boundary are neither lost nor repeated, and paging ends."""
    j = jira(n=3, other=1)
    same = T0 + timedelta(seconds=7)
    j.sb.set_updated(j.tracker, j.ids, same)
    first = run(j, cfg(j, page_size=2))
    assert items(first) == j.keys()
    second = run(j, cfg(j, page_size=2), first[-1].cursor)
    assert items(second) == []
    (arrival,) = j.other_ids  # a fourth issue joins the project, updated at the same instant
    j.sb.move(j.tracker, arrival, j.scope)
    j.pin(arrival, same)
    third = run(j, cfg(j, page_size=2), second[-1].cursor)
    assert items(third) == [j.key(arrival)]
    assert j.key(arrival).startswith(f"{j.scope}-")
    assert len(j.searches) == 2 + 2 + 2


def test_changed_item_at_boundary_is_yielded_again(env: None) -> None:
    """An item re-updated inside the lookback window comes back; an unchanged one does not."""
    j = jira(n=2)
    first = run(j, cfg(j))
    j.pin(j.ids[0], T0 + timedelta(minutes=2, seconds=30))
    second = run(j, cfg(j), first[-1].cursor)
    assert items(second) == [j.key(j.ids[0])]


def test_item_updated_during_run_keeps_starting_window(env: None) -> None:
    """An item updated at/after the run's start (Date header) holds the window for next run."""
    j = jira(n=2)
    first = run(j, cfg(j))
    start_window = first[-1].cursor["scopes"][j.scope]["since"]
    j.pin(j.ids[1], datetime.now(UTC) + timedelta(seconds=2))
    second = run(j, cfg(j), first[-1].cursor)
    assert items(second) == [j.key(j.ids[1])]
    assert second[-1].cursor["scopes"][j.scope]["since"] == start_window
    j.sb.settings.clock_skew_s = 3600  # the server's clock is now an hour on
    third = run(j, cfg(j), second[-1].cursor)
    assert items(third) == []
    assert third[-1].cursor["scopes"][j.scope]["since"] > start_window


def test_cloud_rows_leaving_while_paging_keep_the_window(env: None) -> None:
    """A deletion after page 1 shifts Cloud's token offsets; the counts around the pages
    differ, so the next run reads the whole listing again and finds the hidden issue."""
    j = jira()
    j.after[1] = lambda: j.sb.delete(j.tracker, j.ids[0])  # gone once page 1 (1, 2) is served
    first = run(j, cfg(j, page_size=2))
    assert items(first) == j.keys([j.ids[n] for n in (0, 1, 3, 4)])
    assert [json.loads(r.content)["jql"] for r in j.counts] == [
        f'project = "{j.scope}" ORDER BY updated ASC, key ASC'
    ] * 2
    st = first[-1].cursor["scopes"][j.scope]
    assert st["since"] is None  # held: the next run lists everything again
    assert st["census_pending"]  # and this listing is no census
    assert all(not p.census for p in first)
    second = run(j, cfg(j, page_size=2), first[-1].cursor)
    assert j.key(j.ids[2]) in items(second)
    assert second[-1].census == {j.scope: sorted(j.ids[1:])}


def test_cloud_counts_only_listings_that_span_pages(env: None) -> None:
    """An incremental run that fits one page sends no count; a full listing counts first."""
    j = jira(n=3)
    first = run(j, cfg(j))
    assert j.paths()[-2:] == [CLOUD_COUNT, CLOUD_SEARCH]
    assert len(j.counts) == 1  # one page: nothing could shift, no second count
    j.requests.clear()
    run(j, cfg(j), first[-1].cursor)
    assert j.counts == []


def test_cloud_without_approximate_count_still_syncs(env: None) -> None:
    """A site that answers 404 to the count endpoint is paged unchecked, not failed."""
    j = jira()
    j.sb.settings.jira_approximate_count = False
    pages = run(j, cfg(j, page_size=2))
    assert items(pages) == j.keys()
    assert pages[-1].census == {j.scope: sorted(j.ids)}
    counted = [e.status for e in j.sb.requests if e.path == CLOUD_COUNT]
    assert counted
    assert set(counted) == {404}


def test_user_in_utc_minus_8_is_parsed_to_utc(env: None) -> None:
    """`2026-11-25T10:00:00.000-0800` becomes 18:00 UTC (aware), and so do created/resolved."""
    j = jira(n=1)
    (issue_id,) = j.ids
    j.sb.jira_timezone = "America/Los_Angeles"
    j.sb.update(j.tracker, issue_id, status="done")
    j.pin(issue_id, datetime(2026, 11, 25, 18, 0, tzinfo=UTC))
    created = datetime.fromtimestamp(j.sb.world.rec(j.tracker, issue_id).created_ms / 1000, UTC)
    (item,) = run(j, cfg(j))[0].items
    wire = fetch_issue(j, issue_id)
    assert wire["fields"]["updated"] == "2026-11-25T10:00:00.000-0800"
    assert wire["fields"]["resolutiondate"] == "2026-11-25T10:00:00.000-0800"
    assert item.updated == datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
    assert item.updated.utcoffset() == timedelta(0)
    assert item.completed_at == datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
    assert item.created == created


def fetch_issue(j: Jira, issue_id: str) -> Any:
    """`GET /rest/api/3/issue/ID` as the sandbox's Cloud account: the issue on the wire."""
    creds = j.sb.credentials
    auth = httpx.BasicAuth(creds["jira_email"], creds["jira_token"])
    with httpx.Client(transport=j.sb.transport(), auth=auth) as client:
        return client.get(f"{j.base}/rest/api/3/issue/{issue_id}").raise_for_status().json()


# -- normalisation through the connector ------------------------------------------------------


def test_configured_dropped_statuses_replace_defaults(env: None) -> None:
    """`dropped_statuses` from config decides, case-insensitively, instead of the defaults."""
    j = jira(n=3)
    for issue_id, status in zip(j.ids, ("in_progress", "todo", "dropped"), strict=True):
        j.sb.update(j.tracker, issue_id, status=status)
    j.sb.set_updated(j.tracker, j.ids, T0)
    pages = run(j, cfg(j, dropped_statuses=["IN PROGRESS"]))
    statuses = {i.external_id: (i.status, i.status_raw) for i in pages[0].items}
    assert [statuses[i] for i in j.ids] == [
        (StatusCategory.DROPPED, "In Progress"),
        (StatusCategory.TODO, "To Do"),
        (StatusCategory.DONE, "Cancelled"),  # Won't Do / Cancelled are no longer dropped
    ]


def test_story_points_field_discovered_by_name_and_cached(env: None) -> None:
    """The estimate field id comes from /field by name (config first) and is cached."""
    j = jira(n=1)
    j.sb.update(j.tracker, j.ids[0], estimate=8.0)  # "Story point estimate"; "Story Points" empty
    j.pin(j.ids[0], T0)
    pages = run(j, cfg(j, estimate_field="story points"))
    assert pages[0].items[0].estimate is None
    assert j.path(j.requests[0]) == "/rest/api/3/field"
    assert j.searches[0].url.params["fields"].endswith(",customfield_10026")
    j.requests.clear()
    run(j, cfg(j, estimate_field="story points"), pages[-1].cursor)
    assert j.paths() == [CLOUD_SEARCH]
    default = jira(n=1)
    default.sb.update(default.tracker, default.ids[0], estimate=8.0)
    default.pin(default.ids[0], T0)
    assert run(default, cfg(default))[0].items[0].estimate == 8.0  # "Story point estimate" first
    dc = jira(cloud=False, n=1)
    dc.sb.update(dc.tracker, dc.ids[0], estimate=3.0)
    dc.pin(dc.ids[0], T0)
    assert run(dc, cfg(dc, estimate_field="STORY POINTS"))[0].items[0].estimate == 3.0


def test_server_epic_link_and_subtask_parent(env: None) -> None:
    """On DC the Epic Link custom field gives the epic; a sub-task's parent wins."""
    j = jira(cloud=False, n=None)
    pages = run(j, cfg(j))
    got = {i.key: (i.kind.value, i.parent_key) for p in pages for i in p.items}
    truth = [t for t in j.sb.truth(j.tracker).values() if t.scope == j.scope]
    assert got == {t.key: (t.kind, t.parent_key) for t in truth}
    recs = [j.sb.world.rec(j.tracker, t.external_id) for t in truth]
    subs = [r for r in recs if r.issuetype == "Sub-task"]
    linked = [r for r in recs if r.issuetype != "Sub-task" and r.parent_key]
    assert subs
    assert linked
    assert any(t.kind == "epic" for t in truth)
    assert all(got[r.key][1] == r.parent_key for r in subs)
    assert j.path(j.requests[0]) == "/rest/api/2/field"
    assert "customfield_10008" in j.searches[0].url.params["fields"].split(",")


def test_issue_missing_required_fields_is_skipped(env: None) -> None:
    """An issue without created/status is logged and skipped; its id still counts."""
    j = jira(n=2)
    j.sb.inject(j.tracker, "missing_fields", external_id=j.ids[0])
    pages = run(j, cfg(j))
    assert items(pages) == [j.key(j.ids[1])]
    assert pages[-1].census == {j.scope: sorted(j.ids)}
    assert j.sb.stats()["faults_fired"] == {"missing_fields": 1}


# -- errors -----------------------------------------------------------------------------------


def test_429_waits_retry_after_before_next_request(env: None) -> None:
    """A 429 sleeps at least Retry-After before the request is sent again."""
    j = jira(n=1)
    j.sb.inject(j.tracker, "429", retry_after=7, path_contains=CLOUD_SEARCH)
    pages = run(j, cfg(j))
    assert items(pages) == j.keys()
    events = [e for e in j.events if e != ("request", CLOUD_COUNT)]
    kinds = [e[0] for e in events]
    assert kinds == ["request", "request", "sleep", "request"]  # field, 429, wait, retry
    assert events[2][1] >= 7


def test_429_with_iso_rate_limit_reset_waits_until_reset(env: None) -> None:
    """Jira's X-RateLimit-Reset (ISO time) sets the wait when Retry-After is absent."""
    j = jira(n=1)
    j.sb.inject(j.tracker, "429", retry_after=None, reset_after=40, path_contains=CLOUD_SEARCH)
    run(j, cfg(j))
    (wait,) = [s for kind, s in j.events if kind == "sleep"]
    assert 38 <= wait <= 101  # the reset is 40 s ahead, rounded up to its whole minute


def test_5xx_is_retried(env: None) -> None:
    """A 503 is retried and the run completes."""
    j = jira(n=2)
    j.sb.inject(j.tracker, "503", path_contains=CLOUD_SEARCH)
    assert items(run(j, cfg(j))) == j.keys()
    assert [e[0] for e in j.events].count("sleep") == 1


def test_401_raises_auth_error_and_stops(env: None) -> None:
    """401 mid-run propagates as AuthError; no later page is yielded."""
    j = jira()
    j.after[1] = lambda: j.sb.revoke_token(j.tracker)
    pages: list[Page] = []
    with pytest.raises(AuthError):
        run(j, cfg(j, page_size=2), pages=pages)
    assert items(pages) == j.keys(j.ids[:2])
    assert len(j.searches) == 2


def test_expired_page_token_restarts_from_window(env: None) -> None:
    """A 400 naming the page token restarts the scope's query from its window, no loss."""
    j = jira()
    j.sb.inject(j.tracker, "expire_page_token")
    pages = run(j, cfg(j, page_size=2))
    assert sorted(set(items(pages))) == sorted(j.keys())
    tokens = [offset(r.url.params.get("nextPageToken")) for r in j.searches]
    assert tokens == [None, 2, None, 2, 4]
    assert len({r.url.params["jql"] for r in j.searches}) == 1


def test_page_token_always_expired_gives_cursor_rejected(env: None) -> None:
    """Restarts are bounded: after 3 the run fails with CursorRejected."""
    j = jira()
    j.sb.inject(j.tracker, "expire_page_token", count=99)
    with pytest.raises(CursorRejected):
        run(j, cfg(j, page_size=2))
    assert len(j.searches) == 8  # 4 attempts x (first page + refused token)


@pytest.mark.parametrize("answer", ["missing", "404", "403"])
def test_lost_project_is_reported_and_others_continue(env: None, answer: str) -> None:
    """A project that vanished gives lost_scopes (never deletions); other scopes go on."""
    j = jira(n=1, other=1)
    if answer == "missing":
        j.sb.hide_scope(j.tracker, j.other)
    else:
        j.sb.inject(j.tracker, answer, path_contains=CLOUD_SEARCH)
    pages = run(j, cfg(j, scope=[j.other, j.scope]))
    assert pages[0].lost_scopes == [j.other]
    assert (pages[0].items, pages[0].deleted, pages[0].census) == ([], [], {})
    assert items(pages) == j.keys()


# -- cursor, resume, no-change ----------------------------------------------------------------


def test_resume_after_kill_replays_at_most_one_page(env: None) -> None:
    """A run killed after page 1 resumes at page 2 with the stored token."""
    j = jira()
    first = run(j, cfg(j, page_size=2))
    j.requests.clear()
    resumed = run(j, cfg(j, page_size=2), first[0].cursor)
    assert items(resumed) == j.keys(j.ids[2:])
    assert offset(j.searches[0].url.params["nextPageToken"]) == 2
    json.dumps(resumed[-1].cursor)  # JSON-serialisable


def test_no_change_rerun_costs_one_request_per_scope(env: None) -> None:
    """With nothing changed, a second run sends exactly one search per project."""
    j = jira(n=3, other=1)
    config = cfg(j, flavor="auto", scope=[j.scope, j.other])
    first = run(j, config)
    assert len(items(first)) == 4
    j.requests.clear()
    second = run(j, config, first[-1].cursor)
    assert items(second) == []
    assert j.paths() == [CLOUD_SEARCH, CLOUD_SEARCH]
    for scope in (j.scope, j.other):
        before, after = first[-1].cursor["scopes"][scope], second[-1].cursor["scopes"][scope]
        assert (after["since"], after["seen"]) == (before["since"], before["seen"])
    third = run(j, config, second[-1].cursor)
    assert items(third) == []
    assert len(j.requests) == 4


# -- deletions and moves ----------------------------------------------------------------------


def test_first_full_run_emits_census_without_a_census_query(env: None) -> None:
    """The first run's full listing is the census (dropped items included)."""
    j = jira(n=3)
    j.sb.update(j.tracker, j.ids[2], status="dropped")
    j.pin(j.ids[2], T0 + timedelta(minutes=3))
    pages = run(j, cfg(j, page_size=2))
    assert pages[-1].items[-1].status is StatusCategory.DROPPED
    assert pages[-1].census == {j.scope: sorted(j.ids)}
    assert all(not p.census for p in pages[:-1])
    assert all("ORDER BY updated" in r.url.params["jql"] for r in j.searches)


@pytest.mark.parametrize("cloud", [True, False])
def test_periodic_census_reports_all_ids(env: None, cloud: bool) -> None:
    """Every census_every runs a key-ordered id listing yields the complete id list."""
    j = jira(cloud=cloud, n=3)
    config = cfg(j, census_every=2)
    cursor = run(j, config)[-1].cursor
    second = run(j, config, cursor)
    assert all(not p.census for p in second)
    j.sb.delete(j.tracker, j.ids[1])
    j.requests.clear()
    third = run(j, config, second[-1].cursor)
    assert third[-1].census == {j.scope: sorted([j.ids[0], j.ids[2]])}
    census = j.searches[-1].url.params
    assert census["jql"] == f'project = "{j.scope}" ORDER BY key ASC'
    assert (census["fields"], census["maxResults"]) == (
        ("updated", "5000") if cloud else ("id", "1000")
    )
    assert not third[-1].cursor["scopes"][j.scope]["census_pending"]


@pytest.mark.parametrize("cloud", [False, True])
def test_census_that_saw_rows_move_is_not_trusted(env: None, cloud: bool) -> None:
    """A deletion while a census pages shifts the offsets and would hide a live id (flagged
    deleted): DC sees its total move, Cloud counts before and after (it reports no total).
    The census is dropped and retried next run."""
    j = jira(cloud=cloud)
    j.sb.settings.jira_page_cap = 2
    config = cfg(j, census_every=1)
    cursor = run(j, config)[-1].cursor
    j.requests.clear()
    # searches 1-3 re-read the lookback window (3 pages of 2); 4 is the census' first page
    j.after[4] = lambda: j.sb.delete(j.tracker, j.ids[0])
    second = run(j, config, cursor)
    assert all(not p.census for p in second)
    assert second[-1].cursor["scopes"][j.scope]["census_pending"]
    assert "ORDER BY key" in j.searches[3].url.params["jql"]
    census_counts = [r for r in j.counts if "ORDER BY key" in json.loads(r.content)["jql"]]
    assert len(census_counts) == (2 if cloud else 0)
    third = run(j, config, second[-1].cursor)
    assert third[-1].census == {j.scope: sorted(j.ids[1:])}


def test_moved_issue_arrives_with_new_key_same_id(env: None) -> None:
    """A move keeps the issue id; the item shows up under its new key and project."""
    j = jira(n=2)
    config = cfg(j, scope=[j.scope, j.other], census_every=1)
    first = run(j, config)
    old_key = j.key(j.ids[1])
    j.sb.move(j.tracker, j.ids[1], j.other)
    j.pin(j.ids[1], T0 + timedelta(minutes=30))  # moved before this run started
    second = run(j, config, first[-1].cursor)
    (item,) = [i for p in second for i in p.items]
    assert (item.external_id, item.key, item.container) == (j.ids[1], j.key(j.ids[1]), j.other)
    assert item.key.startswith(f"{j.other}-")
    assert item.key != old_key
    censuses = {k: v for p in second for k, v in p.census.items()}
    assert censuses == {j.scope: [j.ids[0]], j.other: [j.ids[1]]}


def test_self_urls_are_never_followed(env: None) -> None:
    """Only the configured base URL is called, whatever `self` links say."""
    j = jira(n=3)
    j.sb.inject(j.tracker, "offorigin_link", count=1000, origin="https://evil.example:8443")
    run(j, cfg(j))
    assert j.sb.stats()["faults_fired"]["offorigin_link"] >= 1  # the search page's self URLs
    assert {r.url.netloc for r in j.requests} == {urlsplit(j.base).netloc.encode()}


def test_repeated_page_token_is_refused(env: None) -> None:
    """isLast=false with a token handed out before is a vendor fault, not an endless loop."""
    j = jira(n=3)
    j.sb.inject(j.tracker, "alternate_token", count=1000)
    with pytest.raises(PagingLoop):
        run(j, cfg(j))
    assert len(j.searches) <= 3


def test_cloud_without_email_is_a_config_error(env: None) -> None:
    """Cloud basic auth needs the account e-mail; the message says which key to set."""
    j = jira(n=0)
    with pytest.raises(ConfigError, match="email_env"):
        run(j, cfg(j, email_env=None))
    assert j.requests == []


# -- the pure normaliser on recorded vendor shapes --------------------------------------------

VENDOR = VENDOR_API / "jira"
BASE = "https://jira.example.com"
PST = timezone(timedelta(hours=-8))
AIRBYTE_ISSUE: dict[str, Any] = json.loads(
    (VENDOR / "recorded" / "airbyte-source-jira" / "issues.json").read_text(encoding="utf-8")
)["issues"][0]


def normalise(issue: dict[str, Any], dropped: tuple[str, ...] = DEFAULT_DROPPED_NAMES) -> WorkItem:
    """What the Cloud connector makes of `issue` (estimate from customfield_10016)."""
    return Normaliser.build("jira-t", BASE, dropped, estimate_field="customfield_10016").item(issue)


def jira_time(moment: datetime, tz: timezone = PST) -> str:
    """Jira's wire format: `2026-11-25T10:00:00.000-0800`."""
    local = moment.astimezone(tz)
    return (
        local.strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{local.microsecond // 1000:03d}"
        + (local.strftime("%z"))
    )


def recorded_issue() -> dict[str, Any]:
    """The real Airbyte issue without the connector-added top-level fields."""
    issue = copy.deepcopy(AIRBYTE_ISSUE)
    for extra in ("projectId", "projectKey", "created", "updated"):
        issue.pop(extra)
    return issue


def make_issue(
    n: int,
    updated: datetime,
    *,
    status: tuple[str, str] = ("In Progress", "indeterminate"),
    resolution: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """The recorded issue as issue `n` of TESTKEY13, with the given status and fields."""
    issue = recorded_issue()
    issue["id"], issue["key"] = str(20000 + n), f"TESTKEY13-{n}"
    f = issue["fields"]
    f["issuetype"].update(name="Story", hierarchyLevel=0)
    f["status"]["name"], f["status"]["statusCategory"]["key"] = status
    f["resolution"] = {"id": "10001", "name": resolution} if resolution else None
    f["summary"] = f"Issue {n}"
    f["created"] = jira_time(updated - timedelta(days=3))
    f["updated"] = jira_time(updated)
    f.update(fields)
    return issue


def test_recorded_issue_is_normalised() -> None:
    """The recorded Airbyte epic maps onto the WorkItem fields."""
    item = normalise(recorded_issue())
    assert (item.external_id, item.key, item.kind) == ("10627", "TESTKEY13-1", ItemKind.EPIC)
    assert (item.item_type, item.title, item.container) == ("Epic", "My Summary", "TESTKEY13")
    assert (item.status, item.status_raw) == (StatusCategory.TODO, "To Do")
    assert item.created == datetime(2022, 6, 9, 23, 29, 31, 871_000, tzinfo=UTC)
    assert item.updated == datetime(2022, 12, 8, 10, 22, 18, 889_000, tzinfo=UTC)
    assert item.url == f"{BASE}/browse/TESTKEY13-1"
    assert (item.labels, item.assignee) == (("test",), "integration test")
    assert (item.estimate, item.due, item.milestone, item.completed_at) == (None, None, None, None)
    assert item.custom == {"issuetype": "Epic", "project": "TESTKEY13", "resolution": ""}


def test_optional_fields_are_normalised() -> None:
    """Parent, first fixVersion, due date, story points and the done category are read."""
    issue = make_issue(
        2,
        T0,
        status=("Closed", "done"),
        resolution="Fixed",
        parent={"id": "10627", "key": "TESTKEY13-1"},
        fixVersions=[{"name": "v1.0"}, {"name": "v1.1"}],
        duedate="2026-12-15",
        customfield_10016=5,
    )
    issue["fields"]["resolutiondate"] = jira_time(T0)
    item = normalise(issue)
    assert (item.kind, item.parent_key, item.milestone) == (ItemKind.ISSUE, "TESTKEY13-1", "v1.0")
    assert (item.due, item.estimate) == (datetime(2026, 12, 15).date(), 5.0)  # noqa: DTZ001
    assert (item.status, item.completed_at) == (StatusCategory.DONE, T0)
    assert item.custom["resolution"] == "Fixed"


@pytest.mark.parametrize(
    ("status", "resolution"),
    [
        (("Done", "done"), "Won't Do"),
        (("Cancelled", "done"), None),
        (("Closed", "done"), "DUPLICATE"),
    ],
)
def test_dropped_resolutions_and_statuses(status: tuple[str, str], resolution: str | None) -> None:
    """Won't Do / Cancelled / Duplicate (any case) are dropped, not done."""
    item = normalise(make_issue(1, T0, status=status, resolution=resolution))
    assert item.status is StatusCategory.DROPPED
    assert item.completed_at is None
