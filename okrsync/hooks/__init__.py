"""Webhooks in (docs/webhooks.md): signed tracker deliveries as hints for the daemon.

    verify     pure: a delivery's HMAC-SHA256 signature against a secret, per tracker
    events     pure: a verified body → `Delivery` (what to do, its scope, deleted item ids)
    dispatch   the daemon's side: coalesced webhook runs, deletions applied at once

`HookSink` is what the web routes (okrsync.web.hooks) hand verified deliveries to; the
daemon's `dispatch.Dispatcher` is the one implementation. This module stays light: the web
layer imports it, never `dispatch` (which reaches the pipeline).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from okrsync.config import ConnectorConfig

KINDS = ("github", "jira", "asana")


class HookSink(Protocol):
    """The daemon as the hook routes see it."""

    def connectors(self) -> Sequence[ConnectorConfig]:
        """The enabled connectors of the current configuration."""
        ...

    def stored_secret(self, connector: str) -> str | None:
        """The secret a handshake stored for `connector` (Asana), if any."""
        ...

    def handshake_open(self, connector: str) -> bool:
        """Whether an Asana handshake is expected for `connector` now."""
        ...

    def accept_handshake(self, connector: str, secret: str) -> bool:
        """Store a handshake's secret while one is expected; False when none is."""
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
