"""The Asana plug-in's settings: the common keys, scopes that are project gids, and the
deprecated `workspace`."""

from __future__ import annotations

import re

from okrsync.config import ConnectorConfig

SCOPE_SHAPE = re.compile(r"[0-9]{1,32}")
SHAPE = "an Asana project gid (the digits in the project's URL, app.asana.com/0/<gid>/...)"


class AsanaConfig(ConnectorConfig):
    """A `type = "asana"` section."""

    # Documented since the first release as "Asana only: workspace gid (optional)" but never
    # read: projects are named by gid in `scope`. Still accepted so old files load; a sync
    # logs `asana.workspace_ignored` (at load time no log sink is configured yet).
    workspace: str | None = None

    @classmethod
    def scope_problem(cls, scope: str) -> str | None:
        return None if SCOPE_SHAPE.fullmatch(scope) else f"scope {scope!r} is not {SHAPE}"
