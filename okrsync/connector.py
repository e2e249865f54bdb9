"""The connector seam: a protocol every tracker plug-in implements, and entry-point discovery.

A connector is built from its config section and the core's `Http` (the shared
`httpx.AsyncClient` wrapped with auth, pacing, the one retry policy and error translation, so a
plug-in cannot bypass them). `pull(cursor)` is an async generator of `Page`s; each page carries
the cursor as it stands once that page is stored, and the core commits both together.

A plug-in brings its own settings: `Config`, a subclass of `okrsync.config.ConnectorConfig`
with its extra keys and its scope rule, validates its `[[connectors]]` section. Its class may
also declare `default_in_flight` (requests in flight per credential), `largest_page` and
`items_per_record` (what `page_size` may ask for, and how many items one tracker record may
become); undeclared, the core assumes 4, 1,000 and 1. `status_vocabulary` (raw status,
section or label name → StatusCategory) names what its teams' names commonly mean
(`okrsync.statuses`); undeclared, none. A plug-in package that also exports
`Config` at its top level lets commands that never sync read the section without importing
the connector itself (its HTTP stack). Webhooks are optional: a package (or class) attribute
`webhooks` satisfying `Webhooks` lets `okrsync hooks show|register` name and register them;
without it those commands say "not supported" and everything else works as before.
"""

from __future__ import annotations

import difflib
import importlib
import urllib.parse
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, ClassVar, Protocol, TypeVar, runtime_checkable

from okrsync.errors import ConfigError

if TYPE_CHECKING:
    from okrsync.config import ConnectorConfig
    from okrsync.http import Http
    from okrsync.models import Cursor, Page
    from okrsync.statuses import StatusNames

GROUP = "okrsync.connectors"
DEFAULT_IN_FLIGHT = 4
UNDECLARED_PAGE = 1000  # the largest `page_size` accepts
D = TypeVar("D")


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


def _entry(kind: str) -> EntryPoint:
    eps = {ep.name: ep for ep in entry_points(group=GROUP)}
    if kind not in eps:
        raise ConfigError(_unknown(kind, sorted(eps)))
    return eps[kind]


def load(kind: str) -> type[Connector]:
    """The connector class registered as `kind`, or a ConfigError listing what exists."""
    cls: type[Connector] = _entry(kind).load()
    return cls


def config_model(kind: str) -> type[ConnectorConfig]:
    """The settings model of plug-in `kind`: its package's `Config`, else its class's `Config`,
    else the common keys only (`ConnectorConfig`)."""
    from okrsync.config import ConnectorConfig

    def model(owner: object) -> type[ConnectorConfig] | None:
        found = getattr(owner, "Config", None)
        ok = isinstance(found, type) and issubclass(found, ConnectorConfig)
        return found if ok else None

    return _find_in_plugin(kind, model) or ConnectorConfig


def _find_in_plugin(kind: str, find: Callable[[object], D | None]) -> D | None:
    """What plug-in `kind` declares: `find` on its package first, then on its class, which
    is loaded only when the package has none (the class imports the whole connector, HTTP
    and GraphQL included, too heavy for commands that only read the config)."""
    ep = _entry(kind)
    return find(importlib.import_module(ep.module)) or find(ep.load())


def status_names(config: ConnectorConfig) -> StatusNames:
    """What each raw name means for this connector: its plug-in's declared
    `status_vocabulary`, then the section's `dropped_statuses`, then its `status_map`."""
    from okrsync.statuses import StatusNames

    vocabulary = getattr(load(config.type), "status_vocabulary", None)
    return StatusNames.build(
        vocabulary if isinstance(vocabulary, Mapping) else {},
        config.dropped_statuses,
        config.status_map,
    )


@dataclass(frozen=True, slots=True)
class HookTarget:
    """One webhook the tracker holds for okrsync: where (a repo, a project, a JQL filter),
    its id there, and whether `register` created it now (False: it already existed)."""

    where: str
    hook_id: str
    created: bool = False


@runtime_checkable
class Webhooks(Protocol):
    """A plug-in's webhook support (optional; docs/webhooks.md, `okrsync hooks`).

    `route`: the daemon's route kind (`/hooks/<route>/<connector>`); `content_type` and
    `needs` (what the token must be allowed, for `hooks show`); `handshake`: the tracker
    proves the receiver before it creates a hook (Asana), so the caller opens the daemon's
    handshake window first, one per scope entry, and the plug-in targets each hook at
    `<url>?resource=<scope entry>` (the daemon keeps each hook's secret under it).
    `existing` and `register` go through the core's `Http`, with the connector's own auth
    headers already set; both raise the core's `ConnectorError`s."""

    route: str
    content_type: str
    needs: str
    handshake: bool

    def events(self, config: ConnectorConfig) -> list[str]:
        """The events to register for this connector's scope."""
        ...

    async def existing(self, config: ConnectorConfig, http: Http, url: str) -> list[HookTarget]:
        """The hooks the tracker already holds that deliver to `url` (reads only)."""
        ...

    async def register(
        self, config: ConnectorConfig, http: Http, url: str, secret: str | None
    ) -> list[HookTarget]:
        """Create the hooks missing for `url` (one per scope, or one filtered); idempotent."""
        ...


def resource_url(url: str, resource: str) -> str:
    """A handshake tracker's hook target for one scope entry: `<url>?resource=<entry>`, under
    which the daemon keeps that hook's secret (`Webhooks.handshake`)."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}{urllib.parse.urlencode({'resource': resource})}"


def webhooks(kind: str) -> Webhooks | None:
    """Plug-in `kind`'s webhook support: its package's `webhooks`, else its class's; None
    when it declares none."""

    def support(owner: object) -> Webhooks | None:
        found = getattr(owner, "webhooks", None)
        return found if isinstance(found, Webhooks) else None

    return _find_in_plugin(kind, support)


def declared(plugin: object, name: str, default: int) -> int:
    """A positive whole number the plug-in class declares as `name`, else `default`."""
    value = getattr(plugin, name, None)
    return (
        value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default
    )
