"""Pulling GitHub Projects (v2) boards: find each board, list its items when it changed, read
the boards of the REST pass's issues, and take the boards' census.

Costs: an unchanged board is one request (its `updatedAt`); a changed one is listed whole, one
request per 100 items (GitHub has no `since` for project items), yielding only the items
changed since the watermark. With project scopes configured, each REST page of issues costs one
more request (`nodes(ids:)`, the issues' boards). See `projects.py` for the vendor facts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field

import structlog

from okrsync.models import IdList, ItemKind, Page, WorkItem
from okrsync.statuses import fold

from .._guard import PageGuard
from .config import project_of
from .cursor import GitHubCursor, ProjectPass, ProjectState
from .graphql import GraphQL, GraphQLNotFound
from .normalise import Skipped, parse_time
from .projects import NODES_QUERY, PAGE, Board, BoardReader, Json, items_query, project_query

log = structlog.get_logger("okrsync.github")
OWNER_TYPES = ("organization", "user")


class ProjectLost(Exception):
    """Neither an organisation nor a user has this project (or the token cannot see it)."""


@dataclass
class Census:
    """The ids seen on every board in a census run, by container; complete unless a listing
    was resumed or a board was lost."""

    ids: dict[str, IdList] = field(default_factory=dict)
    complete: bool = True

    def add(self, ids: Mapping[str, Iterable[str]]) -> None:
        for container, found in ids.items():
            self.ids.setdefault(container, IdList()).extend(found)


async def find(gql: GraphQL, scope: str, pst: ProjectState) -> Board:
    """The board of `scope` and its `updatedAt` (the owner type tried first is the one found
    last time); `ProjectLost` when no owner has it."""
    login, number = project_of(scope) or ("", 0)
    for owner in sorted(OWNER_TYPES, key=lambda t: t != pst.owner):
        try:
            data = await gql.query(
                f"the board {scope}", project_query(owner), {"login": login, "number": number}
            )
        except GraphQLNotFound:
            continue
        project = (data.get(owner) or {}).get("projectV2")
        if isinstance(project, dict) and project.get("id"):
            pst.owner = owner
            return Board(
                scope, project["id"], str(project.get("title") or ""), str(project["updatedAt"])
            )
    raise ProjectLost(f"no organisation or user {login!r} has project {number} in reach")


class ProjectsPull:
    """The project side of one GitHub connector run."""

    def __init__(self, connector: str, gql: GraphQL, reader: BoardReader) -> None:
        self.connector = connector
        self.gql = gql
        self.reader = reader
        self.all_boards = False

    async def listing(
        self, board: Board, state: GitHubCursor, census: Census | None
    ) -> AsyncIterator[Page]:
        """The board's changed items, page by page (nothing but the cursor if unchanged)."""
        pst = state.project(board.scope)
        if pst.pending is None:
            if census is None and board.updated == pst.seen:
                yield Page(items=[], cursor=state.dump(), scope=board.scope)
                return
            pst.pending = ProjectPass(board.updated, pst.seen, census is not None)
        prog = pst.pending
        whole = prog.after is None  # a listing from its first page: its ids are complete
        if census is not None and not (whole and prog.census):
            census.complete = False
        since = parse_time(prog.window) if prog.window else None
        seen = Census()  # this listing's ids by container
        guard = PageGuard(self.connector, board.scope, "project items", prog.after, limit=PAGE)
        query = items_query(self.all_boards)
        while True:
            nodes, nxt = await self._items(board, prog.after, query)
            listed = self.reader.page(board, nodes, since)
            self._log_skipped(board.scope, listed.skipped)
            seen.add(listed.ids)
            guard.step(_node_ids(nodes), nxt)
            prog.after = nxt
            page = Page(items=listed.items, cursor={}, scope=board.scope)
            if nxt is None:
                self._finish(board, pst, prog, state, seen.ids, whole, page, census)
            page.cursor = state.dump()
            for ready in guard.hold(page):
                yield ready
            if nxt is None:
                return

    def _finish(
        self,
        board: Board,
        pst: ProjectState,
        prog: ProjectPass,
        state: GitHubCursor,
        ids: dict[str, IdList],
        whole: bool,
        page: Page,
        census: Census | None,
    ) -> None:
        """Close a listing: move the watermark; a whole listing is the census of its drafts
        and names the unlisted repos on the board."""
        pst.pending, pst.seen = None, prog.start
        if not whole:
            return
        page.census = {board.scope: ids.pop(board.scope, IdList())}
        repos = set(self.reader.repos.values())
        for repo in ids:
            if repo not in repos and repo not in state.board_repos:
                state.board_repos.append(repo)
        if census is not None and prog.census:
            census.add(ids)

    async def _items(
        self, board: Board, after: str | None, query: str
    ) -> tuple[list[Json], str | None]:
        data = await self.gql.query(
            f"the items of {board.scope}", query, {"id": board.id, "after": after}
        )
        conn = ((data.get("node") or {}).get("items")) or {}
        nodes = [n for n in conn.get("nodes") or [] if isinstance(n, dict)]
        info = conn.get("pageInfo") or {}
        nxt = info.get("endCursor") if info.get("hasNextPage") else None
        return nodes, nxt if isinstance(nxt, str) else None

    def census_page(self, state: GitHubCursor, census: Census) -> Page | None:
        """The census of the unlisted repos seen on the boards, once every board was listed
        whole in this run: their items on no board any more are deleted."""
        if not census.complete:
            return None
        listed = self.reader.repos  # a repo now in the repo scopes has its own census
        state.board_repos = [r for r in state.board_repos if fold(r) not in listed]
        present = {r: census.ids.get(r, IdList()) for r in state.board_repos}
        state.board_repos = [r for r in state.board_repos if len(present[r])]
        state.project_runs = 0
        log.info("github.board_census", connector=self.connector, repos=len(present))
        return Page(items=[], cursor=state.dump(), scope="projects", census=present)

    async def enrich(self, scope: str, issues: list[Json], items: list[WorkItem]) -> None:
        """Give a REST page's issues and PRs their boards (one `nodes(ids:)` request)."""
        node_of = {
            str(raw["id"]): raw["node_id"]
            for raw in issues
            if isinstance(raw.get("node_id"), str) and "id" in raw
        }
        if not node_of:
            return
        data = await self.gql.query(
            f"the boards of {scope}'s issues", NODES_QUERY, {"ids": list(node_of.values())}
        )
        found = {n["id"]: n for n in data.get("nodes") or [] if isinstance(n, dict) and "id" in n}
        for item in items:
            if item.kind in (ItemKind.ISSUE, ItemKind.PULL_REQUEST):
                node = found.get(node_of.get(item.external_id, ""))
                if node is not None:
                    self.reader.apply(item, self.reader.entries(node))

    def _log_skipped(self, scope: str, skipped: list[Skipped]) -> None:
        for bad in skipped:
            log.warning(
                "github.payload_skipped",
                connector=self.connector,
                scope=scope,
                id=bad.id,
                error=bad.error,
            )


def _node_ids(nodes: list[Json]) -> list[str]:
    """The page's board item ids, for the loop guard (whether or not they are yielded)."""
    return [str(n.get("id")) for n in nodes]
