"""Webhooks in (docs/webhooks.md): signed tracker deliveries as hints for the daemon.

    verify     pure: a delivery's HMAC-SHA256 signature against a secret, per tracker
    events     pure: a verified body → `Delivery` (what to do, its scope, deleted item ids)
    dispatch   the daemon's side: coalesced webhook runs, deletions applied at once

`HookSink` is what the web routes (okrsync.web.hooks) hand verified deliveries to; the
daemon's `dispatch.Dispatcher` is the one implementation. This module stays light: the web
layer imports it, never `dispatch` (which reaches the pipeline).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from okrsync.config import ConnectorConfig

KINDS = ("github", "jira", "asana")


class HookSink(Protocol):
    """The daemon as the hook routes see it."""

    def connectors(self) -> Sequence[ConnectorConfig]:
        """The enabled connectors of the current configuration."""
        ...

    def stored_secrets(self, connector: str) -> Mapping[str, str]:
        """The secrets handshakes stored for `connector` (Asana), by resource (the project
        gid a webhook watches; "" connector-wide)."""
        ...

    def handshake_open(self, connector: str, resource: str) -> bool:
        """Whether an Asana handshake is expected for (`connector`, `resource`) now."""
        ...

    def accept_handshake(self, connector: str, resource: str, secret: str) -> bool:
        """Store a handshake's secret for (`connector`, `resource`) while one is expected;
        False when none is."""
        ...

    def first_delivery(self, connector: str, delivery_id: str) -> bool:
        """Record a delivery id: False when `connector` had it within a day (a replay)."""
        ...

    def hint(self, connector: str, deleted: Sequence[str]) -> None:
        """Ask for a coalesced webhook run of `connector`; delete `deleted` items at once."""
        ...

    def count(self, connector: str, outcome: str) -> None:
        """Count one delivery's outcome (the metric)."""
        ...
