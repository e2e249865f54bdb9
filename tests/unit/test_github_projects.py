"""GitHub Projects (v2) through GraphQL: the connector's queries run by graphql-core against the
vendored schema (GitHub's own, trimmed: `okrsync/sandbox/github_projects.graphql`), so a query
GitHub would refuse fails here; boards, drafts, field values, paging, the cursor, errors and
the rate limit; the REST pass's issues keep their boards (the sandbox's REST GitHub)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any

import graphql
import httpx
import orjson
import pytest
from okrsync_connectors.github import GitHubConnector
from okrsync_connectors.github.config import GitHubConfig
from okrsync_connectors.github.graphql import endpoint
from okrsync_connectors.github.projects import NODES_QUERY, items_query, project_query

from okrsync.config import ConnectorConfig
from okrsync.demo import sandbox_connectors, sandbox_env
from okrsync.errors import ConnectorError, TransientError
from okrsync.http import Http
from okrsync.models import ItemKind, Page, StatusCategory, WorkItem
from okrsync.sandbox import Sandbox

BOARD = "project:acme/12"
PID = "PVT_kwDOacme12"
TOKEN = "ghp_sandboxsecret0123456789"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
Json = dict[str, Any]


@cache
def schema() -> graphql.GraphQLSchema:
    text = resources.files("okrsync.sandbox").joinpath("github_projects.graphql").read_text()
    return graphql.build_schema(text)


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- a fake GitHub GraphQL: the vendored schema, executed over plain dicts ---------------


def named(kind: str, name: str) -> Json:
    return {"__typename": kind, "name": name}


def value(kind: str, field_name: str, **v: Any) -> Json:
    field_kind = {
        "ProjectV2ItemFieldSingleSelectValue": "ProjectV2SingleSelectField",
        "ProjectV2ItemFieldIterationValue": "ProjectV2IterationField",
    }.get(kind, "ProjectV2Field")
    return {"__typename": kind, "field": named(field_kind, field_name), **v}


def status(name: str) -> Json:
    return value("ProjectV2ItemFieldSingleSelectValue", "Status", name=name)


def issue(n: int, *, repo: str = "acme/web", state: str = "OPEN", **kw: Any) -> Json:
    """An `Issue` as GitHub's GraphQL gives it (the fields okrsync asks)."""
    out: Json = {
        "__typename": "Issue",
        "id": f"I_kw{n}",
        "databaseId": 9000 + n,
        "number": n,
        "title": f"Issue {n}",
        "state": state,
        "stateReason": "COMPLETED" if state == "CLOSED" else None,
        "createdAt": iso(T0 - timedelta(days=30)),
        "updatedAt": iso(T0 - timedelta(days=n)),
        "closedAt": iso(T0 - timedelta(days=1)) if state == "CLOSED" else None,
        "url": f"https://github.com/{repo}/issues/{n}",
        "repository": {"nameWithOwner": repo},
        "author": {"__typename": "User", "login": "octocat"},
        "assignees": {"nodes": [{"login": "hubot", "databaseId": 7}]},
        "labels": {"nodes": [{"name": "bug"}]},
        "milestone": None,
    }
    out.update(kw)
    return out


def draft(n: int, title: str = "Write the spec") -> Json:
    return {
        "__typename": "DraftIssue",
        "id": f"DI_kw{n}",
        "title": title,
        "createdAt": iso(T0 - timedelta(days=3)),
        "updatedAt": iso(T0 - timedelta(days=2)),
        "assignees": {"nodes": []},
    }


@dataclass
class Board:
    """One project: its items (`content` refers to an issue by databaseId, or is a draft)."""

    pid: str
    title: str
    updated: datetime
    items: list[Json] = field(default_factory=list)

    def add(self, db: int, content: Json | None, *values: Json, archived: bool = False) -> Json:
        item = {
            "id": f"PVTI_{self.pid}_{db}",
            "databaseId": db,
            "isArchived": archived,
            "updatedAt": iso(self.updated - timedelta(hours=1)),
            "project": {"id": self.pid},
            "fieldValues": {"nodes": list(values)},
            "content": content,
        }
        self.items.append(item)
        return item


@dataclass
class FakeGraphQL:
    """GitHub's GraphQL endpoint over `boards` (by (owner type, login, number)); `faults` are
    served (one per request) before any query is run."""

    boards: dict[tuple[str, str, int], Board] = field(default_factory=dict)
    remaining: int = 4999
    reset_at: datetime = T0
    faults: list[httpx.Response | Callable[[Json], Json]] = field(default_factory=list)
    queries: list[Json] = field(default_factory=list)

    def by_id(self) -> dict[str, Board]:
        return {b.pid: b for b in self.boards.values()}

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        self.queries.append(body)
        fault = self.faults.pop(0) if self.faults else None
        if isinstance(fault, httpx.Response):
            return fault
        result = graphql.graphql_sync(
            schema(), body["query"], self.root(), variable_values=body.get("variables")
        )
        out: Json = {"data": result.data}
        if result.errors:
            out["errors"] = [
                {**e.formatted, "type": (e.extensions or {}).get("type", "INTERNAL")}
                for e in result.errors
            ]
        if fault is not None:
            out = fault(out)
        return httpx.Response(200, json=out)

    def root(self) -> Json:
        return {
            "organization": self._owner("organization"),
            "user": self._owner("user"),
            "node": lambda info, id: self._project(self.by_id()[id]),
            "nodes": lambda info, ids: [self._content_by_node(i) for i in ids],
            "rateLimit": {"cost": 1, "remaining": self.remaining, "resetAt": iso(self.reset_at)},
        }

    def _owner(self, kind: str) -> Callable[..., Json]:
        def resolve(info: Any, login: str) -> Json:
            if not any(k == kind and lg == login for k, lg, _ in self.boards):
                raise graphql.GraphQLError(
                    f"Could not resolve to an {kind} with the login of '{login}'.",
                    extensions={"type": "NOT_FOUND"},
                )
            return {"projectV2": lambda info, number: self._find(kind, login, number)}

        return resolve

    def _find(self, kind: str, login: str, number: int) -> Json | None:
        board = self.boards.get((kind, login, number))
        if board is None:
            return None
        return {"id": board.pid, "title": board.title, "updatedAt": iso(board.updated)}

    def _project(self, board: Board) -> Json:
        def items(info: Any, first: int, after: str | None = None, **_: Any) -> Json:
            start = int(after) if after else 0
            nodes = [self._with_boards(i) for i in board.items[start : start + first]]
            more = start + first < len(board.items)
            end = str(start + first) if more else None
            return {"nodes": nodes, "pageInfo": {"hasNextPage": more, "endCursor": end}}

        return {"__typename": "ProjectV2", "updatedAt": iso(board.updated), "items": items}

    def _board_items_of(self, node_id: str) -> list[Json]:
        return [
            i
            for b in self.boards.values()
            for i in b.items
            if i["content"] is not None and i["content"].get("id") == node_id
        ]

    def _with_boards(self, item: Json) -> Json:
        content = item["content"]
        if content is None or content["__typename"] == "DraftIssue":
            return item
        linked = {**content, "projectItems": {"nodes": self._board_items_of(content["id"])}}
        return {**item, "content": linked}

    def _content_by_node(self, node_id: str) -> Json:
        return {
            "__typename": "PullRequest" if node_id.startswith("PR_") else "Issue",
            "id": node_id,
            "projectItems": {"nodes": self._board_items_of(node_id)},
        }


def acme_board(updated: datetime = T0) -> Board:
    """Board acme/12: an open issue "In Progress" in Sprint 14 with 3 points, a closed one
    "In Progress", a draft, an archived item and one in a repository the token cannot see."""
    b = Board(PID, "Payments roadmap", updated)
    sprint = value(
        "ProjectV2ItemFieldIterationValue",
        "Iteration",
        title="Sprint 14",
        startDate="2026-03-02",
        duration=14,
    )
    b.add(
        1,
        issue(1),
        status("In Progress"),
        sprint,
        value("ProjectV2ItemFieldNumberValue", "Points", number=3.0),
        value("ProjectV2ItemFieldTextValue", "Team", text="Payments"),
        value("ProjectV2ItemFieldDateValue", "Target", date="2026-03-20"),
        value("ProjectV2ItemFieldTextValue", "Title", text="Issue 1"),
    )
    b.add(
        2,
        issue(2, repo="acme/api", state="CLOSED"),
        status("In Progress"),
        value("ProjectV2ItemFieldNumberValue", "Points", number=2.5),
    )
    b.add(3, draft(3), status("Todo"))
    b.add(4, issue(4), status("Done"), archived=True)
    b.add(5, None)  # REDACTED: a private repository's issue
    return b


# --- harness --------------------------------------------------------------------------


def cfg(scope: list[str] | None = None, **kw: Any) -> GitHubConfig:
    return GitHubConfig(
        name="gh",
        type="github",
        base_url="https://api.github.com",
        scope=scope or [BOARD],
        token_env="GH_TOKEN_TEST",
        **kw,
    )


@dataclass
class Run:
    pages: list[Page] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    http: Http | None = None
    requests: list[httpx.Request] = field(default_factory=list)

    @property
    def items(self) -> list[WorkItem]:
        return [i for p in self.pages for i in p.items]

    def by_key(self) -> dict[str, WorkItem]:
        return {i.key: i for i in self.items}

    @property
    def cursor(self) -> Json:
        return self.pages[-1].cursor

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def pull(
    fake: FakeGraphQL,
    config: ConnectorConfig,
    cursor: Json | None = None,
    rest: httpx.MockTransport | None = None,
    into: Run | None = None,
) -> Run:
    """One pull: `/graphql` served by `fake`, anything else by `rest` (the sandbox)."""
    run = into or Run()

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/graphql"):
            return fake.handle(request)
        assert rest is not None, f"unexpected REST call {request.url}"
        return rest.handle_request(request)

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
            run.http = Http(client, connector="gh", sleep=run.sleep)
            async for page in GitHubConnector(config, run.http).pull(cursor):
                run.pages.append(page)

    asyncio.run(go())
    return run


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GH_TOKEN_TEST", TOKEN)


def org(*boards: Board) -> FakeGraphQL:
    fake = FakeGraphQL()
    for n, b in zip((12, 13), boards, strict=False):
        fake.boards["organization", "acme", n] = b
    return fake


# --- config and queries ---------------------------------------------------------------


def test_project_scopes_accepted_and_bad_ones_named() -> None:
    """`project:acme/12` is a scope; a project without a number or with a path is refused."""
    assert GitHubConfig.scope_problem("project:acme/12") is None
    assert GitHubConfig.scope_problem("acme/web") is None
    for bad in ("project:acme/x", "project:../1", "project:acme/12/3", "project:acme/0"):
        problem = GitHubConfig.scope_problem(bad)
        assert problem is not None
        assert "project:<owner>/<number>" in problem


def test_graphql_endpoint_derives_from_base_url() -> None:
    """api.github.com → /graphql; Enterprise `/api/v3` → `/api/graphql`."""
    assert endpoint("https://api.github.com") == "https://api.github.com/graphql"
    assert endpoint("https://ghe.example.com/api/v3/") == "https://ghe.example.com/api/graphql"


def test_every_query_is_valid_against_githubs_schema() -> None:
    """The project, items (one board and several) and nodes queries pass GitHub's schema."""
    for query in (
        project_query("organization"),
        project_query("user"),
        items_query(False),
        items_query(True),
        NODES_QUERY,
    ):
        assert graphql.validate(schema(), graphql.parse(query)) == []
    assert "first: 100" in items_query(False)
    assert "rateLimit { remaining resetAt }" in NODES_QUERY


# --- normalisation --------------------------------------------------------------------


def test_board_items_carry_fields_iteration_estimate_and_board_status() -> None:
    """Field values by name (number without .0), the iteration's dates, Points as estimate,
    "In Progress" moves an open issue to in progress; a closed one stays done."""
    run = pull(org(acme_board()), cfg(estimate_field="Points"))
    items = run.by_key()
    one = items["acme/web#1"]
    assert one.external_id == "9001"
    assert one.boards == (BOARD,)
    assert one.board_names == ("Payments roadmap",)
    assert one.container == "acme/web"
    assert one.custom == {
        "repo": "acme/web",
        "author": "octocat",
        "Status": "In Progress",
        "Iteration": "Sprint 14",
        "Points": "3",
        "Team": "Payments",
        "Target": "2026-03-20",
    }
    assert (one.iteration, one.iteration_start, one.iteration_end) == (
        "Sprint 14",
        date(2026, 3, 2),
        date(2026, 3, 16),
    )
    assert one.estimate == 3.0
    assert one.status is StatusCategory.IN_PROGRESS
    assert "In Progress" in one.status_names
    assert one.updated == T0 - timedelta(hours=1)  # the board item's change: newer
    two = items["acme/api#2"]
    assert two.status is StatusCategory.DONE
    assert two.custom["Points"] == "2.5"
    assert two.completed_at is not None


def test_drafts_are_tasks_of_the_project_archived_and_hidden_items_are_not_work() -> None:
    """A draft is a task whose container is the board; archived and REDACTED items vanish."""
    run = pull(org(acme_board()), cfg())
    items = run.by_key()
    d = items[f"{BOARD}#draft-3"]
    assert (d.kind, d.item_type, d.container, d.container_name) == (
        ItemKind.TASK,
        "draft_issue",
        BOARD,
        "Payments roadmap",
    )
    assert d.external_id == d.key
    assert d.custom["Status"] == "Todo"
    assert "acme/web#4" not in items
    assert sorted(items) == sorted(["acme/web#1", "acme/api#2", f"{BOARD}#draft-3"])
    assert run.pages[-1].census == {BOARD: [f"{BOARD}#draft-3"]}


def test_status_map_maps_a_board_column() -> None:
    """`status_map = { "Done" = "done" }` closes an open issue in the board's Done column."""
    board = Board(PID, "Payments roadmap", T0)
    board.add(1, issue(1), status("Done"))
    run = pull(org(board), cfg(status_map={"Done": "done"}))
    (item,) = run.items
    assert item.status is StatusCategory.DONE
    assert item.completed_at == T0 - timedelta(hours=1)


def test_status_field_names_the_single_select_read() -> None:
    """`status_field = "Stage"` reads the Stage column, not Status."""
    board = Board(PID, "Payments roadmap", T0)
    stage = value("ProjectV2ItemFieldSingleSelectValue", "Stage", name="Doing")
    board.add(1, issue(1), status("Todo"), stage)
    (item,) = pull(org(board), cfg(status_field="Stage")).items
    assert item.status is StatusCategory.IN_PROGRESS
    assert item.status_names[-1] == "Doing"


# --- incremental, cursor, owner -------------------------------------------------------


def test_unchanged_board_costs_one_request() -> None:
    """A re-sync of an unchanged board asks only its updatedAt and yields nothing."""
    fake = org(acme_board())
    first = pull(fake, cfg())
    fake.queries.clear()
    second = pull(fake, cfg(), first.cursor)
    assert len(fake.queries) == 1
    assert second.items == []
    assert second.cursor["projects"][BOARD]["seen"] == iso(T0)


def test_changed_board_yields_only_items_changed_since_the_watermark() -> None:
    """After a status change only that item comes back (the board is listed whole)."""
    board = acme_board()
    fake = org(board)
    first = pull(fake, cfg())
    later = T0 + timedelta(hours=1)
    board.updated = later
    board.items[0]["updatedAt"] = iso(later)
    board.items[0]["fieldValues"]["nodes"][0]["name"] = "Done"
    second = pull(fake, cfg(status_map={"Done": "done"}), first.cursor)
    assert [i.key for i in second.items] == ["acme/web#1"]
    assert second.items[0].status is StatusCategory.DONE


def test_listing_resumes_at_the_page_it_stopped() -> None:
    """A run killed after page 1 of 3 resumes with `after` = page 1's end cursor."""
    board = Board(PID, "Big board", T0)
    for n in range(1, 251):
        board.add(n, issue(n))
    fake = org(board)
    run = Run()
    fake.faults = [lambda out: out, lambda out: out, *[httpx.Response(502)] * 6]
    with pytest.raises(TransientError):
        pull(fake, cfg(), into=run)
    assert len(run.items) == 100
    fake.queries.clear()
    resumed = pull(fake, cfg(), run.cursor)
    afters = [q["variables"].get("after") for q in fake.queries if "items(" in q["query"]]
    assert afters == ["100", "200"]
    assert len(resumed.items) == 150
    assert {i.key for i in run.items + resumed.items} == {f"acme/web#{n}" for n in range(1, 251)}
    assert resumed.pages[-1].census == {}  # a resumed listing is no census


def test_user_project_found_after_organization_and_remembered() -> None:
    """`project:octocat/1` is a user's: NOT_FOUND as an organisation, then the user's; the
    next run asks the user first (one request)."""
    fake = FakeGraphQL()
    fake.boards["user", "octocat", 1] = acme_board()
    first = pull(fake, cfg(["project:octocat/1"]))
    assert len(first.items) == 3
    assert first.cursor["projects"]["project:octocat/1"]["owner"] == "user"
    fake.queries.clear()
    pull(fake, cfg(["project:octocat/1"]), first.cursor)
    assert len(fake.queries) == 1
    assert "user(login: $login)" in fake.queries[0]["query"]


def test_missing_project_is_a_lost_scope() -> None:
    """No owner has the project: the scope is reported lost, nothing deleted."""
    run = pull(FakeGraphQL(), cfg())
    (page,) = run.pages
    assert page.lost_scopes == [BOARD]
    assert page.items == []


# --- errors and rate limits -----------------------------------------------------------


def test_errors_beside_data_fail_the_run_naming_the_error() -> None:
    """A page with data and `errors` fails the run with one message naming the GraphQL error;
    nothing of the page is yielded and the token never appears."""
    fake = org(acme_board())

    def partial(out: Json) -> Json:
        out["errors"] = [
            {
                "type": "FORBIDDEN",
                "path": ["node", "items", "nodes", 1, "content"],
                "message": f"Resource not accessible by integration {TOKEN}",
            }
        ]
        return out

    fake.faults = [lambda out: out, partial]
    run = Run()
    with pytest.raises(ConnectorError) as err:
        pull(fake, cfg(), into=run)
    message = str(err.value)
    assert "GitHub GraphQL error on the items of project:acme/12: FORBIDDEN" in message
    assert "node.items.nodes.1.content" in message
    assert TOKEN not in message
    assert run.items == []


def test_rate_limited_error_is_retried_after_the_reset() -> None:
    """`RATE_LIMITED` (HTTP 200, no data) waits until `x-ratelimit-reset`, then retries."""
    fake = org(acme_board())
    limited = httpx.Response(
        200,
        json={"data": None, "errors": [{"type": "RATE_LIMITED", "message": "API rate limit"}]},
        headers={"retry-after": "42"},
    )
    fake.faults = [limited]
    run = pull(fake, cfg())
    assert len(run.items) == 3
    assert run.sleeps
    assert 42 <= run.sleeps[0] < 43
    assert run.http is not None
    assert run.http.stats.rate_limit_wait_s >= 42


def test_secondary_limit_403_is_retried_after_retry_after() -> None:
    """A 403 with Retry-After (secondary limit) is waited out and retried by the core Http."""
    fake = org(acme_board())
    fake.faults = [httpx.Response(403, headers={"retry-after": "7"}, json={"message": "slow"})]
    run = pull(fake, cfg())
    assert len(run.items) == 3
    assert run.sleeps
    assert 7 <= run.sleeps[0] < 8


def test_low_remaining_points_wait_for_the_reset() -> None:
    """Fewer than 50 points left: the next query waits until `resetAt`."""
    fake = org(acme_board())
    fake.remaining = 10
    fake.reset_at = datetime.now(UTC) + timedelta(seconds=120)
    run = pull(fake, cfg())
    assert len(run.sleeps) == 1
    assert 100 < run.sleeps[0] <= 120


# --- one item across the REST and the board passes ------------------------------------


def sandbox_rest(monkeypatch: pytest.MonkeyPatch) -> tuple[Sandbox, GitHubConfig]:
    box = Sandbox(seed=3, sizes={"github": 60})
    for name, val in sandbox_env(box).items():
        monkeypatch.setenv(name, val)
    (base,) = [c for c in sandbox_connectors(box) if c.type == "github"]
    return box, GitHubConfig.of(base)


def graphql_of(raw: Json) -> Json:
    """A REST issue of the sandbox as GraphQL's `Issue` content."""
    return issue(
        raw["number"],
        id=raw["node_id"],
        databaseId=raw["id"],
        title=raw["title"],
        state=raw["state"].upper(),
        stateReason=(raw.get("state_reason") or "").upper() or None,
        createdAt=raw["created_at"],
        updatedAt=raw["updated_at"],
        closedAt=raw["closed_at"],
        url=raw["html_url"],
        author={"__typename": "User", "login": raw["user"]["login"]},
        assignees={
            "nodes": [{"login": raw["assignee"]["login"], "databaseId": raw["assignee"]["id"]}]
            if raw.get("assignee")
            else []
        },
        labels={"nodes": [{"name": lab["name"]} for lab in raw["labels"]]},
        milestone=None,
    )


def test_an_issue_on_a_board_and_in_a_listed_repo_is_one_item(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The REST pass and the board pass give the same work item, boards and all; the REST
    page's boards cost one nodes(ids:) request."""
    box, base = sandbox_rest(monkeypatch)
    rest = box.transport()
    listing = httpx.Client(transport=rest).get(
        f"{base.base_url}/repos/acme/web/issues",
        params={"state": "all", "per_page": 100},
        headers={"Authorization": f"Bearer {base.secret()}"},
    )
    raws = [r for r in listing.json() if "pull_request" not in r and r["milestone"] is None]
    board = Board(PID, "Payments roadmap", datetime.now(UTC).replace(microsecond=0))
    board.add(1, graphql_of(raws[0]), status("In Progress"))
    config = base.model_copy(update={"scope": ["acme/web", BOARD]})
    fake = org(board)
    run = pull(fake, config, rest=rest)
    ones = [i for i in run.items if i.external_id == str(raws[0]["id"])]
    assert len(ones) == 2  # once from the repo, once from the board (its change)
    via_rest, via_board = ones
    assert via_rest == via_board
    assert via_rest.boards == (BOARD,)
    assert via_rest.status is StatusCategory.IN_PROGRESS or raws[0]["state"] == "closed"
    nodes = [q for q in fake.queries if "nodes(ids:" in q["query"]]
    assert len(nodes) == 1
    assert raws[0]["node_id"] in nodes[0]["variables"]["ids"]


def test_without_project_scopes_no_graphql_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """A repo-only connector never asks GraphQL (no cost for teams without boards)."""
    box, base = sandbox_rest(monkeypatch)
    fake = FakeGraphQL()
    pull(fake, base.model_copy(update={"scope": ["acme/web"]}), rest=box.transport())
    assert fake.queries == []


# --- census ---------------------------------------------------------------------------


def test_board_census_deletes_items_gone_from_every_board() -> None:
    """Every census_every runs every board is listed whole: a repo outside the repo scopes
    seen on a board gets a census without the item that left it."""
    board = acme_board()
    fake = org(board)
    first = pull(fake, cfg(census_every=2))
    assert first.cursor["board_repos"] == ["acme/web", "acme/api"]
    board.items = [i for i in board.items if i["databaseId"] != 2]
    board.updated = T0 + timedelta(hours=1)
    second = pull(fake, cfg(census_every=2), first.cursor)
    census = second.pages[-1].census
    assert sorted(census) == ["acme/api", "acme/web"]
    assert list(census["acme/api"]) == []
    assert list(census["acme/web"]) == ["9001"]
    assert second.cursor["project_runs"] == 0
    assert second.cursor["board_repos"] == ["acme/web"]


def test_several_boards_make_every_item_complete() -> None:
    """An issue on two boards of the connector carries both, whichever board lists it."""
    a, b = acme_board(), Board("PVT_kwDOacme13", "Platform board", T0)
    shared = copy.deepcopy(a.items[0]["content"])
    b.add(77, shared, status("Doing"))
    run = pull(org(a, b), cfg([BOARD, "project:acme/13"]))
    ones = [i for i in run.items if i.key == "acme/web#1"]
    assert len(ones) == 2
    assert ones[0] == ones[1]
    assert ones[0].boards == (BOARD, "project:acme/13")
    assert ones[0].board_names == ("Payments roadmap", "Platform board")
    assert ones[0].status_names[-2:] == ("In Progress", "Doing")


# --- against the sandbox's GitHub (REST and GraphQL, in process) ----------------------


def sandbox_pull(box: Sandbox, config: GitHubConfig, cursor: Json | None = None) -> Run:
    """One pull of `config` served wholly by the sandbox (REST and `/graphql`)."""
    run = Run()
    inner = box.transport()

    def handle(request: httpx.Request) -> httpx.Response:
        run.requests.append(request)
        return inner.handle_request(request)

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
            run.http = Http(client, connector="gh", sleep=run.sleep)
            async for page in GitHubConnector(config, run.http).pull(cursor):
                run.pages.append(page)

    asyncio.run(go())
    return run


def test_sandbox_board_is_read_as_its_truth(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every live item of the sandbox's board arrives once with its values by field name."""
    box, base = sandbox_rest(monkeypatch)
    run = sandbox_pull(box, base.model_copy(update={"scope": [BOARD]}))
    truth = {t["key"] or f"{BOARD}#draft-{t['id']}": t for t in box.project_truth(BOARD)}
    got = {i.key: i for i in run.items if not i.kind.is_container}
    assert sorted(got) == sorted(k for k, t in truth.items() if not t["archived"])
    for key, item in got.items():
        values = {k: str(v).removesuffix(".0") for k, v in truth[key]["values"].items()}
        board_values = {k: v for k, v in item.custom.items() if k not in ("repo", "author")}
        assert board_values == values, key
        assert item.boards == (BOARD,)


def test_sandbox_repo_and_board_passes_give_one_item(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every repo and the board in scope, an issue's REST and board versions are equal."""
    box, base = sandbox_rest(monkeypatch)
    config = base.model_copy(update={"scope": [*box.scopes("github"), BOARD]})
    run = sandbox_pull(box, config)
    seen: dict[str, WorkItem] = {}
    twice = 0
    for item in run.items:
        if item.external_id in seen and item.kind is not ItemKind.MILESTONE:
            assert seen[item.external_id] == item, item.key
            twice += 1
        seen[item.external_id] = item
    assert twice >= 40  # the board's issues and PRs, each from its repo and from the board


def test_sandbox_status_change_on_the_board_moves_the_item(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A board status set to "In Progress" reaches the next run; then a re-sync costs one
    request and brings nothing."""
    box, base = sandbox_rest(monkeypatch)
    config = base.model_copy(update={"scope": [BOARD]})
    first = sandbox_pull(box, config)
    todo = next(
        i
        for i in first.items
        if i.status is StatusCategory.TODO and i.kind is ItemKind.ISSUE and i.boards
    )
    (row,) = [t for t in box.project_truth(BOARD) if t["external_id"] == todo.external_id]
    box.project_set(BOARD, row["id"], "Status", "In Progress")
    second = sandbox_pull(box, config, first.cursor)
    moved = [i for i in second.items if i.external_id == todo.external_id]
    assert [i.status for i in moved] == [StatusCategory.IN_PROGRESS]
    assert len(second.items) < 5  # the change (and the watermark's ties), not the board
    third = sandbox_pull(box, config, second.cursor)
    assert len(third.requests) == 1
    assert third.items == []


def test_sandbox_partial_error_fails_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox's `graphql_partial` (GitHub's "Something went wrong" error) fails the run
    naming the error; `graphql_rate_limited` is waited out."""
    box, base = sandbox_rest(monkeypatch)
    config = base.model_copy(update={"scope": [BOARD]})
    box.inject("github", "graphql_partial", mode="timeout")
    with pytest.raises(ConnectorError, match="GitHub GraphQL error on the board project:acme/12: "):
        sandbox_pull(box, config)
    box.inject("github", "graphql_rate_limited", reset_after=5)
    run = sandbox_pull(box, config)
    assert run.items
    assert run.sleeps
    assert run.sleeps[0] >= 3


def test_board_census_leaves_repos_now_in_the_repo_scopes_alone() -> None:
    """A repo seen on a board and later listed in `scope` gets no board census (its own REST
    census decides its deletions)."""
    fake = org(acme_board())
    first = pull(fake, cfg(census_every=2))
    assert "acme/web" in first.cursor["board_repos"]
    empty_repo = httpx.MockTransport(lambda request: httpx.Response(200, json=[]))
    second = pull(fake, cfg(["acme/web", BOARD], census_every=2), first.cursor, rest=empty_repo)
    census = second.pages[-1].census
    assert "acme/web" not in census
    assert list(census["acme/api"]) == ["9002"]
    assert second.cursor["board_repos"] == ["acme/api"]


def test_an_error_reading_a_rest_pages_boards_fails_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An `errors` answer to a REST page's boards (nodes) fails the run naming the repo;
    that page is not yielded without its boards."""
    box, base = sandbox_rest(monkeypatch)
    fake = org(Board(PID, "Payments roadmap", T0))

    def failed(out: Json) -> Json:
        out["errors"] = [{"type": "SERVICE_UNAVAILABLE", "message": "try later"}]
        return out

    fake.faults = [lambda out: out, failed]
    run = Run()
    config = base.model_copy(update={"scope": ["acme/web", BOARD]})
    with pytest.raises(ConnectorError, match="on the boards of acme/web's issues: SERVICE_"):
        pull(fake, config, rest=box.transport(), into=run)
    assert run.items == []


def test_board_census_keeps_the_milestone_of_an_unchanged_issue() -> None:
    """A census listing yields only changed items, but an unchanged issue's milestone is still
    on the board: the census of its repo must count it present."""
    board = acme_board()
    stamp = iso(T0 - timedelta(days=40))
    ms = {
        "__typename": "Milestone",
        "number": 4,
        "title": "v1",
        "state": "OPEN",
        "dueOn": None,
        "createdAt": stamp,
        "updatedAt": stamp,
        "closedAt": None,
        "url": "https://github.com/acme/web/milestone/4",
    }
    board.items[0]["content"]["milestone"] = ms
    fake = org(board)
    first = pull(fake, cfg(census_every=2))
    assert "milestone:acme/web#4" in [i.external_id for p in first.pages for i in p.items]
    board.updated = T0 + timedelta(hours=1)
    second = pull(fake, cfg(census_every=2), first.cursor)
    assert "milestone:acme/web#4" in list(second.pages[-1].census["acme/web"])
