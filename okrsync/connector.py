"""The connector seam: a protocol every tracker plug-in implements, and entry-point discovery.

A connector is built from its config section and the core's `Http` (the shared
`httpx.AsyncClient` wrapped with auth, pacing, the one retry policy and error translation, so a
plug-in cannot bypass them). `pull(cursor)` is an async generator of `Page`s; each page carries
the cursor as it stands once that page is stored, and the core commits both together.
"""

from __future__ import annotations

import difflib
from collections.abc import AsyncIterator
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

from okrsync.errors import ConfigError

if TYPE_CHECKING:
    from okrsync.config import ConnectorConfig
    from okrsync.http import Http
    from okrsync.models import Cursor, Page

GROUP = "okrsync.connectors"


@runtime_checkable
class Connector(Protocol):
    """What the core needs from a tracker plug-in."""

    kind: ClassVar[str]

    def __init__(self, config: ConnectorConfig, http: Http) -> None: ...

    def pull(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        """Yield pages of normalised items from `cursor` on (None: from the beginning)."""
        ...


def installed_types() -> list[str]:
    """The connector types installed: entry-point names in group `okrsync.connectors`."""
    return sorted(ep.name for ep in entry_points(group=GROUP))


def unknown_type(kind: str) -> str | None:
    """None when a plug-in registers `kind`, else what is wrong and the fix (did-you-mean)."""
    names = installed_types()
    return None if kind in names else _unknown(kind, names)


def _unknown(kind: str, names: list[str]) -> str:
    close = difflib.get_close_matches(kind, names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    known = ", ".join(names) or "none installed"
    return f"unknown connector type {kind!r}; {hint}installed types: {known}"


def load(kind: str) -> type[Connector]:
    """The connector class registered as `kind`, or a ConfigError listing what exists."""
    eps = {ep.name: ep for ep in entry_points(group=GROUP)}
    if kind not in eps:
        raise ConfigError(_unknown(kind, sorted(eps)))
    cls: type[Connector] = eps[kind].load()
    return cls
