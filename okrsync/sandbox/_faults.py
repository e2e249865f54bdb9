"""Fault injection: queued faults per tracker, each consumed by the requests it affects.

Transport faults ("403"/"404", "429" (`retry_after`: seconds or None, `reset_after`),
"500"/"502"/"503", "slow", "reset", "truncate", "invalid_json",
"expire_token") are taken by the server before routing; cursor faults ("expire_page_token",
"expire_offset", "expire_sync_token") are taken by the vendor handler only when the request
actually carries such a token. GitHub's GraphQL faults ("graphql_rate_limited",
"graphql_secondary", "graphql_partial") are taken by `POST /graphql` only (see `_graphql.py`).

Hostile faults make a tracker lie on purpose, in the vendor's own response shapes; each is
taken by the vendor handler on the requests it can affect (`HOSTILE_TRACKERS` says where):

* `offorigin_link`: the URLs a response hands out point at `origin` (default: the sandbox's
  witness listener, see `Sandbox.witness`). GitHub: the `Link` rel="next" URL; Asana:
  `next_page.uri`; Jira: every `self` URL and serverInfo's `baseUrl`.
* `loop_link` (GitHub; Asana tasks, sections and events; Jira Cloud search): a listing that
  never ends. GitHub: `mode="repeat"` answers each page with a next link to itself;
  `mode="count"` serves the first page's items on every page with a next link counting up;
  `mode="alternate"` serves them with next links alternating between pages 2 and 3;
  `mode="empty"` serves no items after page 1, next links counting up. `extra` (repeat): a
  raw query appended once to the repeated link. Asana and Jira serve the first page's items
  (none after the first page for `empty`; for events, the first 3 tasks as `changed`) with a
  next offset / nextPageToken / events sync token (`has_more: true`) that is the same every
  time (`repeat`; events: the fault's `token` when given), alternates A/B (`alternate`) or is
  fresh on each page (`count`, `empty`). Jira: `jql` (default any) limits the fault to
  searches whose JQL contains it; `path_contains` picks the Asana listing.
* `alternate_offset` (Asana tasks) / `alternate_token` (Jira Cloud search): the next
  offset / nextPageToken alternates between two values A and B, the first page's items each
  time.
* `events_forever` (Asana): `/events` answers the same events with `has_more: true` and a
  fresh, valid sync token, forever.
* `huge_total` (Jira DC): `total` is 1e9; `mode="same"` (default): every page repeats the
  first page's issues; `"stuck"`: the same, each answer claiming `startAt` 0; `"short"`: the
  page at the offset asked, cut to `size` (default 2) issues under the `maxResults` asked;
  `"empty"`: no issues. `jql` as for `loop_link`.
* `huge_page`: one page carries `items` (default 200,000) generated items, whatever page
  size was asked for.
* `huge_field`: the target item's title is `size` characters (default 5 MB).
* `escapes`: the target item's title, labels and assignee carry terminal escape sequences
  (clear screen, an OSC 8 link, a C1 CSI, BEL).
* `missing_fields` (Jira): the target issue comes without the `fields` named in `fields`
  (default created and status), as an issue a field configuration or a proxy stripped.

The target of `huge_field` / `escapes` / `missing_fields` is the item with `external_id` (the
vendor's numeric id) when given, else the first item of the page; the fault is taken only by a
page that holds its target. A fault meant to last a whole run takes a large `count`; a test
clears it (`Sandbox.clear_faults`) before checking that the next run recovers.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TRANSPORT_FAULTS = frozenset(
    {
        "403",
        "404",
        "429",
        "500",
        "502",
        "503",
        "slow",
        "reset",
        "truncate",
        "invalid_json",
        "expire_token",
    }
)
CURSOR_FAULTS = frozenset({"expire_page_token", "expire_offset", "expire_sync_token"})
# GitHub GraphQL (`_graphql.py` describes them): taken only by `POST /graphql`.
GRAPHQL_FAULTS = frozenset({"graphql_rate_limited", "graphql_secondary", "graphql_partial"})
_EVERY = frozenset({"jira", "jira_dc", "asana", "github"})
# The metric servers (`metrics.py`) take the transport faults, `offorigin_link` (a redirect)
# and their own metric faults, described there.
METRIC_TRACKERS = frozenset({"prometheus", "metrics_json"})
METRIC_FAULT_TRACKERS: dict[str, frozenset[str]] = {
    "nan": METRIC_TRACKERS,
    "empty": METRIC_TRACKERS,
    "two_series": frozenset({"prometheus"}),
    "error_status": frozenset({"prometheus"}),
}
HOSTILE_TRACKERS: dict[str, frozenset[str]] = {
    "offorigin_link": _EVERY | {"prometheus"},
    "loop_link": frozenset({"github", "asana", "jira"}),
    "alternate_offset": frozenset({"asana"}),
    "events_forever": frozenset({"asana"}),
    "alternate_token": frozenset({"jira"}),
    "huge_total": frozenset({"jira_dc"}),
    "huge_page": _EVERY,
    "huge_field": _EVERY,
    "escapes": _EVERY,
    "missing_fields": frozenset({"jira", "jira_dc"}),
}
HOSTILE_FAULTS = frozenset(HOSTILE_TRACKERS)
ITEM_FAULTS = frozenset({"huge_field", "escapes", "missing_fields"})
ALL_FAULTS = (
    TRANSPORT_FAULTS
    | CURSOR_FAULTS
    | HOSTILE_FAULTS
    | GRAPHQL_FAULTS
    | frozenset(METRIC_FAULT_TRACKERS)
)

HUGE_PAGE_ITEMS = 200_000
HUGE_FIELD_CHARS = 5 * 1024 * 1024
# Clear screen + home, an OSC 8 hyperlink (BEL-terminated), a C1 CSI (U+009B) and a bell.
CLEAR = "\x1b[2J\x1b[H"
OSC8 = "\x1b]8;;https://evil.example/\x07click here\x1b]8;;\x07"
CSI_C1 = "\x9b31m"
BEL = "\x07"


@dataclass(slots=True)
class Fault:
    """One queued fault: `count` more requests whose path contains `path_contains`."""

    kind: str
    count: int
    params: dict[str, Any] = field(default_factory=dict)
    path_contains: str = ""


def applies_to(kind: str) -> frozenset[str]:
    """The trackers a fault `kind` may be injected on."""
    if kind in METRIC_FAULT_TRACKERS:
        return METRIC_FAULT_TRACKERS[kind]
    if kind in TRANSPORT_FAULTS:
        return _EVERY | METRIC_TRACKERS
    if kind in GRAPHQL_FAULTS:
        return frozenset({"github"})
    return HOSTILE_TRACKERS.get(kind, _EVERY)


class FaultQueue:
    """Thread-safe queue of faults per tracker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, list[Fault]] = {}
        self.fired: dict[str, int] = {}

    def add(self, tracker: str, kind: str, count: int, params: dict[str, Any]) -> None:
        if kind not in ALL_FAULTS:
            raise ValueError(f"unknown fault {kind!r}; known: {sorted(ALL_FAULTS)}")
        where = applies_to(kind)
        if tracker not in where:
            raise ValueError(
                f"fault {kind!r} does not apply to {tracker!r}; it does to {sorted(where)}"
            )
        path_contains = str(params.pop("path_contains", ""))
        with self._lock:
            self._faults.setdefault(tracker, []).append(
                Fault(kind, count, dict(params), path_contains)
            )

    def take(
        self,
        tracker: str,
        path: str,
        kinds: frozenset[str],
        accept: Callable[[Fault], bool] | None = None,
    ) -> Fault | None:
        """Consume one use of the first queued fault of `kinds` matching `path` (and
        `accept`, when given)."""
        with self._lock:
            for fault in self._faults.get(tracker, []):
                if fault.kind not in kinds or fault.path_contains not in path:
                    continue
                if accept is not None and not accept(fault):
                    continue
                fault.count -= 1
                if fault.count <= 0:
                    self._faults[tracker].remove(fault)
                self.fired[fault.kind] = self.fired.get(fault.kind, 0) + 1
                return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


# --- what hostile faults serve (shared by the vendor modules) -------------------------------


def jql_in(jql: str) -> Callable[[Fault], bool]:
    """Accepts a Jira fault whose `jql` parameter (default: any) is part of `jql`."""
    return lambda fault: str(fault.params.get("jql", "")) in jql


def elsewhere(base: str, origin: str) -> str:
    """`base` (scheme://host:port/prefix) with its scheme, host and port replaced by `origin`."""
    parts = urllib.parse.urlsplit(base)
    return origin.rstrip("/") + urllib.parse.urlunsplit(("", "", parts.path, parts.query, ""))


def targets(fault: Fault, ids: list[int]) -> int | None:
    """The id among `ids` (a page's records, in order) that an item fault rewrites."""
    wanted = fault.params.get("external_id")
    if wanted is None:
        return ids[0] if ids else None
    return int(wanted) if int(wanted) in ids else None


def hostile_title(fault: Fault, title: str) -> str:
    """The title an item fault serves instead of `title`."""
    if fault.kind == "huge_field":
        size = int(fault.params.get("size", HUGE_FIELD_CHARS))
        unit = f"HUGE {title} "
        return (unit * (size // len(unit) + 1))[:size]
    return f"{CLEAR}{title}{OSC8}{CSI_C1} red{BEL} end"


def hostile_label(fault: Fault, label: str) -> str:
    return label if fault.kind == "huge_field" else f"\x1b[31m{label}\x1b[0m{BEL}"


def hostile_person(fault: Fault, name: str) -> str:
    return name if fault.kind == "huge_field" else f"{name}{BEL}{CLEAR}"
