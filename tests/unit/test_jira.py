"""JiraConnector against a fake Jira (Cloud and Server/DC) built from the vendor payloads.

The fake serves `/rest/api/3/search/jql` (token paging, `isLast`) and `/rest/api/2/search`
(`startAt`/`total`) from an in-memory list of issues cloned from the recorded Airbyte issue,
wrapped in the spec's example envelopes, and evaluates the JQL the connector sends.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import respx
from okrsync_connectors.jira import JiraConfig, JiraConnector

from okrsync.config import ConnectorConfig
from okrsync.errors import AuthError, ConfigError, CursorRejected, PayloadError
from okrsync.http import Http
from okrsync.models import ItemKind, Page, StatusCategory
from tests.vendor import VENDOR_API

VENDOR = VENDOR_API / "jira"
BASE = "https://jira.example.com"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PST = timezone(timedelta(hours=-8))
JQL = re.compile(
    r'^project = "(?P<project>[^"]+)"(?: AND updated >= (?P<since>\d+))? ORDER BY (?P<order>.+)$'
)
CLOUD_SEARCH = "/rest/api/3/search/jql"
CLOUD_COUNT = "/rest/api/3/search/approximate-count"
SERVER_SEARCH = "/rest/api/2/search"


def load(name: str) -> Any:
    path = VENDOR / "examples" / name if "/" not in name else VENDOR / name
    return json.loads(path.read_text(encoding="utf-8"))


AIRBYTE_ISSUE: dict[str, Any] = load("recorded/airbyte-source-jira/issues.json")["issues"][0]


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
    project: str = "TESTKEY13",
    issuetype: str = "Story",
    status: tuple[str, str] = ("In Progress", "indeterminate"),
    resolution: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    issue = recorded_issue()
    issue["id"], issue["key"] = str(20000 + n), f"{project}-{n}"
    f = issue["fields"]
    f["project"]["key"] = project
    f["issuetype"].update(name=issuetype, hierarchyLevel=1 if issuetype == "Epic" else 0)
    f["status"]["name"], f["status"]["statusCategory"]["key"] = status
    f["resolution"] = {"id": "10001", "name": resolution} if resolution else None
    f["summary"] = f"Issue {n}"
    f["created"] = jira_time(updated - timedelta(days=3))
    f["updated"] = jira_time(updated)
    f.update(fields)
    return issue


def fields_payload(*extra: tuple[str, str]) -> list[dict[str, Any]]:
    """`get-fields.json` plus custom fields shaped like its entries."""
    fields: list[dict[str, Any]] = load("get-fields.json")
    for field_id, name in extra:
        entry = copy.deepcopy(fields[1])
        entry.update(id=field_id, key=field_id, name=name, custom=True, clauseNames=[name])
        entry["schema"] = {"type": "number", "customId": int(field_id.split("_")[1])}
        fields.append(entry)
    return fields


def updated_ms(issue: dict[str, Any]) -> int:
    return int(datetime.fromisoformat(issue["fields"]["updated"]).timestamp() * 1000)


def key_order(issue: dict[str, Any]) -> tuple[str, int]:
    project, number = issue["key"].rsplit("-", 1)
    return project, int(number)


class FakeJira:
    """Serves search, field and serverInfo like Jira, from `issues`; records every request."""

    def __init__(
        self,
        issues: list[dict[str, Any]] | None = None,
        *,
        cloud: bool = True,
        cap: int | None = None,
        fields: list[dict[str, Any]] | None = None,
    ) -> None:
        self.issues = {i["id"]: i for i in issues or []}
        self.cloud = cloud
        self.cap = cap
        self.fields = (
            fields
            if fields is not None
            else fields_payload(("customfield_10016", "Story point estimate"))
        )
        self.now = NOW
        self.lost: set[str] = set()
        self.script: dict[int, httpx.Response] = {}
        self.expire_tokens = 0
        self.events: list[tuple[str, Any]] = []
        self.after: dict[int, Callable[[], object]] = {}
        self.requests: list[httpx.Request] = []

    def add(self, *issues: dict[str, Any]) -> None:
        self.issues.update({i["id"]: i for i in issues})

    @property
    def searches(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path in (CLOUD_SEARCH, SERVER_SEARCH)]

    def install(self, router: respx.MockRouter) -> None:
        for path in (CLOUD_SEARCH, SERVER_SEARCH):
            router.route(method="GET", path=path).mock(side_effect=self._search)
        for path in ("/rest/api/3/field", "/rest/api/2/field"):
            router.route(method="GET", path=path).mock(side_effect=self._fields)
        router.route(method="GET", path="/rest/api/2/serverInfo").mock(side_effect=self._info)
        if self.cloud:
            router.route(method="POST", path=CLOUD_COUNT).mock(side_effect=self._count)

    @property
    def counts(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == CLOUD_COUNT]

    def _count(self, request: httpx.Request) -> httpx.Response:
        self._seen(request)
        m = JQL.match(json.loads(request.content)["jql"])
        assert m, request.content
        return httpx.Response(200, json={"count": len(self._rows(m["project"], m["since"], ""))})

    def _seen(self, request: httpx.Request) -> None:
        self.requests.append(request)
        self.events.append(("request", request.url.path))

    def _fields(self, request: httpx.Request) -> httpx.Response:
        self._seen(request)
        return httpx.Response(200, json=self.fields)

    def _info(self, request: httpx.Request) -> httpx.Response:
        self._seen(request)
        kind = "Cloud" if self.cloud else "DataCenter"
        return httpx.Response(200, json={"baseUrl": BASE, "deploymentType": kind})

    def _search(self, request: httpx.Request) -> httpx.Response:
        self._seen(request)
        if len(self.searches) in self.script:
            return self.script.pop(len(self.searches))
        if (request.url.path == CLOUD_SEARCH) != self.cloud:
            return httpx.Response(410 if self.cloud else 404, json={"errorMessages": ["gone"]})
        params = request.url.params
        m = JQL.match(params["jql"])
        assert m, params["jql"]
        if m["project"] in self.lost:
            msg = f"The value '{m['project']}' does not exist for the field 'project'."
            return httpx.Response(400, json={"errorMessages": [msg], "errors": {}})
        token = params.get("nextPageToken")
        if token and self.expire_tokens:
            self.expire_tokens -= 1
            msg = "The provided next page token is invalid or expired."
            return httpx.Response(400, json={"errorMessages": [msg], "errors": {}})
        rows = self._rows(m["project"], m["since"], m["order"])
        start = int(token[1:]) if token else int(params.get("startAt", 0))
        size = min(int(params["maxResults"]), self.cap or 10**6)
        chunk = [self._shape(i, params.get("fields")) for i in rows[start : start + size]]
        body = self._envelope(chunk, start, size, len(rows))
        self.after.pop(len(self.searches), lambda: None)()
        return httpx.Response(200, json=body, headers={"Date": format_datetime(self.now, True)})

    def _rows(self, project: str, since: str | None, order: str) -> list[dict[str, Any]]:
        rows = [i for i in self.issues.values() if i["fields"]["project"]["key"] == project]
        if since is not None:  # JQL compares at minute granularity
            floor = int(since) // 60_000 * 60_000
            rows = [i for i in rows if updated_ms(i) // 60_000 * 60_000 >= floor]
        if order.startswith("updated"):
            return sorted(rows, key=lambda i: (updated_ms(i), key_order(i)))
        return sorted(rows, key=key_order)

    def _shape(self, issue: dict[str, Any], fields: str | None) -> dict[str, Any]:
        if not fields:  # Cloud without `fields`: ids only
            return {"id": issue["id"]}
        wanted = fields.split(",")
        return {
            **{k: issue[k] for k in ("expand", "id", "key", "self")},
            "fields": {k: v for k, v in issue["fields"].items() if k in wanted},
        }

    def _envelope(self, chunk: list[Any], start: int, size: int, total: int) -> dict[str, Any]:
        if self.cloud:
            body: dict[str, Any] = load("search-jql-get.json")
            body.update(issues=chunk, isLast=start + size >= total)
            if not body["isLast"]:
                body["nextPageToken"] = f"t{start + size}"
            return body
        body = load("search-legacy-get.json")
        body.pop("warningMessages")
        body.update(issues=chunk, startAt=start, maxResults=size, total=total)
        return body


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIRA_EMAIL", "mia@example.com")
    monkeypatch.setenv("JIRA_TOKEN", "tok-secret-123")


def cfg(**kw: Any) -> JiraConfig:
    base: dict[str, Any] = {
        "name": "jira-t",
        "type": "jira",
        "base_url": BASE,
        "scope": ["TESTKEY13"],
        "flavor": "cloud",
        "email_env": "JIRA_EMAIL",
        "token_env": "JIRA_TOKEN",
    }
    if kw.get("flavor") == "server":
        base["email_env"] = None
    return JiraConfig(**{**base, **kw})


def run(
    config: ConnectorConfig,
    fake: FakeJira,
    cursor: dict[str, Any] | None = None,
    pages: list[Page] | None = None,
) -> list[Page]:
    """One pull to the end; pages yielded before an error land in `pages`."""
    out: list[Page] = [] if pages is None else pages

    async def sleep(seconds: float) -> None:
        fake.events.append(("sleep", seconds))

    async def go() -> None:
        with respx.mock(base_url=BASE, assert_all_called=False) as router:
            fake.install(router)
            async with httpx.AsyncClient() as client:
                connector = JiraConnector(config, Http(client, connector="t", sleep=sleep))
                async for page in connector.pull(cursor):
                    out.append(page)

    asyncio.run(go())
    return out


def items(pages: list[Page]) -> list[str]:
    return [i.key for p in pages for i in p.items]


def issues_at(count: int, start: datetime, step: timedelta = timedelta(minutes=1)) -> list[Any]:
    return [make_issue(n, start + n * step) for n in range(1, count + 1)]


T0 = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)


# -- paging -----------------------------------------------------------------------------------


def test_cloud_token_paging_reaches_the_end(env: None) -> None:
    """Cloud follows nextPageToken until isLast and sends basic e-mail:token auth."""
    fake = FakeJira(issues_at(5, T0))
    pages = run(cfg(page_size=2), fake)
    assert items(pages) == [f"TESTKEY13-{n}" for n in range(1, 6)]
    tokens = [r.url.params.get("nextPageToken") for r in fake.searches]
    assert tokens == [None, "t2", "t4"]
    assert all(r.url.path == CLOUD_SEARCH for r in fake.searches)
    assert fake.searches[0].headers["authorization"].startswith("Basic ")


def test_cloud_short_page_with_is_last_false_keeps_paging(env: None) -> None:
    """A page shorter than maxResults is not the end: only isLast=true stops."""
    fake = FakeJira(issues_at(3, T0), cap=1)
    pages = run(cfg(page_size=100), fake)
    assert items(pages) == ["TESTKEY13-1", "TESTKEY13-2", "TESTKEY13-3"]
    assert len(fake.searches) == 3


def test_server_pages_by_start_at_until_total(env: None) -> None:
    """DC pages with startAt/maxResults until total, with a Bearer PAT on /rest/api/2/search."""
    fake = FakeJira(issues_at(5, T0), cloud=False)
    pages = run(cfg(flavor="server", page_size=2), fake)
    assert items(pages) == [f"TESTKEY13-{n}" for n in range(1, 6)]
    assert [r.url.params["startAt"] for r in fake.searches] == ["0", "2", "4"]
    assert all(r.url.path == SERVER_SEARCH for r in fake.searches)
    assert fake.searches[0].headers["authorization"] == "Bearer tok-secret-123"


def test_server_default_page_size_is_1000_and_cloud_100(env: None) -> None:
    """Without page_size, maxResults is 1000 on DC and 100 on Cloud."""
    dc, cloud = FakeJira(cloud=False), FakeJira()
    run(cfg(flavor="server"), dc)
    run(cfg(), cloud)
    assert dc.searches[0].url.params["maxResults"] == "1000"
    assert cloud.searches[0].url.params["maxResults"] == "100"


@pytest.mark.parametrize(("cloud", "path"), [(True, CLOUD_SEARCH), (False, SERVER_SEARCH)])
def test_auto_flavor_is_detected_once_and_cached(env: None, cloud: bool, path: str) -> None:
    """flavor=auto asks serverInfo once; the answer is cached in the cursor."""
    fake = FakeJira(issues_at(1, T0), cloud=cloud)
    pages = run(cfg(flavor="auto"), fake)
    assert fake.requests[0].url.path == "/rest/api/2/serverInfo"
    assert fake.searches[0].url.path == path
    assert pages[-1].cursor["flavor"] == ("cloud" if cloud else "server")
    fake.requests.clear()
    run(cfg(flavor="auto"), fake, pages[-1].cursor)
    assert [r.url.path for r in fake.requests] == [path]


# -- the JQL and the boundary -----------------------------------------------------------------


def test_jql_uses_epoch_ms_floored_minute_minus_lookback(env: None) -> None:
    """The next window is epoch ms of the high-water mark floored to the minute, minus lookback."""
    hwm = datetime(2026, 11, 25, 18, 7, 31, 250_000, tzinfo=UTC)
    fake = FakeJira([make_issue(1, hwm)])
    first = run(cfg(lookback_minutes=5), fake)
    assert fake.searches[0].url.params["jql"] == (
        'project = "TESTKEY13" ORDER BY updated ASC, key ASC'
    )
    run(cfg(lookback_minutes=5), fake, first[-1].cursor)
    expected = int(datetime(2026, 11, 25, 18, 2, tzinfo=UTC).timestamp() * 1000)
    params = fake.searches[1].url.params
    assert params["jql"] == (
        f'project = "TESTKEY13" AND updated >= {expected} ORDER BY updated ASC, key ASC'
    )
    assert params["fields"] == (
        "summary,status,resolution,resolutiondate,issuetype,project,parent,labels,assignee,"
        "duedate,created,updated,fixVersions,customfield_10016"
    )


def test_equal_timestamps_across_page_boundary(env: None) -> None:
    """Ties at the boundary are neither lost nor repeated, and paging ends."""
    same = T0 + timedelta(seconds=7)
    fake = FakeJira([make_issue(n, same) for n in range(1, 4)])
    first = run(cfg(page_size=2), fake)
    assert items(first) == ["TESTKEY13-1", "TESTKEY13-2", "TESTKEY13-3"]
    second = run(cfg(page_size=2), fake, first[-1].cursor)
    assert items(second) == []
    fake.add(make_issue(4, same))
    third = run(cfg(page_size=2), fake, second[-1].cursor)
    assert items(third) == ["TESTKEY13-4"]
    assert len(fake.searches) == 2 + 2 + 2


def test_changed_item_at_boundary_is_yielded_again(env: None) -> None:
    """An item re-updated inside the lookback window comes back; an unchanged one does not."""
    fake = FakeJira(issues_at(2, T0))
    first = run(cfg(), fake)
    fake.add(make_issue(1, T0 + timedelta(minutes=2, seconds=30)))
    second = run(cfg(), fake, first[-1].cursor)
    assert items(second) == ["TESTKEY13-1"]


def test_item_updated_during_run_keeps_starting_window(env: None) -> None:
    """An item updated at/after the run's start (Date header) holds the window for next run."""
    fake = FakeJira(issues_at(2, T0))
    first = run(cfg(), fake)
    start_window = first[-1].cursor["scopes"]["TESTKEY13"]["since"]
    fake.add(make_issue(3, NOW + timedelta(seconds=2)))
    second = run(cfg(), fake, first[-1].cursor)
    assert items(second) == ["TESTKEY13-3"]
    assert second[-1].cursor["scopes"]["TESTKEY13"]["since"] == start_window
    fake.now = NOW + timedelta(hours=1)
    third = run(cfg(), fake, second[-1].cursor)
    assert items(third) == []
    assert third[-1].cursor["scopes"]["TESTKEY13"]["since"] > start_window


def test_cloud_rows_leaving_while_paging_keep_the_window(env: None) -> None:
    """A deletion after page 1 shifts Cloud's token offsets; the counts around the pages
    differ, so the next run reads the whole listing again and finds the hidden issue."""
    fake = FakeJira(issues_at(5, T0))
    fake.after[1] = lambda: fake.issues.pop("20001")  # gone once page 1 (1, 2) is served
    first = run(cfg(page_size=2), fake)
    assert items(first) == ["TESTKEY13-1", "TESTKEY13-2", "TESTKEY13-4", "TESTKEY13-5"]
    assert [json.loads(r.content)["jql"] for r in fake.counts] == [
        'project = "TESTKEY13" ORDER BY updated ASC, key ASC'
    ] * 2
    st = first[-1].cursor["scopes"]["TESTKEY13"]
    assert st["since"] is None  # held: the next run lists everything again
    assert st["census_pending"]  # and this listing is no census
    assert all(not p.census for p in first)
    second = run(cfg(page_size=2), fake, first[-1].cursor)
    assert "TESTKEY13-3" in items(second)
    assert second[-1].census == {"TESTKEY13": ["20002", "20003", "20004", "20005"]}


def test_cloud_counts_only_listings_that_span_pages(env: None) -> None:
    """An incremental run that fits one page sends no count; a full listing counts first."""
    fake = FakeJira(issues_at(3, T0))
    first = run(cfg(), fake)
    assert [r.url.path for r in fake.requests[-2:]] == [CLOUD_COUNT, CLOUD_SEARCH]
    assert len(fake.counts) == 1  # one page: nothing could shift, no second count
    fake.requests.clear()
    run(cfg(), fake, first[-1].cursor)
    assert fake.counts == []


def test_cloud_without_approximate_count_still_syncs(
    env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A site that answers 404 to the count endpoint is paged unchecked, not failed."""
    fake = FakeJira(issues_at(5, T0))
    monkeypatch.setattr(
        fake, "_count", lambda request: httpx.Response(404, json={"errorMessages": ["nope"]})
    )
    pages = run(cfg(page_size=2), fake)
    assert items(pages) == [f"TESTKEY13-{n}" for n in range(1, 6)]
    assert pages[-1].census == {"TESTKEY13": [f"2000{n}" for n in range(1, 6)]}


def test_user_in_utc_minus_8_is_parsed_to_utc(env: None) -> None:
    """`2026-11-25T10:00:00.000-0800` becomes 18:00 UTC (aware), and so do created/resolved."""
    issue = make_issue(1, T0, status=("Done", "done"), resolution="Done")
    issue["fields"]["updated"] = "2026-11-25T10:00:00.000-0800"
    issue["fields"]["resolutiondate"] = "2026-11-25T09:30:00.000-0800"
    fake = FakeJira([issue])
    (item,) = run(cfg(), fake)[0].items
    assert item.updated == datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
    assert item.updated.utcoffset() == timedelta(0)
    assert item.completed_at == datetime(2026, 11, 25, 17, 30, tzinfo=UTC)


# -- normalisation ----------------------------------------------------------------------------


def test_recorded_issue_is_normalised(env: None) -> None:
    """The recorded Airbyte epic maps onto the WorkItem fields."""
    fake = FakeJira([recorded_issue()])
    (item,) = run(cfg(), fake)[0].items
    assert (item.external_id, item.key, item.kind) == ("10627", "TESTKEY13-1", ItemKind.EPIC)
    assert (item.item_type, item.title, item.container) == ("Epic", "My Summary", "TESTKEY13")
    assert (item.status, item.status_raw) == (StatusCategory.TODO, "To Do")
    assert item.created == datetime(2022, 6, 9, 23, 29, 31, 871_000, tzinfo=UTC)
    assert item.updated == datetime(2022, 12, 8, 10, 22, 18, 889_000, tzinfo=UTC)
    assert item.url == f"{BASE}/browse/TESTKEY13-1"
    assert (item.labels, item.assignee) == (("test",), "integration test")
    assert (item.estimate, item.due, item.milestone, item.completed_at) == (None, None, None, None)
    assert item.custom == {"issuetype": "Epic", "project": "TESTKEY13", "resolution": ""}


def test_optional_fields_are_normalised(env: None) -> None:
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
    (item,) = run(cfg(), FakeJira([issue]))[0].items
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
def test_dropped_resolutions_and_statuses(
    env: None, status: tuple[str, str], resolution: str | None
) -> None:
    """Won't Do / Cancelled / Duplicate (any case) are dropped, not done."""
    fake = FakeJira([make_issue(1, T0, status=status, resolution=resolution)])
    (item,) = run(cfg(), fake)[0].items
    assert item.status is StatusCategory.DROPPED
    assert item.completed_at is None


def test_configured_dropped_statuses_replace_defaults(env: None) -> None:
    """`dropped_statuses` from config decides, case-insensitively."""
    fake = FakeJira([make_issue(1, T0, status=("Parked", "new")), make_issue(2, T0)])
    pages = run(cfg(dropped_statuses=["parked"]), fake)
    statuses = [i.status for i in pages[0].items]
    assert statuses == [StatusCategory.DROPPED, StatusCategory.IN_PROGRESS]


def test_story_points_field_discovered_by_name_and_cached(env: None) -> None:
    """The estimate field id comes from /field by name (config first) and is cached."""
    fields = fields_payload(
        ("customfield_10016", "Story point estimate"), ("customfield_10026", "Story Points")
    )
    issue = make_issue(1, T0, customfield_10016=3, customfield_10026=8)
    fake = FakeJira([issue], fields=fields)
    pages = run(cfg(estimate_field="story points"), fake)
    assert pages[0].items[0].estimate == 8.0
    assert fake.requests[0].url.path == "/rest/api/3/field"
    assert fake.searches[0].url.params["fields"].endswith(",customfield_10026")
    fake.requests.clear()
    run(cfg(estimate_field="story points"), fake, pages[-1].cursor)
    assert [r.url.path for r in fake.requests] == [CLOUD_SEARCH]
    default = FakeJira([issue], fields=fields)
    assert run(cfg(), default)[0].items[0].estimate == 3.0  # "Story point estimate" first


def test_server_epic_link_and_subtask_parent(env: None) -> None:
    """On DC the Epic Link custom field gives the epic; a sub-task's parent wins."""
    fields = fields_payload(
        ("customfield_10014", "Epic Link"), ("customfield_10016", "Story Points")
    )
    story = make_issue(2, T0, customfield_10014="TESTKEY13-1")
    sub = make_issue(
        3,
        T0 + timedelta(minutes=1),
        issuetype="Sub-task",
        parent={"id": "20002", "key": "TESTKEY13-2"},
        customfield_10014=None,
    )
    epic = make_issue(1, T0 - timedelta(minutes=1), issuetype="Epic")
    fake = FakeJira([epic, story, sub], cloud=False, fields=fields)
    pages = run(cfg(flavor="server"), fake)
    got = {i.key: (i.kind, i.parent_key) for i in pages[0].items}
    assert got == {
        "TESTKEY13-1": (ItemKind.EPIC, None),
        "TESTKEY13-2": (ItemKind.ISSUE, "TESTKEY13-1"),
        "TESTKEY13-3": (ItemKind.ISSUE, "TESTKEY13-2"),
    }
    assert fake.requests[0].url.path == "/rest/api/2/field"
    assert "customfield_10014" in fake.searches[0].url.params["fields"].split(",")


def test_issue_missing_required_fields_is_skipped(env: None) -> None:
    """The spec example (no created/status) is logged and skipped; its id still counts."""
    body = load("search-jql-get.json")
    fake = FakeJira()
    fake.script[1] = httpx.Response(200, json=body)
    pages = run(cfg(), fake)
    assert items(pages) == []
    assert pages[-1].census == {"TESTKEY13": ["10002"]}


# -- errors -----------------------------------------------------------------------------------


def test_429_waits_retry_after_before_next_request(env: None) -> None:
    """A 429 sleeps at least Retry-After before the request is sent again."""
    fake = FakeJira(issues_at(1, T0))
    fake.script[1] = httpx.Response(429, headers={"Retry-After": "7"})
    pages = run(cfg(), fake)
    assert items(pages) == ["TESTKEY13-1"]
    events = [e for e in fake.events if e != ("request", CLOUD_COUNT)]
    kinds = [e[0] for e in events]
    assert kinds == ["request", "request", "sleep", "request"]  # field, 429, wait, retry
    assert events[2][1] >= 7


def test_429_with_iso_rate_limit_reset_waits_until_reset(env: None) -> None:
    """Jira's X-RateLimit-Reset (ISO time) sets the wait when Retry-After is absent."""
    reset = (datetime.now(UTC) + timedelta(seconds=40)).isoformat()
    fake = FakeJira(issues_at(1, T0))
    fake.script[1] = httpx.Response(429, headers={"X-RateLimit-Reset": reset})
    run(cfg(), fake)
    (wait,) = [s for kind, s in fake.events if kind == "sleep"]
    assert wait >= 38


def test_5xx_is_retried(env: None) -> None:
    """A 503 is retried and the run completes."""
    fake = FakeJira(issues_at(2, T0))
    fake.script[1] = httpx.Response(503)
    assert items(run(cfg(), fake)) == ["TESTKEY13-1", "TESTKEY13-2"]
    assert [e[0] for e in fake.events].count("sleep") == 1


def test_401_raises_auth_error_and_stops(env: None) -> None:
    """401 mid-run propagates as AuthError; no later page is yielded."""
    fake = FakeJira(issues_at(5, T0))
    fake.script[2] = httpx.Response(401, json={"errorMessages": ["unauthorized"]})
    pages: list[Page] = []
    with pytest.raises(AuthError):
        run(cfg(page_size=2), fake, pages=pages)
    assert items(pages) == ["TESTKEY13-1", "TESTKEY13-2"]
    assert len(fake.searches) == 2


def test_expired_page_token_restarts_from_window(env: None) -> None:
    """A 400 naming the page token restarts the scope's query from its window, no loss."""
    fake = FakeJira(issues_at(5, T0))
    fake.expire_tokens = 1
    pages = run(cfg(page_size=2), fake)
    assert sorted(set(items(pages))) == [f"TESTKEY13-{n}" for n in range(1, 6)]
    tokens = [r.url.params.get("nextPageToken") for r in fake.searches]
    assert tokens == [None, "t2", None, "t2", "t4"]
    assert len({r.url.params["jql"] for r in fake.searches}) == 1


def test_page_token_always_expired_gives_cursor_rejected(env: None) -> None:
    """Restarts are bounded: after 3 the run fails with CursorRejected."""
    fake = FakeJira(issues_at(5, T0))
    fake.expire_tokens = 99
    with pytest.raises(CursorRejected):
        run(cfg(page_size=2), fake)
    assert len(fake.searches) == 8  # 4 attempts x (first page + refused token)


@pytest.mark.parametrize("answer", ["missing", 404, 403])
def test_lost_project_is_reported_and_others_continue(env: None, answer: object) -> None:
    """A project that vanished gives lost_scopes (never deletions); other scopes go on."""
    fake = FakeJira(issues_at(1, T0))
    if answer == "missing":
        fake.lost.add("GONE")
    else:
        fake.script[1] = httpx.Response(int(str(answer)), json={"errorMessages": ["no"]})
    pages = run(cfg(scope=["GONE", "TESTKEY13"]), fake)
    assert pages[0].lost_scopes == ["GONE"]
    assert (pages[0].items, pages[0].deleted, pages[0].census) == ([], [], {})
    assert items(pages) == ["TESTKEY13-1"]


# -- cursor, resume, no-change ----------------------------------------------------------------


def test_resume_after_kill_replays_at_most_one_page(env: None) -> None:
    """A run killed after page 1 resumes at page 2 with the stored token."""
    fake = FakeJira(issues_at(5, T0))
    first = run(cfg(page_size=2), fake)
    fake.requests.clear()
    resumed = run(cfg(page_size=2), fake, first[0].cursor)
    assert items(resumed) == [f"TESTKEY13-{n}" for n in range(3, 6)]
    assert fake.searches[0].url.params["nextPageToken"] == "t2"
    json.dumps(resumed[-1].cursor)  # JSON-serialisable


def test_no_change_rerun_costs_one_request_per_scope(env: None) -> None:
    """With nothing changed, a second run sends exactly one search per project."""
    fake = FakeJira([*issues_at(3, T0), make_issue(9, T0, project="OTHER")])
    config = cfg(flavor="auto", scope=["TESTKEY13", "OTHER"])
    first = run(config, fake)
    fake.requests.clear()
    second = run(config, fake, first[-1].cursor)
    assert items(second) == []
    assert [r.url.path for r in fake.requests] == [CLOUD_SEARCH, CLOUD_SEARCH]
    for scope in ("TESTKEY13", "OTHER"):
        before, after = first[-1].cursor["scopes"][scope], second[-1].cursor["scopes"][scope]
        assert (after["since"], after["seen"]) == (before["since"], before["seen"])
    third = run(config, fake, second[-1].cursor)
    assert items(third) == []
    assert len(fake.requests) == 4


# -- deletions and moves ----------------------------------------------------------------------


def test_first_full_run_emits_census_without_a_census_query(env: None) -> None:
    """The first run's full listing is the census (dropped items included)."""
    issues = [*issues_at(2, T0), make_issue(3, T0, status=("Done", "done"), resolution="Won't Do")]
    fake = FakeJira(issues)
    pages = run(cfg(page_size=2), fake)
    assert pages[-1].census == {"TESTKEY13": ["20001", "20002", "20003"]}
    assert all(not p.census for p in pages[:-1])
    assert all("ORDER BY updated" in r.url.params["jql"] for r in fake.searches)


@pytest.mark.parametrize("cloud", [True, False])
def test_periodic_census_reports_all_ids(env: None, cloud: bool) -> None:
    """Every census_every runs a key-ordered id listing yields the complete id list."""
    fake = FakeJira(issues_at(3, T0), cloud=cloud)
    config = cfg(flavor="cloud" if cloud else "server", census_every=2)
    cursor = run(config, fake)[-1].cursor
    second = run(config, fake, cursor)
    assert all(not p.census for p in second)
    del fake.issues["20002"]
    fake.requests.clear()
    third = run(config, fake, second[-1].cursor)
    assert third[-1].census == {"TESTKEY13": ["20001", "20003"]}
    census = fake.searches[-1].url.params
    assert census["jql"] == 'project = "TESTKEY13" ORDER BY key ASC'
    assert (census["fields"], census["maxResults"]) == (
        ("updated", "5000") if cloud else ("id", "1000")
    )
    assert not third[-1].cursor["scopes"]["TESTKEY13"]["census_pending"]


@pytest.mark.parametrize("cloud", [False, True])
def test_census_that_saw_rows_move_is_not_trusted(env: None, cloud: bool) -> None:
    """A deletion while a census pages shifts the offsets and would hide a live id (flagged
    deleted): DC sees its total move, Cloud counts before and after (it reports no total).
    The census is dropped and retried next run."""
    fake = FakeJira(issues_at(5, T0), cloud=cloud, cap=2)
    config = cfg(flavor="cloud" if cloud else "server", census_every=1)
    cursor = run(config, fake)[-1].cursor
    fake.requests.clear()
    # searches 1-3 re-read the lookback window (3 pages of 2); 4 is the census' first page
    fake.after[4] = lambda: fake.issues.pop("20001")
    second = run(config, fake, cursor)
    assert all(not p.census for p in second)
    assert second[-1].cursor["scopes"]["TESTKEY13"]["census_pending"]
    census_counts = [r for r in fake.counts if "ORDER BY key" in json.loads(r.content)["jql"]]
    assert len(census_counts) == (2 if cloud else 0)
    third = run(config, fake, second[-1].cursor)
    assert third[-1].census == {"TESTKEY13": ["20002", "20003", "20004", "20005"]}


def test_moved_issue_arrives_with_new_key_same_id(env: None) -> None:
    """A move keeps the issue id; the item shows up under its new key and project."""
    fake = FakeJira(issues_at(2, T0))
    config = cfg(scope=["TESTKEY13", "OTHER"], census_every=1)
    first = run(config, fake)
    moved = make_issue(2, T0 + timedelta(minutes=30), project="OTHER")
    moved["id"] = "20002"
    moved["key"] = "OTHER-7"
    fake.add(moved)
    second = run(config, fake, first[-1].cursor)
    (item,) = [i for p in second for i in p.items]
    assert (item.external_id, item.key, item.container) == ("20002", "OTHER-7", "OTHER")
    censuses = {k: v for p in second for k, v in p.census.items()}
    assert censuses == {"TESTKEY13": ["20001"], "OTHER": ["20002"]}


def test_self_urls_are_never_followed(env: None) -> None:
    """Only the configured base URL is called, whatever `self` links say."""
    fake = FakeJira([recorded_issue()])
    run(cfg(), fake)
    assert {r.url.host for r in fake.requests} == {"jira.example.com"}


def test_repeated_page_token_is_refused(env: None) -> None:
    """isLast=false with the same token again is a vendor fault, not an endless loop."""
    fake = FakeJira(issues_at(3, T0))
    page = load("search-jql-get.json") | {"isLast": False, "nextPageToken": "same"}
    fake.script.update({1: httpx.Response(200, json=page), 2: httpx.Response(200, json=page)})
    with pytest.raises(PayloadError):
        run(cfg(), fake)


def test_cloud_without_email_is_a_config_error(env: None) -> None:
    """Cloud basic auth needs the account e-mail; the message says which key to set."""
    with pytest.raises(ConfigError, match="email_env"):
        run(cfg(email_env=None), FakeJira())
