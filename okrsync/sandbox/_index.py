"""Per-scope lists of live records sorted by (updated, id), searched with bisect.

Serving a page over one scope is O(log n + page); several scopes are merged lazily.
"""

from __future__ import annotations

import heapq
import itertools
from bisect import bisect_left
from collections.abc import Iterable, Iterator

from okrsync.sandbox._data import Rec


class ScopeIndex:
    """Live (not deleted) records of one tracker, one sorted list per scope."""

    def __init__(self) -> None:
        self._keys: dict[str, list[tuple[int, int]]] = {}
        self._recs: dict[str, list[Rec]] = {}

    def add(self, rec: Rec) -> None:
        keys = self._keys.setdefault(rec.scope, [])
        recs = self._recs.setdefault(rec.scope, [])
        i = bisect_left(keys, rec.sort_key)
        keys.insert(i, rec.sort_key)
        recs.insert(i, rec)

    def remove(self, rec: Rec) -> None:
        keys, recs = self._keys[rec.scope], self._recs[rec.scope]
        i = bisect_left(keys, rec.sort_key)
        if i < len(recs) and recs[i] is rec:
            del keys[i]
            del recs[i]

    def bulk_load(self, recs: Iterable[Rec]) -> None:
        for rec in recs:
            self._recs.setdefault(rec.scope, []).append(rec)
        for scope, lst in self._recs.items():
            lst.sort(key=lambda r: r.sort_key)
            self._keys[scope] = [r.sort_key for r in lst]

    def start(self, scope: str, min_ms: int) -> int:
        return bisect_left(self._keys.get(scope, []), (min_ms, -1))

    def count(self, scopes: Iterable[str], min_ms: int) -> int:
        return sum(len(self._keys.get(s, [])) - self.start(s, min_ms) for s in scopes)

    def window(self, scopes: list[str], min_ms: int, offset: int, limit: int) -> list[Rec]:
        """Records with updated >= min_ms over `scopes`, in (updated, id) order, sliced."""
        if len(scopes) == 1:
            s = scopes[0]
            begin = self.start(s, min_ms) + offset
            return self._recs.get(s, [])[begin : begin + limit]
        return list(itertools.islice(self.iter(scopes, min_ms), offset, offset + limit))

    def iter(self, scopes: list[str], min_ms: int) -> Iterator[Rec]:
        parts = [
            itertools.islice(self._recs.get(s, []), self.start(s, min_ms), None) for s in scopes
        ]
        return heapq.merge(*parts, key=lambda r: r.sort_key)
