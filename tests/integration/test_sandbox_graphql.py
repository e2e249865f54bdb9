"""The sandbox's GitHub GraphQL for Projects (v2): validation, paging, cost, faults, changes.

Served in process (`Sandbox.transport()`, no socket); see `okrsync/sandbox/_graphql.py`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from okrsync.sandbox import Sandbox
from okrsync.sandbox import _graphql as gql
from okrsync.sandbox._transport import IN_PROCESS_ORIGIN

SIZES = {"jira": 0, "jira_dc": 0, "asana": 0, "github": 300, "github_project": 250}
SYNC_QUERY = gql.__doc__[gql.__doc__.index("query ProjectItems") : gql.__doc__.index("(`user(")]
ITEMS = """query($after: String, $n: Int = 100) {
  organization(login: "acme") { projectV2(number: 12) {
    updatedAt
    items(first: $n, after: $after) {
      totalCount pageInfo { hasNextPage endCursor }
      nodes { databaseId updatedAt type content { ... on Issue { databaseId updatedAt } } }
    }
  } }
}"""
STATUS = """query($id: ID!) { node(id: $id) { ... on ProjectV2Item {
  updatedAt
  status: fieldValueByName(name: "Status") {
    ... on ProjectV2ItemFieldSingleSelectValue { name } }
  iteration: fieldValueByName(name: "Iteration") {
    ... on ProjectV2ItemFieldIterationValue { title startDate } }
  content { ... on Issue { updatedAt } }
} } }"""


@pytest.fixture
def sb() -> Sandbox:
    return Sandbox(seed=5, sizes=SIZES)


def client(sb: Sandbox, token: str | None = None) -> httpx.Client:
    secret = token or sb.credentials["github_token"]
    return httpx.Client(
        transport=sb.transport(),
        base_url=sb.base_url("github"),
        headers={"Authorization": f"Bearer {secret}"},
    )


def post(sb: Sandbox, query: str, **variables: Any) -> httpx.Response:
    with client(sb) as c:
        return c.post("/graphql", json={"query": query, "variables": variables})


def all_items(sb: Sandbox) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = None
    while True:
        body = post(sb, ITEMS, after=after).json()
        items = body["data"]["organization"]["projectV2"]["items"]
        out += items["nodes"]
        if not items["pageInfo"]["hasNextPage"]:
            return out
        after = items["pageInfo"]["endCursor"]


# --- the query a sync sends ------------------------------------------------------------------


def test_sync_query_from_the_docstring_runs(sb: Sandbox) -> None:
    """The documented sync query validates and returns the board's fields and first page."""
    resp = post(sb, SYNC_QUERY, login="acme", number=12)
    body = resp.json()
    assert resp.status_code == 200
    assert "errors" not in body
    project = body["data"]["organization"]["projectV2"]
    assert project["title"] == "Payments roadmap"
    assert project["url"] == "https://github.com/orgs/acme/projects/12"
    fields = {f["name"]: f for f in project["fields"]["nodes"]}
    assert [o["name"] for o in fields["Status"]["options"]] == ["Todo", "In Progress", "Done"]
    assert {fields[n]["dataType"] for n in ("Points", "Team", "Target")} == {
        "NUMBER",
        "TEXT",
        "DATE",
    }
    items = project["items"]
    assert items["totalCount"] == 250
    assert len(items["nodes"]) == 100
    assert items["pageInfo"]["hasNextPage"] is True
    kinds = {n["content"]["__typename"] for n in items["nodes"]}
    assert kinds == {"Issue", "PullRequest", "DraftIssue"}
    values = {v["__typename"] for n in items["nodes"] for v in n["fieldValues"]["nodes"]}
    assert "ProjectV2ItemFieldIterationValue" in values
    assert body["data"]["rateLimit"]["cost"] == 3  # 1 + 1 + 3 x 100 requests, over 100


def test_iterations_current_holds_today(sb: Sandbox) -> None:
    """The iteration field has completed sprints, a current one holding today, and next ones."""
    body = post(sb, SYNC_QUERY, login="acme", number=12).json()
    fields = body["data"]["organization"]["projectV2"]["fields"]["nodes"]
    config = next(f for f in fields if f.get("name") == "Iteration")["configuration"]
    today = datetime.now(UTC).date()
    current = config["iterations"][0]
    start = date.fromisoformat(current["startDate"])
    assert current["title"] == "Sprint 14"
    assert current["duration"] == 14
    assert start <= today < start + timedelta(days=14)
    assert next(i["title"] for i in config["completedIterations"]) == "Sprint 13"
    assert all(i["startDate"] < current["startDate"] for i in config["completedIterations"])


def test_user_project_and_node_lookup(sb: Sandbox) -> None:
    """A user's project by number; an item found again by its node id; unknown owners are
    NOT_FOUND with a path."""
    query = """{ user(login: "octocat") { projectV2(number: 1) { title
        items(first: 5) { nodes { id databaseId } } } }
      nobody: organization(login: "nobody") { login } }"""
    body = post(sb, query).json()
    project = body["data"]["user"]["projectV2"]
    assert project["title"] == "Personal tasks"
    assert body["data"]["nobody"] is None
    assert body["errors"] == [
        {
            "type": "NOT_FOUND",
            "path": ["nobody"],
            "locations": [{"line": 3, "column": 7}],
            "message": "Could not resolve to an Organization with the login of 'nobody'.",
        }
    ]
    first = project["items"]["nodes"][0]
    found = post(sb, "query($id: ID!) { node(id: $id) { id } }", id=first["id"]).json()
    assert found["data"]["node"] == {"id": first["id"]}


# --- validation ------------------------------------------------------------------------------


def test_invalid_queries_get_githubs_error_shape(sb: Sandbox) -> None:
    """A field the schema lacks (here one the trimmed copy leaves out) is refused before
    execution: HTTP 200, no data, message, locations, path and extensions.code."""
    query = '{ organization(login: "acme") { projectV2(number: 12) { id readme } } }'
    resp = post(sb, query)
    assert resp.status_code == 200
    assert resp.json() == {
        "errors": [
            {
                "message": "Field 'readme' doesn't exist on type 'ProjectV2'",
                "locations": [{"line": 1, "column": 60}],
                "path": ["query", "organization", "projectV2", "readme"],
                "extensions": {
                    "code": "undefinedField",
                    "fieldName": "readme",
                    "typeName": "ProjectV2",
                },
            }
        ]
    }
    missing = post(sb, '{ organization(login: "acme") { projectV2 { id } } }').json()
    assert missing["errors"][0]["extensions"]["code"] == "missingRequiredArguments"
    broken = post(sb, "{ organization(").json()
    assert broken["errors"][0]["message"].startswith("Parse error on")
    typed = post(sb, ITEMS, n="many").json()
    assert "data" not in typed
    assert "$n" in typed["errors"][0]["message"]


# --- paging ----------------------------------------------------------------------------------


def test_paging_walks_every_item_once(sb: Sandbox) -> None:
    """`first: 100` + `after` visits every live item once, in board order."""
    items = all_items(sb)
    ids = [i["databaseId"] for i in items]
    assert len(ids) == len(set(ids)) == 250
    assert ids == [t["id"] for t in sb.project_truth("acme/12")]


def test_cursor_survives_a_removed_item(sb: Sandbox) -> None:
    """Removing items already paged past neither skips nor repeats one on the next page."""
    page = post(sb, ITEMS, n=50).json()["data"]["organization"]["projectV2"]["items"]
    seen = [n["databaseId"] for n in page["nodes"]]
    for item in seen[:10]:
        sb.project_remove("acme/12", item)
    rest = post(sb, ITEMS, n=100, after=page["pageInfo"]["endCursor"]).json()
    nxt = rest["data"]["organization"]["projectV2"]["items"]
    expected = [t["id"] for t in sb.project_truth("acme/12")]
    assert [n["databaseId"] for n in nxt["nodes"]] == expected[40:140]
    assert nxt["totalCount"] == 240


def test_page_size_limits_are_githubs(sb: Sandbox) -> None:
    """first over 100 and a missing first/last are refused with GitHub's messages, no data."""
    over = post(sb, ITEMS, n=101).json()
    assert over == {
        "errors": [
            {
                "type": "EXCESSIVE_PAGINATION",
                "path": ["query", "organization", "projectV2", "items"],
                "locations": [{"line": 4, "column": 5}],
                "message": "Requesting 101 records on the `items` connection exceeds the "
                "`first` limit of 100 records.",
            }
        ]
    }
    unbounded = '{ organization(login: "acme") { projectV2(number: 12) { items { totalCount } } } }'
    body = post(sb, unbounded).json()
    assert body["errors"][0]["type"] == "MISSING_PAGINATION_BOUNDARIES"
    assert body["errors"][0]["message"] == (
        "You must provide a `first` or `last` value to properly paginate the `items` connection."
    )


def test_bad_cursor_is_a_field_error(sb: Sandbox) -> None:
    """A cursor that is not one of ours nulls the project with GitHub's message beside it."""
    body = post(sb, ITEMS, after="not-a-cursor").json()
    assert body["data"]["organization"]["projectV2"] is None
    assert body["errors"][0]["message"] == "`not-a-cursor` does not appear to be a valid cursor."


# --- cost and the rate limit -----------------------------------------------------------------


def test_cost_is_requests_over_100(sb: Sandbox) -> None:
    """cost = connections' requests (times the enclosing page sizes) / 100, rounded, min 1;
    the budget and the x-ratelimit headers count it."""
    one = "{ rateLimit { cost used remaining nodeCount } }"
    nested = """{ rateLimit { cost nodeCount } organization(login: "acme") {
      projectV2(number: 12) { items(first: 100) {
        nodes { fieldValues(first: 20) { totalCount }
                content { ... on Issue { labels(first: 100) { totalCount } } } } } } } }"""
    first = post(sb, one)
    assert first.json()["data"]["rateLimit"] == {
        "cost": 1,
        "used": 1,
        "remaining": 4999,
        "nodeCount": 0,
    }
    resp = post(sb, nested)
    assert resp.json()["data"]["rateLimit"] == {"cost": 2, "nodeCount": 100 + 2_000 + 10_000}
    assert resp.headers["x-ratelimit-used"] == "3"
    assert resp.headers["x-ratelimit-remaining"] == "4997"
    assert resp.headers["x-ratelimit-resource"] == "graphql"


def test_spent_budget_answers_rate_limited(sb: Sandbox) -> None:
    """A query costing more than what is left gets RATE_LIMITED (HTTP 200), remaining 0."""
    sb.app.github.graphql.take(4_998)
    resp = post(sb, SYNC_QUERY, login="acme", number=12)
    assert resp.status_code == 200
    assert resp.json()["errors"][0]["type"] == "RATE_LIMITED"
    assert resp.headers["x-ratelimit-remaining"] == "0"
    assert post(sb, "{ rateLimit { remaining } }").json()["data"]["rateLimit"]["remaining"] == 1


# --- faults and auth -------------------------------------------------------------------------


def test_rate_limit_faults(sb: Sandbox) -> None:
    """graphql_secondary: 403 + Retry-After; graphql_rate_limited: RATE_LIMITED at the status
    asked; each taken once, then the query runs."""
    sb.inject("github", "graphql_secondary", retry_after=7)
    sb.inject("github", "graphql_rate_limited", status=403, reset_after=30)
    sb.inject("github", "graphql_rate_limited")
    secondary = post(sb, ITEMS)
    assert secondary.status_code == 403
    assert secondary.headers["retry-after"] == "7"
    assert "secondary rate limit" in secondary.json()["message"]
    primary = post(sb, ITEMS)
    assert primary.status_code == 403
    assert primary.json()["errors"][0] == {
        "type": "RATE_LIMITED",
        "message": "API rate limit exceeded for user ID 1.",
    }
    assert int(primary.headers["x-ratelimit-reset"]) >= int(datetime.now(UTC).timestamp()) + 29
    assert post(sb, ITEMS).status_code == 200  # the default status, RATE_LIMITED again
    assert "data" in post(sb, ITEMS).json()


def test_partial_error_fault(sb: Sandbox) -> None:
    """graphql_partial: the page comes with one item's content null and a FORBIDDEN error
    naming its path; mode=timeout: data null and GitHub's timeout message."""
    sb.inject("github", "graphql_partial", item=3)
    body = post(sb, ITEMS).json()
    nodes = body["data"]["organization"]["projectV2"]["items"]["nodes"]
    assert len(nodes) == 100
    assert nodes[3]["content"] is None
    assert body["errors"][0]["type"] == "FORBIDDEN"
    assert body["errors"][0]["path"] == [
        "organization",
        "projectV2",
        "items",
        "nodes",
        3,
        "content",
    ]
    sb.inject("github", "graphql_partial", mode="timeout")
    timeout = post(sb, ITEMS).json()
    assert timeout["data"] is None
    assert timeout["errors"][0]["message"].startswith("Something went wrong")
    assert "errors" not in post(sb, ITEMS).json()


def test_wrong_token_is_401_with_graphql_body(sb: Sandbox) -> None:
    """A wrong token gets 401 and GitHub's GraphQL body (documentation_url to the GraphQL docs)."""
    with client(sb, token="ghp_wrong") as c:
        resp = c.post("/graphql", json={"query": "{ rateLimit { cost } }"})
    assert resp.status_code == 401
    assert resp.json() == {
        "message": "Bad credentials",
        "documentation_url": "https://docs.github.com/graphql",
        "status": "401",
    }


def test_hidden_repository_items_are_redacted(sb: Sandbox) -> None:
    """Items from a repository the token cannot see come as REDACTED, content null."""
    sb.hide_scope("github", "acme/infra")
    hidden = {
        t["id"] for t in sb.project_truth("acme/12") if (t["key"] or "").startswith("acme/infra#")
    }
    items = {i["databaseId"]: i for i in all_items(sb)}
    assert hidden
    assert all(items[i]["type"] == "REDACTED" for i in hidden)
    assert all(items[i]["content"] is None for i in hidden)


# --- board changes ---------------------------------------------------------------------------


def _item_state(sb: Sandbox, node_id: str) -> dict[str, Any]:
    return dict(post(sb, STATUS, id=node_id).json()["data"]["node"])


def _project_updated(sb: Sandbox) -> str:
    body = post(sb, ITEMS, n=1).json()
    return str(body["data"]["organization"]["projectV2"]["updatedAt"])


def test_board_change_bumps_item_and_project_not_issue(sb: Sandbox) -> None:
    """Setting Status and Iteration bumps the item's and the project's updatedAt; the issue's
    own updatedAt stays (GitHub keeps project events off the issue)."""
    item = next(t for t in sb.project_truth("acme/12") if t["type"] == "ISSUE")
    before, project_before = _item_state(sb, item["node_id"]), _project_updated(sb)
    sb.project_set("acme/12", item["id"], "Status", "Done")
    sb.project_set("acme/12", item["id"], "Iteration", "Sprint 15")
    after = _item_state(sb, item["node_id"])
    assert after["status"] == {"name": "Done"}
    assert after["iteration"]["title"] == "Sprint 15"
    assert after["updatedAt"] > before["updatedAt"]
    assert _project_updated(sb) > project_before
    assert after["content"] == before["content"]
    assert sb.project_truth("acme/12")[0]["values"]["Status"] in ("Todo", "In Progress", "Done")


def test_admin_api_adds_removes_and_sets(sb: Sandbox) -> None:
    """The admin API adds an issue and a draft at the end, sets a value and removes an item."""
    admin = httpx.Client(transport=sb.transport(), base_url=f"{IN_PROCESS_ORIGIN}/_sandbox")
    on_board = {t["external_id"] for t in sb.project_truth("acme/12")}
    outside = next(e for e in sb.truth("github") if e.isdigit() and e not in on_board)
    with admin:
        added = admin.post("/project_add", json={"project": "acme/12", "external_id": outside})
        draft = admin.post("/project_add", json={"project": "project:acme/12", "draft": "Spike"})
        item = added.json()["item"]
        admin.post(
            "/project_set",
            json={"project": "acme/12", "item": item, "field": "Points", "value": 8},
        ).raise_for_status()
        removed = sb.project_truth("acme/12")[0]["id"]
        admin.post("/project_remove", json={"project": "acme/12", "item": removed})
        bad = admin.post(
            "/project_set",
            json={"project": "acme/12", "item": item, "field": "Status", "value": "Nope"},
        )
        truth = admin.post("/project_truth", json={"project": "acme/12"}).json()
    assert bad.status_code == 400
    assert "no option 'Nope'" in bad.json()["error"]
    assert [t["id"] for t in truth[-2:]] == [item, draft.json()["item"]]
    assert truth[-2]["external_id"] == outside
    assert truth[-2]["values"]["Points"] == 8.0
    assert truth[-1]["type"] == "DRAFT_ISSUE"
    assert truth[-1]["title"] == "Spike"
    assert removed not in {t["id"] for t in truth}
    ids = [i["databaseId"] for i in all_items(sb)]
    assert ids[-2:] == [item, draft.json()["item"]]
    assert len(ids) == 251


def test_sizes_knob_sets_the_board_size() -> None:
    """`github_project=N` sizes the Payments board; drafts fill up past the issues there are."""
    sb = Sandbox(seed=3, sizes={"github": 40, "github_project": 120})
    truth = sb.project_truth("acme/12")
    assert len(truth) == 120
    assert sum(1 for t in truth if t["type"] == "DRAFT_ISSUE") >= 80
    assert (
        post(sb, ITEMS, n=1).json()["data"]["organization"]["projectV2"]["items"]["totalCount"]
        == 120
    )


def test_repeated_query_shows_every_change(sb: Sandbox) -> None:
    """The same query sent again (its items served from cache) shows an issue's new title, a
    board value set since, and drops an issue deleted since (GitHub removes it from boards)."""
    query = """{ organization(login: "acme") { projectV2(number: 12) { updatedAt
      items(first: 100) { totalCount nodes { databaseId
        content { ... on Issue { databaseId title } }
        fieldValueByName(name: "Points") { ... on ProjectV2ItemFieldNumberValue { number } } } }
    } } }"""
    before = post(sb, query).json()["data"]["organization"]["projectV2"]
    issues = [n for n in before["items"]["nodes"] if n["content"] and "title" in n["content"]]
    renamed, valued, deleted = issues[0], issues[1], issues[2]
    sb.update("github", str(renamed["content"]["databaseId"]), title="Renamed on GitHub")
    sb.project_set("acme/12", valued["databaseId"], "Points", 13)
    sb.delete("github", str(deleted["content"]["databaseId"]))
    after = post(sb, query).json()["data"]["organization"]["projectV2"]
    nodes = {n["databaseId"]: n for n in after["items"]["nodes"]}
    assert nodes[renamed["databaseId"]]["content"]["title"] == "Renamed on GitHub"
    assert nodes[valued["databaseId"]]["fieldValueByName"] == {"number": 13.0}
    assert deleted["databaseId"] not in nodes
    assert after["items"]["totalCount"] == before["items"]["totalCount"] - 1
    assert after["updatedAt"] > before["updatedAt"]


def test_edges_and_backward_paging(sb: Sandbox) -> None:
    """`edges { cursor node }` carry each item's cursor; `last` + `before` pages backwards."""
    query = """query($before: String) { organization(login: "acme") { projectV2(number: 12) {
      items(last: 3, before: $before) {
        pageInfo { hasPreviousPage hasNextPage startCursor }
        edges { cursor node { databaseId } } } } } }"""
    ids = [t["id"] for t in sb.project_truth("acme/12")]
    tail = post(sb, query).json()["data"]["organization"]["projectV2"]["items"]
    assert [e["node"]["databaseId"] for e in tail["edges"]] == ids[-3:]
    assert tail["pageInfo"]["hasPreviousPage"] is True
    assert tail["pageInfo"]["startCursor"] == tail["edges"][0]["cursor"]
    before = post(sb, query, before=tail["pageInfo"]["startCursor"]).json()
    page = before["data"]["organization"]["projectV2"]["items"]
    assert [e["node"]["databaseId"] for e in page["edges"]] == ids[-6:-3]
    assert page["pageInfo"]["hasNextPage"] is True
