"""The connector seam: a protocol every tracker plug-in implements, and entry-point discovery.

A connector is built from its config section and the core's `Http` (the shared
`httpx.AsyncClient` wrapped with auth, pacing, the one retry policy and error translation, so a
plug-in cannot bypass them). `pull(cursor)` is an async generator of `Page`s; each page carries
the cursor as it stands once that page is stored, and the core commits both together.
"""

from __future__ import annotations

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


def load(kind: str) -> type[Connector]:
    """The connector class registered as `kind`, or a ConfigError listing what exists."""
    eps = {ep.name: ep for ep in entry_points(group=GROUP)}
    if kind not in eps:
        known = ", ".join(sorted(eps)) or "none installed"
        raise ConfigError(f"unknown connector type {kind!r}; installed types: {known}")
    cls: type[Connector] = eps[kind].load()
    return cls
