"""The sandbox behaves like the vendors: auth, pagination, ETags, JQL time rules, faults, truth."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from okrsync.sandbox import Sandbox, TruthItem

SIZES = {"jira": 300, "jira_dc": 200, "asana": 300, "github": 300}


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    """A shared, read-only sandbox (tests that change data build their own)."""
    with Sandbox(seed=7, sizes=SIZES) as sandbox:
        sandbox.warm()
        yield sandbox


@pytest.fixture
def fresh() -> Iterator[Sandbox]:
    """A small private sandbox a test may mutate and fault."""
    with Sandbox(seed=11, sizes={"jira": 120, "jira_dc": 80, "asana": 120, "github": 120}) as s:
        yield s


def client(sb: Sandbox, tracker: str, token: str | None = None) -> httpx.Client:
    c = sb.credentials
    if tracker == "jira":
        basic = httpx.BasicAuth(c["jira_email"], token or c["jira_token"])
        return httpx.Client(base_url=sb.base_url(tracker), auth=basic, timeout=5)
    secret = token or c[f"{tracker}_token"]
    return httpx.Client(
        base_url=sb.base_url(tracker), timeout=5, headers={"Authorization": f"Bearer {secret}"}
    )


def live_ids(sb: Sandbox, tracker: str) -> set[str]:
    return {
        t.external_id
        for t in sb.truth(tracker).values()
        if not t.deleted and not t.external_id.startswith(("milestone:", "section:"))
    }


# --- walkers: what a correct connector does ----------------------------------------------


def walk_jira(sb: Sandbox, page: int = 37) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with client(sb, "jira") as c:
        for scope in sb.scopes("jira"):
            body: dict[str, Any] = {
                "jql": f"project = {scope} ORDER BY updated ASC, id ASC",
                "fields": ["*all"],
                "maxResults": page,
            }
            while True:
                data = c.post("/rest/api/3/search/jql", json=body).raise_for_status().json()
                out += data["issues"]
                if data["isLast"]:
                    break
                body["nextPageToken"] = data["nextPageToken"]
    return out


def walk_jira_dc(sb: Sandbox) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with client(sb, "jira_dc") as c:
        jql = f"project in ({', '.join(sb.scopes('jira_dc'))}) ORDER BY updated ASC"
        start = 0
        while True:
            data = c.get(
                "/rest/api/2/search", params={"jql": jql, "startAt": start, "maxResults": 50}
            ).json()
            out += data["issues"]
            start += len(data["issues"])
            if start >= data["total"]:
                return out


ASANA_FIELDS = (
    "name,resource_subtype,modified_at,completed,parent.gid,tags.name,memberships.section.name,"
    "memberships.project.gid,custom_fields.name,custom_fields.number_value"
)


def walk_asana(sb: Sandbox, limit: int = 40) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with client(sb, "asana") as c:
        for project in sb.scopes("asana"):
            params = {"limit": str(limit), "opt_fields": ASANA_FIELDS}
            while True:
                data = c.get(f"/projects/{project}/tasks", params=params).json()
                out += [t | {"_project": project} for t in data["data"]]
                if not data["next_page"]:
                    break
                params["offset"] = data["next_page"]["offset"]
    return out


def walk_github(sb: Sandbox) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with client(sb, "github") as c:
        for repo in sb.scopes("github"):
            url: str | None = (
                f"/repos/{repo}/issues?state=all&sort=updated&direction=asc&per_page=45"
            )
            while url:
                resp = c.get(url).raise_for_status()
                out += resp.json()
                url = resp.links.get("next", {}).get("url")
    return out


# --- tiny normalisers following the documented truth conventions --------------------------


def jira_status(fields: dict[str, Any]) -> str:
    if fields["status"]["name"] == "Cancelled":
        return "dropped"
    return {"new": "todo", "indeterminate": "in_progress", "done": "done"}[
        fields["status"]["statusCategory"]["key"]
    ]


def norm_jira(issue: dict[str, Any], dc: bool) -> tuple[Any, ...]:
    f = issue["fields"]
    if dc:
        parent = (f.get("parent") or {}).get("key") or f.get("customfield_10008")
    else:
        parent = (f.get("parent") or {}).get("key")
    estimate = f["customfield_10002" if dc else "customfield_10016"]
    updated = datetime.strptime(f["updated"], "%Y-%m-%dT%H:%M:%S.%f%z").astimezone(UTC)
    kind = "epic" if f["issuetype"]["name"] == "Epic" else "issue"
    return (
        issue["key"],
        f["project"]["key"],
        kind,
        f["summary"],
        jira_status(f),
        updated,
        parent,
        tuple(sorted(f["labels"])),
        estimate,
    )


def norm_asana(task: dict[str, Any]) -> tuple[Any, ...]:
    section = task["memberships"][0]["section"]["name"]
    status = {"Cancelled": "dropped", "In Progress": "in_progress"}.get(section, "todo")
    if task["completed"] and status != "dropped":
        status = "done"
    estimate = next(cf["number_value"] for cf in task["custom_fields"] if cf["name"] == "Estimate")
    updated = datetime.fromisoformat(task["modified_at"].replace("Z", "+00:00"))
    return (
        task["gid"],
        task["_project"],
        "milestone" if task.get("resource_subtype") == "milestone" else "task",
        task["name"],
        status,
        updated,
        (task["parent"] or {}).get("gid"),
        tuple(sorted(t["name"] for t in task["tags"])),
        estimate,
    )


def norm_github(issue: dict[str, Any], repo: str) -> tuple[Any, ...]:
    pr = issue.get("pull_request")
    labels = {lb["name"].lower() for lb in issue["labels"]}
    status = "in_progress" if pr or labels & {"in progress", "in-progress", "wip"} else "todo"
    if issue["state"] == "closed":
        done = pr["merged_at"] is not None if pr else issue["state_reason"] == "completed"
        status = "done" if done else "dropped"
    updated = datetime.fromisoformat(issue["updated_at"].replace("Z", "+00:00"))
    return (
        f"{repo}#{issue['number']}",
        repo,
        "pull_request" if pr else "issue",
        issue["title"],
        status,
        updated,
        None,
        tuple(sorted(lb["name"] for lb in issue["labels"])),
        None,
    )


def norm_truth(t: TruthItem) -> tuple[Any, ...]:
    return (
        t.key,
        t.scope,
        t.kind,
        t.title,
        t.status,
        t.updated,
        t.parent_key,
        t.labels,
        t.estimate,
    )


def repo_of(issue: dict[str, Any]) -> str:
    return "/".join(issue["repository_url"].split("/")[-2:])


# --- auth -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tracker", "path"),
    [
        ("jira", "/rest/api/3/myself"),
        ("jira_dc", "/rest/api/2/myself"),
        ("asana", "/users/me"),
        ("github", "/repos/acme/web"),
    ],
)
def test_auth_wrong_or_revoked_token_is_401(fresh: Sandbox, tracker: str, path: str) -> None:
    """A bad token, or a revoked one, gets 401; restoring brings back 200."""
    with client(fresh, tracker, token="nope") as bad:
        assert bad.get(path).status_code == 401
    with client(fresh, tracker) as good:
        assert good.get(path).status_code == 200
        fresh.revoke_token(tracker)
        assert good.get(path).status_code == 401
        fresh.restore_token(tracker)
        assert good.get(path).status_code == 200


# --- pagination walks the truth exactly once ----------------------------------------------


def test_jira_cloud_token_pages_cover_truth_once(sb: Sandbox) -> None:
    """nextPageToken paging over every project yields each live issue exactly once."""
    ids = [i["id"] for i in walk_jira(sb)]
    assert len(ids) == len(set(ids))
    assert set(ids) == live_ids(sb, "jira")


def test_jira_dc_startat_pages_cover_truth_once(sb: Sandbox) -> None:
    """startAt/total paging over a multi-project JQL yields each issue exactly once."""
    ids = [i["id"] for i in walk_jira_dc(sb)]
    assert len(ids) == len(set(ids))
    assert set(ids) == live_ids(sb, "jira_dc")


def test_asana_offset_pages_cover_truth_once(sb: Sandbox) -> None:
    """Offset-token paging per project yields each task exactly once, sorted by modified_at."""
    tasks = walk_asana(sb)
    ids = [t["gid"] for t in tasks]
    assert len(ids) == len(set(ids))
    assert set(ids) == live_ids(sb, "asana")


def test_github_link_pages_cover_truth_once(sb: Sandbox) -> None:
    """Following Link rel=next verbatim yields every issue and PR exactly once."""
    ids = [str(i["id"]) for i in walk_github(sb)]
    assert len(ids) == len(set(ids))
    assert set(ids) == live_ids(sb, "github")
    assert any("_sbx" in r.query and r.path.startswith("/repositories/") for r in sb.requests)


def test_normalised_vendor_json_equals_truth(sb: Sandbox) -> None:
    """Normalising the served JSON by the documented conventions reproduces the truth."""
    truths = {tr: sb.truth(tr) for tr in ("jira", "jira_dc", "asana", "github")}
    served = [("jira", i["id"], norm_jira(i, dc=False)) for i in walk_jira(sb)]
    served += [("jira_dc", i["id"], norm_jira(i, dc=True)) for i in walk_jira_dc(sb)]
    served += [("asana", t["gid"], norm_asana(t)) for t in walk_asana(sb)]
    served += [("github", str(i["id"]), norm_github(i, repo_of(i))) for i in walk_github(sb)]
    for tracker, ext_id, got in served:
        assert got == norm_truth(truths[tracker][ext_id]), (tracker, ext_id)


def test_data_set_has_ties_across_page_boundaries(sb: Sandbox) -> None:
    """Several items share an `updated` value, and every status category occurs."""
    items = [t for t in sb.truth("jira").values() if t.scope == "ALPHA"]
    items.sort(key=lambda t: (t.updated, int(t.external_id)))
    assert items[23].updated == items[24].updated == items[25].updated
    assert {t.status for t in items} == {"todo", "in_progress", "done", "dropped"}


def test_containers_are_in_truth(sb: Sandbox) -> None:
    """GitHub milestones and Asana sections appear as container truth items."""
    ms = sb.truth("github")["milestone:acme/web#1"]
    assert (ms.kind, ms.key, ms.status) == ("milestone", "acme/web#m1", "done")
    sections = [t for t in sb.truth("asana").values() if t.kind == "section"]
    assert len(sections) == 12
    assert sections[0].external_id.startswith("section:")


# --- vendor details ------------------------------------------------------------------------


def test_github_etag_gives_free_304(sb: Sandbox) -> None:
    """Repeating a request with If-None-Match gets 304 and does not use rate limit."""
    with client(sb, "github") as c:
        first = c.get("/repos/acme/api/issues", params={"state": "all", "per_page": 5})
        etag = first.headers["etag"]
        assert etag.startswith('W/"')
        again = c.get(
            "/repos/acme/api/issues",
            params={"state": "all", "per_page": 5},
            headers={"If-None-Match": etag},
        )
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["x-ratelimit-used"] == first.headers["x-ratelimit-used"]


def test_github_since_is_inclusive_at_second_granularity(sb: Sandbox) -> None:
    """`since` keeps items with updated_at >= since, fractions of a second ignored."""
    items = sorted(
        (
            t
            for t in sb.truth("github").values()
            if t.scope == "acme/infra" and t.kind != "milestone"
        ),
        key=lambda t: t.updated,
    )
    pivot = items[len(items) // 2].updated
    since = (pivot + timedelta(milliseconds=500)).isoformat()
    with client(sb, "github") as c:
        got = c.get(
            "/repos/acme/infra/issues",
            params={
                "state": "all",
                "sort": "updated",
                "direction": "asc",
                "since": since,
                "per_page": 100,
            },
        ).json()
    assert {str(i["id"]) for i in got} == {t.external_id for t in items if t.updated >= pivot}


def jql_ids(c: httpx.Client, jql: str) -> set[str]:
    body = {"jql": jql, "maxResults": 100}
    data = c.post("/rest/api/3/search/jql", json=body).raise_for_status().json()
    assert data["isLast"]
    return {i["id"] for i in data["issues"]}


def test_jira_minute_granularity_and_timezone_dates(fresh: Sandbox) -> None:
    """Date strings are read in the user's zone; both sides are floored to the minute."""
    fresh.jira_timezone = "America/Los_Angeles"
    ids = sorted(t.external_id for t in fresh.truth("jira").values() if t.scope == "ALPHA")[:2]
    at = (datetime.now(UTC) + timedelta(days=2)).replace(second=42, microsecond=0)
    fresh.set_updated("jira", ids[:1], at)
    fresh.set_updated("jira", ids[1:], at + timedelta(seconds=10))
    local = at.astimezone(ZoneInfo("America/Los_Angeles"))
    epoch = int((at + timedelta(seconds=15)).timestamp() * 1000)
    with client(fresh, "jira") as c:
        assert c.get("/rest/api/3/myself").json()["timeZone"] == "America/Los_Angeles"
        dashed = jql_ids(c, f'project = ALPHA AND updated >= "{local:%Y-%m-%d %H:%M}"')
        slashed = jql_ids(c, f"project = ALPHA AND updated > '{local:%Y/%m/%d %H:%M}'")
        floored = jql_ids(c, f"project in (ALPHA, BETA) AND updated >= {epoch}")
        strictly = jql_ids(c, f"project in (ALPHA, BETA) AND updated > {epoch}")
        utc_read = jql_ids(c, f'project = ALPHA AND updated >= "{at:%Y-%m-%d %H:%M}"')
        issue = c.get(f"/rest/api/3/issue/{ids[0]}").json()
    assert dashed == floored == set(ids)
    assert slashed == strictly == set()
    assert utc_read == set()  # the UTC wall clock read as Los Angeles time is 8 hours later
    assert issue["fields"]["updated"].endswith(("-0800", "-0700"))


def test_jira_legacy_search_is_gone_and_bad_jql_is_400(sb: Sandbox) -> None:
    """Legacy /search → 410; unparseable or unknown-project JQL → 400 errorMessages."""
    with client(sb, "jira") as c:
        assert c.get("/rest/api/3/search", params={"jql": "project = ALPHA"}).status_code == 410
        bad = c.get("/rest/api/3/search/jql", params={"jql": "project ~~ ALPHA"})
        unknown = c.get("/rest/api/3/search/jql", params={"jql": "project = NOPE"})
        ids_only = c.get(
            "/rest/api/3/search/jql", params={"jql": "project = BETA", "maxResults": 3}
        ).json()
    assert bad.status_code == 400
    assert bad.json()["errorMessages"]
    assert unknown.json()["errorMessages"] == [
        "The value 'NOPE' does not exist for the field 'project'."
    ]
    assert all(set(i) == {"id"} for i in ids_only["issues"])


def test_jira_hidden_project_is_jql_error(fresh: Sandbox) -> None:
    """Losing access to a project makes JQL naming it fail like an unknown project."""
    fresh.hide_scope("jira", "BETA")
    with client(fresh, "jira") as c:
        resp = c.get("/rest/api/3/search/jql", params={"jql": "project = BETA"})
    assert resp.status_code == 400
    assert "'BETA' does not exist" in resp.json()["errorMessages"][0]


def test_jira_fields_and_server_info(sb: Sandbox) -> None:
    """Field lists carry the story-point fields; serverInfo tells Cloud from DC."""
    with client(sb, "jira") as c, client(sb, "jira_dc") as d:
        cloud_fields = {f["name"]: f["id"] for f in c.get("/rest/api/3/field").json()}
        dc_fields = {f["name"]: f["id"] for f in d.get("/rest/api/2/field").json()}
        assert c.get("/rest/api/2/serverInfo").json()["deploymentType"] == "Cloud"
        assert d.get("/rest/api/2/serverInfo").json()["deploymentType"] == "DataCenter"
    assert cloud_fields["Story point estimate"] == "customfield_10016"
    assert cloud_fields["Story Points"] == "customfield_10026"
    assert dc_fields["Epic Link"] == "customfield_10008"
    assert dc_fields["Story Points"] == "customfield_10002"


def test_asana_limit_out_of_range_is_400(sb: Sandbox) -> None:
    """`limit` outside 1..100 is refused; the compact record is the default."""
    project = sb.scopes("asana")[0]
    with client(sb, "asana") as c:
        assert c.get(f"/projects/{project}/tasks", params={"limit": 101}).status_code == 400
        data = c.get(f"/projects/{project}/tasks", params={"limit": 1}).json()["data"]
    assert set(data[0]) == {"gid", "name", "resource_type", "resource_subtype"}


def test_asana_events_412_then_changes(fresh: Sandbox) -> None:
    """The first events call gets 412 + sync token; after a change the events list it."""
    project = fresh.scopes("asana")[0]
    with client(fresh, "asana") as c:
        first = c.get("/events", params={"resource": project})
        assert first.status_code == 412
        sync = first.json()["sync"]
        empty = c.get("/events", params={"resource": project, "sync": sync}).json()
        assert empty["data"] == []
        task = next(
            t for t in fresh.truth("asana").values() if t.scope == project and t.kind == "task"
        )
        fresh.update("asana", task.external_id, title="renamed")
        fresh.delete("asana", task.external_id)
        got = c.get("/events", params={"resource": project, "sync": empty["sync"]}).json()
    assert [(e["action"], e["resource"]["gid"]) for e in got["data"]] == [
        ("changed", task.external_id),
        ("deleted", task.external_id),
    ]


# --- faults ------------------------------------------------------------------------------


@pytest.mark.parametrize("tracker", ["jira", "jira_dc", "asana", "github"])
def test_rate_limit_fault_has_wait_headers(fresh: Sandbox, tracker: str) -> None:
    """A 429 fault carries the tracker's wait headers, then service resumes."""
    path = {
        "jira": "/rest/api/3/myself",
        "jira_dc": "/rest/api/2/myself",
        "asana": "/users/me",
        "github": "/repos/acme/web",
    }[tracker]
    fresh.inject(tracker, "429", retry_after=7)
    with client(fresh, tracker) as c:
        limited = c.get(path)
        ok = c.get(path)
    assert limited.status_code == 429
    assert ok.status_code == 200
    if tracker == "github":
        assert limited.headers["x-ratelimit-remaining"] == "0"
        assert int(limited.headers["x-ratelimit-reset"]) >= time.time() + 5
    else:
        assert limited.headers["retry-after"] == "7"


@pytest.mark.parametrize("fault", ["500", "502", "503", "expire_token"])
def test_status_faults_consume_themselves(fresh: Sandbox, fault: str) -> None:
    """Error faults hit exactly `count` requests matching path_contains."""
    fresh.inject("github", fault, count=2, path_contains="/issues")
    with client(fresh, "github") as c:
        assert c.get("/repos/acme/web").status_code == 200
        codes = [c.get("/repos/acme/web/issues").status_code for _ in range(3)]
    expected = 401 if fault == "expire_token" else int(fault)
    assert codes == [expected, expected, 200]


def test_transport_faults(fresh: Sandbox) -> None:
    """reset, truncate (long and short), invalid_json and slow each break one request."""
    cases: list[tuple[str, dict[str, Any]]] = [
        ("reset", {}),
        ("truncate", {}),
        ("truncate", {"mode": "short"}),
        ("invalid_json", {}),
    ]
    for fault, params in cases:
        fresh.inject("asana", fault, **params)
        with client(fresh, "asana") as c, pytest.raises((httpx.TransportError, ValueError)):
            c.get("/users/me").json()
    fresh.inject("asana", "slow", delay=0.2)
    with client(fresh, "asana") as c:
        began = time.monotonic()
        assert c.get("/users/me").status_code == 200
        assert time.monotonic() - began >= 0.2
        assert c.get("/users/me").json()["data"]["name"]


def test_expire_page_token_fault(fresh: Sandbox) -> None:
    """An expired nextPageToken is a 400 with Jira's message; the next one works."""
    with client(fresh, "jira") as c:
        body = {"jql": "project = ALPHA", "maxResults": 5}
        token = c.post("/rest/api/3/search/jql", json=body).json()["nextPageToken"]
        fresh.inject("jira", "expire_page_token")
        expired = c.post("/rest/api/3/search/jql", json=body | {"nextPageToken": token})
        again = c.post("/rest/api/3/search/jql", json=body | {"nextPageToken": token})
        garbage = c.post("/rest/api/3/search/jql", json=body | {"nextPageToken": "zz"})
    assert expired.status_code == 400
    assert expired.json()["errorMessages"] == [
        "The provided next page token is invalid or has expired."
    ]
    assert again.status_code == 200
    assert garbage.status_code == 400


def test_jira_page_token_ttl(fresh: Sandbox) -> None:
    """Tokens older than token_ttl_s are refused."""
    fresh.settings.token_ttl_s = -1
    with client(fresh, "jira") as c:
        body = {"jql": "project = ALPHA", "maxResults": 5}
        token = c.post("/rest/api/3/search/jql", json=body).json()["nextPageToken"]
        resp = c.post("/rest/api/3/search/jql", json=body | {"nextPageToken": token})
    assert resp.status_code == 400


def test_expire_offset_and_sync_token_faults(fresh: Sandbox) -> None:
    """Asana offsets expire with 400 and sync tokens with 412 + a fresh token."""
    project = fresh.scopes("asana")[0]
    with client(fresh, "asana") as c:
        page = c.get(f"/projects/{project}/tasks", params={"limit": 5}).json()
        fresh.inject("asana", "expire_offset")
        expired = c.get(
            f"/projects/{project}/tasks", params={"limit": 5, "offset": page["next_page"]["offset"]}
        )
        sync = c.get("/events", params={"resource": project}).json()["sync"]
        fresh.inject("asana", "expire_sync_token")
        gone = c.get("/events", params={"resource": project, "sync": sync})
    assert expired.status_code == 400
    assert expired.json()["errors"][0]["message"] == "offset: Your pagination token has expired."
    assert gone.status_code == 412
    assert gone.json()["sync"] != sync


# --- truth follows changes -----------------------------------------------------------------


def test_mutate_bumps_updated_and_shows_in_api(fresh: Sandbox) -> None:
    """Mutated items get a newer `updated`, visible through the API and the truth."""
    before = fresh.truth("jira_dc")
    changed = fresh.mutate("jira_dc", 5, rng_seed=1)
    after = fresh.truth("jira_dc")
    assert all(after[i].updated > before[i].updated for i in changed)
    issues = {i["id"]: norm_jira(i, dc=True) for i in walk_jira_dc(fresh)}
    assert all(issues[i] == norm_truth(after[i]) for i in changed)


def test_github_delete_and_transfer(fresh: Sandbox) -> None:
    """Deleted issue → 410 and absent from lists; transferred → 301 to the new repo."""
    issues = sorted(
        (t for t in fresh.truth("github").values() if t.scope == "acme/web" and t.kind == "issue"),
        key=lambda t: t.key,
    )
    gone, moved = issues[0], issues[1]
    fresh.delete("github", gone.external_id)
    fresh.move("github", moved.external_id, "acme/api")
    new = fresh.truth("github")[moved.external_id]
    with client(fresh, "github") as c:
        assert c.get(f"/repos/{gone.key.replace('#', '/issues/')}").status_code == 410
        redirect = c.get(f"/repos/{moved.key.replace('#', '/issues/')}")
        assert redirect.status_code == 301
        assert redirect.headers["location"].endswith(new.key.split("#")[1])
        assert c.get(redirect.headers["location"]).json()["id"] == int(moved.external_id)
    assert fresh.truth("github")[gone.external_id].deleted
    assert new.scope == "acme/api"
    assert new.key != moved.key
    assert {str(i["id"]) for i in walk_github(fresh)} == live_ids(fresh, "github")


def test_jira_move_and_asana_move(fresh: Sandbox) -> None:
    """A moved Jira issue keeps its id under a new key; an Asana task changes project."""
    story = next(
        t
        for t in fresh.truth("jira").values()
        if t.scope == "ALPHA" and t.kind == "issue" and not t.parent_key
    )
    fresh.move("jira", story.external_id, "GAMMA")
    moved = fresh.truth("jira")[story.external_id]
    assert moved.key.startswith("GAMMA-")
    assert moved.scope == "GAMMA"
    with client(fresh, "jira") as c:
        assert story.external_id in jql_ids(c, "project = GAMMA AND updated >= -1d")
    task = next(t for t in fresh.truth("asana").values() if t.kind == "task")
    target = next(s for s in fresh.scopes("asana") if s != task.scope)
    fresh.move("asana", task.external_id, target)
    assert fresh.truth("asana")[task.external_id].scope == target
    assert task.external_id in {t["gid"] for t in walk_asana(fresh) if t["_project"] == target}


def test_admin_endpoints(fresh: Sandbox) -> None:
    """The /_sandbox control API mutates, injects, revokes and reports."""
    admin = f"http://127.0.0.1:{fresh.port}/_sandbox"
    with httpx.Client(timeout=5) as c:
        changed = c.post(f"{admin}/mutate", json={"tracker": "github", "n": 3}).json()
        c.post(f"{admin}/inject", json={"tracker": "github", "fault": "503"})
        c.post(f"{admin}/revoke", json={"tracker": "asana"})
        truth = c.get(f"{admin}/truth", params={"tracker": "github"}).json()
        with client(fresh, "github") as g, client(fresh, "asana") as a:
            assert g.get("/repos/acme/web").status_code == 503
            assert a.get("/users/me").status_code == 401
        stats = c.get(f"{admin}/stats").json()
    assert len(changed) == 3
    assert len(truth) == len(fresh.truth("github"))
    assert json.dumps(truth)
    assert stats["requests"]["github"]["503"] == 1


def test_jira_cloud_approximate_count_follows_the_data(fresh: Sandbox) -> None:
    """`POST /search/approximate-count` counts what the same JQL lists; it needs bounded JQL."""
    url = "/rest/api/3/search/approximate-count"
    alpha = [t.external_id for t in fresh.truth("jira").values() if t.scope == "ALPHA"]
    with client(fresh, "jira") as c:
        jql = "project = ALPHA ORDER BY updated ASC, key ASC"
        assert c.post(url, json={"jql": jql}).json() == {"count": len(alpha)}
        fresh.delete("jira", alpha[0])
        assert c.post(url, json={"jql": jql}).json() == {"count": len(alpha) - 1}
        unbounded = c.post(url, json={"jql": "ORDER BY key"})
        assert unbounded.status_code == 400
        assert "Unbounded" in unbounded.json()["errorMessages"][0]
        assert c.get(url).status_code == 405
