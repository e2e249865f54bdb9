"""Sandbox GitHub beyond what okrsync uses: cursor paging, `/rate_limit`, GraphQL lookups.

What third-party GitHub clients (e.g. the Singer tap in `bench/bench_singer.py`) call before
and while listing issues, shaped like github.com (see `okrsync/sandbox/_github.py`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest

from okrsync.sandbox import Sandbox
from tests.vendor import VENDOR_API

SIZES = {"jira": 0, "jira_dc": 0, "asana": 0, "github": 400}
LIST = {"state": "all", "sort": "updated", "direction": "asc", "per_page": "30"}


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox(seed=5, sizes=SIZES) as sandbox:
        yield sandbox


def gh(sb: Sandbox, token: str | None = None) -> httpx.Client:
    secret = token or sb.credentials["github_token"]
    return httpx.Client(
        base_url=sb.base_url("github"), timeout=5, headers={"Authorization": f"token {secret}"}
    )


def live_issue_ids(sb: Sandbox, repo: str | None = None) -> set[int]:
    return {
        int(t.external_id)
        for t in sb.truth("github").values()
        if t.kind != "milestone" and not t.deleted and repo in (None, t.scope)
    }


def follow(c: httpx.Client, url: str, params: dict[str, str] | None = None) -> list[Any]:
    """Every item of a listing, following `rel="next"` verbatim; asserts cursor links."""
    out: list[Any] = []
    next_url: str | None = url
    while next_url:
        resp = c.get(next_url, params=params).raise_for_status()
        params = None
        out += resp.json()
        next_url = resp.links.get("next", {}).get("url")
        if next_url:
            assert "after=" in next_url
            assert not re.search(r"[?&]page=", next_url)
            assert set(resp.links) == {"next"}
    return out


def vendor_schema(name: str) -> dict[str, Any]:
    spec = json.loads((VENDOR_API / "github" / "openapi.json").read_text())
    return {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}


# --- cursor paging ------------------------------------------------------------------------


def test_default_links_stay_page_numbers(sb: Sandbox) -> None:
    assert sb.github_cursor_over is None
    with gh(sb) as c:
        resp = c.get("/repos/acme/web/issues", params=LIST)
    assert "page=2" in resp.links["next"]["url"]
    assert "after=" not in resp.headers["link"]


def test_cursor_links_cover_every_repo_once(sb: Sandbox) -> None:
    sb.github_cursor_over = 0
    with gh(sb) as c:
        for repo in sb.scopes("github"):
            items = follow(c, f"/repos/{repo}/issues", LIST)
            ids = [i["id"] for i in items]
            assert len(ids) == len(set(ids))
            assert set(ids) == live_issue_ids(sb, repo)
            keys = [(i["updated_at"], i["id"]) for i in items]
            assert keys == sorted(keys)


def test_cursor_links_only_above_the_threshold(sb: Sandbox) -> None:
    total = len(live_issue_ids(sb, "acme/web"))
    with gh(sb) as c:
        sb.github_cursor_over = total
        assert "page=2" in c.get("/repos/acme/web/issues", params=LIST).links["next"]["url"]
        sb.github_cursor_over = total - 1
        assert "after=" in c.get("/repos/acme/web/issues", params=LIST).links["next"]["url"]


def test_client_built_after_urls_and_other_orders(sb: Sandbox) -> None:
    """A client that keeps its own URL and copies only `after` (as the Singer tap does) gets
    the same items, in any sort order and with `since`."""
    sb.github_cursor_over = 0
    with gh(sb) as c:
        for order in (
            {"sort": "updated", "direction": "asc", "since": "2000-01-01T00:00:00+00:00"},
            {"sort": "created", "direction": "desc"},
            {"sort": "updated", "direction": "desc", "state": "closed"},
        ):
            params = {"per_page": "25", "state": "all", **order}
            got: list[dict[str, Any]] = []
            while True:
                resp = c.get("/repos/acme/api/issues", params=params).raise_for_status()
                got += resp.json()
                if "next" not in resp.links:
                    break
                query = httpx.URL(resp.links["next"]["url"]).params
                params["after"] = query["after"]
            start = {k: v for k, v in params.items() if k != "after"}
            expected = {i["id"] for i in follow(c, "/repos/acme/api/issues", start)}
            ids = [i["id"] for i in got]
            assert len(ids) == len(set(ids)) == len(expected)
            if params["state"] == "all":
                assert set(ids) == live_issue_ids(sb, "acme/api")
            field = "created_at" if order["sort"] == "created" else "updated_at"
            stamps = [i[field] for i in got]
            assert stamps == sorted(stamps, reverse=order["direction"] == "desc")


def test_cursor_survives_a_deletion_on_a_read_page(sb: Sandbox) -> None:
    """Keyset paging: deleting an item already read does not hide the next one (the offset
    pages' known gap)."""
    sb.github_cursor_over = 0
    with gh(sb) as c:
        first = c.get("/repos/acme/web/issues", params=LIST).raise_for_status()
        sb.delete("github", str(first.json()[3]["id"]))
        rest = follow(c, first.links["next"]["url"])
    ids = {i["id"] for i in first.json()} | {i["id"] for i in rest}
    assert live_issue_ids(sb, "acme/web") <= ids


def test_bad_cursor_is_422(sb: Sandbox) -> None:
    with gh(sb) as c:
        for bad in ("nope", "Y3Vyc29yOnYyOlsxXQ", "Y3Vyc29yOnYxOlsxLDJd"):
            resp = c.get("/repos/acme/web/issues", params={**LIST, "after": bad})
            assert resp.status_code == 422, bad
            assert resp.json()["message"] == "Validation Failed"


def test_issues_carry_a_null_type(sb: Sandbox) -> None:
    with gh(sb) as c:
        items = c.get("/repos/acme/web/issues", params=LIST).json()
    assert items
    assert all("type" in i and i["type"] is None for i in items)


# --- /rate_limit and GraphQL ------------------------------------------------------------


def test_rate_limit_is_free_and_vendor_shaped(sb: Sandbox) -> None:
    with gh(sb) as c:
        c.get("/repos/acme/web/issues", params=LIST).raise_for_status()
        one = c.get("/rate_limit").raise_for_status()
        two = c.get("/rate_limit").raise_for_status()
        assert c.get("/rate_limit", headers={"Authorization": "token wrong"}).status_code == 401
    jsonschema.validate(one.json(), vendor_schema("rate-limit-overview"))
    assert one.json() == two.json()
    core = one.json()["resources"]["core"]
    assert core == one.json()["rate"]
    assert core["used"] == 1
    assert core["remaining"] == core["limit"] - 1
    assert one.headers["x-ratelimit-used"] == "1"


def test_graphql_repository_lookup(sb: Sandbox) -> None:
    """The aliased `repository` lookup tap-github sends, unknown repos as NOT_FOUND."""
    query = (
        'query { repo0: repository(name: "WEB", owner: "acme") { nameWithOwner databaseId } '
        'repo1: repository(name: "gone", owner: "acme") { nameWithOwner databaseId } '
        "rateLimit { cost remaining } }"
    )
    with gh(sb) as c:
        resp = c.post("/graphql", json={"query": query}).raise_for_status()
        by_var = c.post(
            "/graphql",
            json={
                "query": "query Q($o: String!, $n: String!) { repository(owner: $o, name: $n) "
                "{ id name owner { login } } }",
                "variables": {"o": "acme", "n": "api"},
            },
        ).json()
        rest = c.get("/repos/acme/web").json()
    body = resp.json()
    assert body["data"]["repo0"] == {"nameWithOwner": "acme/web", "databaseId": rest["id"]}
    assert body["data"]["repo1"] is None
    assert body["errors"][0]["type"] == "NOT_FOUND"
    assert body["errors"][0]["path"] == ["repo1"]
    assert body["data"]["rateLimit"] == {"cost": 1, "remaining": 4999}
    assert resp.headers["x-ratelimit-resource"] == "graphql"
    assert by_var["data"]["repository"]["owner"] == {"login": "acme"}
    assert by_var["data"]["repository"]["name"] == "api"


def test_graphql_errors(sb: Sandbox) -> None:
    with gh(sb) as c:
        unknown = c.post("/graphql", json={"query": "{ viewer { login } }"}).json()
        bad_field = c.post(
            "/graphql", json={"query": '{ repository(owner: "acme", name: "web") { stars } }'}
        ).json()
        broken = c.post("/graphql", json={"query": "{ repository("}).json()
        no_query = c.post("/graphql", json={}).json()
        assert c.post("/graphql", json={}, headers={"Authorization": "token x"}).status_code == 401
    assert "data" not in unknown
    assert unknown["errors"][0]["message"] == "Field 'viewer' doesn't exist on type 'Query'"
    assert bad_field["errors"][0]["message"] == "Field 'stars' doesn't exist on type 'Repository'"
    assert "Parse error" in broken["errors"][0]["message"]
    assert "query attribute" in no_query["errors"][0]["message"]


# --- admin --------------------------------------------------------------------------------


def test_admin_paging_and_request_log(sb: Sandbox) -> None:
    admin = f"http://127.0.0.1:{sb.port}/_sandbox"
    with httpx.Client(timeout=5) as a, gh(sb) as c:
        assert a.post(f"{admin}/github_paging", json={"cursor_over": 0}).json() == {"ok": True}
        assert sb.github_cursor_over == 0
        c.get("/repos/acme/web/issues", params=LIST)
        c.post("/graphql", json={"query": "{ rateLimit { cost } }"})
        # The server logs a request just after answering it: give the last one a moment.
        deadline = time.monotonic() + 5
        while True:
            log = a.get(f"{admin}/requests", params={"tracker": "github"}).json()
            if len(log) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        assert [(e["method"], e["path"], e["status"]) for e in log] == [
            ("GET", "/repos/acme/web/issues", 200),
            ("POST", "/graphql", 200),
        ]
        assert log[0]["query"] == LIST
        a.post(f"{admin}/clear_requests")
        assert a.get(f"{admin}/requests").json() == []
        a.post(f"{admin}/github_paging", json={"cursor_over": None})
    assert sb.github_cursor_over is None
