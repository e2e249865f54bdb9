"""Prometheus metrics of the daemon, in a registry of its own (no process-global state).

Per connector: runs by outcome, run duration, pages, items created/updated/deleted, tracker
requests, retries, rate-limit waits, runs skipped because another replica held the
connector, seconds since the last successful run and cursor lag (now − the newest stored
`updated` of the connector). The two ages are computed when scraped.

Per key result with a source (the daemon's source jobs): readings by outcome
(`okrsync_source_readings_total{key_result,status}`, status ok|failed) and the time of the
last successful reading (`okrsync_source_last_success_timestamp_seconds`, epoch seconds).

Webhooks in: deliveries by connector and outcome (`okrsync_webhook_deliveries_total`;
docs/webhooks.md).

`okrsync_build_info{version}` is 1: the running version, to join on. prometheus_client's
`_created` series (each counter's creation timestamp, e.g. `okrsync_sync_items_created`,
which reads like a count of created items) are turned off, process-wide.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from okrsync import __version__
from okrsync.sync import RunResult

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
CHANGES = ("created", "updated", "deleted")


class Metrics:
    """The daemon's metrics; `observe(result)` after every run, `render()` per scrape."""

    def __init__(self) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        r, c = self.registry, ["connector"]
        self.runs = Counter(
            "okrsync_sync_runs", "Sync runs by outcome.", [*c, "status"], registry=r
        )
        self.duration = Histogram(
            "okrsync_sync_run_duration_seconds",
            "Wall time of a sync run.",
            c,
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.pages = Counter("okrsync_sync_pages", "Pages committed.", c, registry=r)
        self.items = Counter(
            "okrsync_sync_items", "Items stored by a run, by change.", [*c, "change"], registry=r
        )
        self.requests = Counter("okrsync_sync_requests", "Tracker requests.", c, registry=r)
        self.retries = Counter("okrsync_sync_retries", "Tracker requests retried.", c, registry=r)
        self.rate_wait = Counter(
            "okrsync_sync_rate_limit_wait_seconds",
            "Time spent waiting on rate limits.",
            c,
            registry=r,
        )
        self.skipped = Counter(
            "okrsync_sync_skipped",
            "Runs skipped: another replica held the connector.",
            c,
            registry=r,
        )
        self.since_success = Gauge(
            "okrsync_sync_seconds_since_last_success",
            "Seconds since the last ok run.",
            c,
            registry=r,
        )
        self.cursor_lag = Gauge(
            "okrsync_sync_cursor_lag_seconds",
            "Now minus the newest stored item update.",
            c,
            registry=r,
        )
        self.mapping_valid = Gauge(
            "okrsync_mapping_valid", "1 when the last mapping (re)load succeeded.", registry=r
        )
        self.source_readings = Counter(
            "okrsync_source_readings",
            "Key-result source readings by the daemon, by outcome.",
            ["key_result", "status"],
            registry=r,
        )
        self.source_last_ok = Gauge(
            "okrsync_source_last_success_timestamp_seconds",
            "When a key result's source last gave a reading (epoch seconds).",
            ["key_result"],
            registry=r,
        )
        self.notifications = Counter(
            "okrsync_notifications",
            "Notifications handled by the sender, by channel and outcome (sent, retry, failed).",
            ["channel", "outcome"],
            registry=r,
        )
        self.webhooks = Counter(
            "okrsync_webhook_deliveries",
            "Webhook deliveries by connector and outcome (docs/webhooks.md).",
            ["connector", "outcome"],
            registry=r,
        )
        build = Gauge("okrsync_build_info", "The running okrsync.", ["version"], registry=r)
        build.labels(__version__).set(1)
        self._last_ok: dict[str, float] = {}
        self._newest: dict[str, datetime] = {}

    def declare(self, connectors: Iterable[str]) -> None:
        """Create every series at zero, so a connector shows up before its first run."""
        for name in connectors:
            for status in ("ok", "failed", "interrupted"):
                self.runs.labels(name, status)
            for change in CHANGES:
                self.items.labels(name, change)
            for metric in (self.pages, self.requests, self.retries, self.rate_wait, self.skipped):
                metric.labels(name)

    def observe(self, r: RunResult) -> None:
        """Count one finished run."""
        name = r.connector
        self.runs.labels(name, r.status).inc()
        self.duration.labels(name).observe(r.duration_s)
        self.pages.labels(name).inc(r.pages)
        for change, n in zip(CHANGES, (r.created, r.updated, r.deleted), strict=True):
            self.items.labels(name, change).inc(n)
        self.requests.labels(name).inc(r.requests)
        self.retries.labels(name).inc(r.retries)
        self.rate_wait.labels(name).inc(r.rate_limit_wait_s)
        if r.status == "ok":
            self.last_success(name, time.time())

    def declare_source(self, key_result: str, last_ok: datetime | None) -> None:
        """Create a key result's source series at zero; its last good reading if known."""
        for status in ("ok", "failed"):
            self.source_readings.labels(key_result, status)
        if last_ok is not None:
            at = last_ok if last_ok.tzinfo else last_ok.replace(tzinfo=UTC)
            self.source_last_ok.labels(key_result).set(at.timestamp())

    def source_read(self, key_result: str, *, ok: bool) -> None:
        """Count one reading of a key result's source by the daemon."""
        self.source_readings.labels(key_result, "ok" if ok else "failed").inc()
        if ok:
            self.source_last_ok.labels(key_result).set(time.time())

    def notification(self, channel: str, outcome: str) -> None:
        """Count one notification the sender handled: sent, retry (planned) or failed."""
        self.notifications.labels(channel, outcome).inc()

    def webhook(self, connector: str, outcome: str) -> None:
        """Count one webhook delivery's outcome (`-`: no connector was resolved)."""
        self.webhooks.labels(connector, outcome).inc()

    def last_success(self, connector: str, at: float) -> None:
        """Remember when `connector` last finished ok (epoch seconds)."""
        self._last_ok[connector] = max(at, self._last_ok.get(connector, 0.0))

    def newest_updated(self, connector: str, when: datetime | None) -> None:
        """Remember the newest stored `updated` of `connector` (for the cursor lag)."""
        if when is not None:
            self._newest[connector] = when

    def render(self) -> bytes:
        """The Prometheus text exposition, with the ages computed now."""
        now = time.time()
        for name, at in self._last_ok.items():
            self.since_success.labels(name).set(max(0.0, now - at))
        wall = datetime.now(UTC)
        for name, newest in self._newest.items():
            self.cursor_lag.labels(name).set(max(0.0, (wall - newest).total_seconds()))
        return generate_latest(self.registry)
