"""Fault injection: queued faults per tracker, each consumed by the requests it affects.

Transport faults ("429", "500"/"502"/"503", "slow", "reset", "truncate", "invalid_json",
"expire_token") are taken by the server before routing; cursor faults ("expire_page_token",
"expire_offset", "expire_sync_token") are taken by the vendor handler only when the request
actually carries such a token.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

TRANSPORT_FAULTS = frozenset(
    {"429", "500", "502", "503", "slow", "reset", "truncate", "invalid_json", "expire_token"}
)
CURSOR_FAULTS = frozenset({"expire_page_token", "expire_offset", "expire_sync_token"})
ALL_FAULTS = TRANSPORT_FAULTS | CURSOR_FAULTS


@dataclass(slots=True)
class Fault:
    """One queued fault: `count` more requests whose path contains `path_contains`."""

    kind: str
    count: int
    params: dict[str, Any] = field(default_factory=dict)
    path_contains: str = ""


class FaultQueue:
    """Thread-safe queue of faults per tracker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, list[Fault]] = {}
        self.fired: dict[str, int] = {}

    def add(self, tracker: str, kind: str, count: int, params: dict[str, Any]) -> None:
        if kind not in ALL_FAULTS:
            raise ValueError(f"unknown fault {kind!r}; known: {sorted(ALL_FAULTS)}")
        path_contains = str(params.pop("path_contains", ""))
        with self._lock:
            self._faults.setdefault(tracker, []).append(
                Fault(kind, count, dict(params), path_contains)
            )

    def take(self, tracker: str, path: str, kinds: frozenset[str]) -> Fault | None:
        """Consume one use of the first queued fault of `kinds` matching `path`."""
        with self._lock:
            for fault in self._faults.get(tracker, []):
                if fault.kind in kinds and fault.path_contains in path:
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults[tracker].remove(fault)
                    self.fired[fault.kind] = self.fired.get(fault.kind, 0) + 1
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
