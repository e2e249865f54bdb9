"""What every connector does alike around one scope (a repository, a project).

- A scope whose own listing answers 404/410, or 403 (no access), or a redirect, is *lost*:
  `lost_scope` logs `<kind>.scope_lost` and gives the one page that reports it
  (`lost_scopes=[scope]`, the cursor as it stands), never deletions; the run goes on with the
  other scopes. `out_of_reach` sorts the core's errors (401 still fails the run).
- A listing whose paging position (link, token, offset) the tracker refuses restarts from its
  window: `Restarts.again` logs the restart, and past `MAX_RESTARTS` in a row raises
  `CursorRejected`, failing the run (its cursor stays; the next run starts the listing again).
- A census (a full listing of ids, for deletions) is due every `census_every` runs:
  `census_due`.
"""

from __future__ import annotations

import structlog

from okrsync.errors import AuthError, ConnectorError, CursorRejected, NotFound
from okrsync.models import Cursor, Page

log = structlog.get_logger("okrsync.connectors")
MAX_RESTARTS = 3


def lost_scope(kind: str, connector: str, scope: str, cursor: Cursor, **why: object) -> Page:
    """The page reporting `scope` out of reach (logged as `<kind>.scope_lost`)."""
    log.warning(f"{kind}.scope_lost", connector=connector, scope=scope, **why)
    return Page(items=[], cursor=cursor, scope=scope, lost_scopes=[scope])


def out_of_reach(exc: ConnectorError) -> bool:
    """404/410, or 403 on the scope's own listing: the scope is lost, not the credential."""
    return isinstance(exc, NotFound) or (isinstance(exc, AuthError) and exc.status == 403)


def census_due(runs: int, census_every: int) -> bool:
    """`runs` counted since the last census (this one included) reach `census_every`."""
    return runs >= census_every


class Restarts:
    """Restarts of one listing whose paging position the tracker refused."""

    def __init__(self, kind: str, connector: str, scope: str, what: str) -> None:
        self.kind, self.connector, self.scope, self.what = kind, connector, scope, what
        self.count = 0

    def again(self, event: str, reason: str, *, url: str = "", status: int | None = None) -> None:
        """One more restart (logged as `<kind>.<event>`), or `CursorRejected` past the limit."""
        self.count += 1
        if self.count > MAX_RESTARTS:
            raise CursorRejected(
                f"{self.what} refused {self.count} times in a row ({reason}); the next run "
                "starts this listing again from its stored window",
                connector=self.connector,
                url=url,
                status=status,
            )
        log.warning(
            f"{self.kind}.{event}",
            connector=self.connector,
            scope=self.scope,
            restart=self.count,
            reason=reason,
        )
