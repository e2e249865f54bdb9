"""Links: which tactics' rules each work item meets, as pure functions over items and rules.

    derive(items, matcher)            every link of a whole set of items (remap, preview)
    link_page(items, lineage, matcher) the links of one synced page, given what the store
                                      knows of its items' keys and ancestors (`Store.lineage`)

No tracker and no store is called here: the pipeline reads what these need from the store and
writes what they return. Ancestors (for `epic` and `parent`) are resolved along `parent_key`
within each connector, through the items' current and earlier keys.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from okrsync.mapping import Link, Matcher
from okrsync.models import KeyNode, Lineage, StoredItem, WorkItem
from okrsync.okrfile import no_cycle_collection

MAX_DEPTH = 20
ItemId = tuple[str, str]  # (connector, external_id)
Linker = Callable[[Sequence[WorkItem]], Mapping[str, Sequence[Link]]]


# -- ancestors ------------------------------------------------------------------------------


class Keyed(Protocol):
    """What the ancestry reads of a node: a KeyNode, or an item itself."""

    @property
    def key(self) -> str: ...
    @property
    def parent_key(self) -> str | None: ...
    @property
    def previous_keys(self) -> tuple[str, ...]: ...


class Ancestry:
    """Keys of every ancestor along parent_key, per connector, memoised."""

    def __init__(self) -> None:
        self.nodes: dict[tuple[str, str], Keyed] = {}
        self._chains: dict[tuple[str, str], frozenset[str]] = {}

    def add(self, connector: str, node: Keyed, *, current: bool = True) -> None:
        """Know `node` by its key (replacing) and by its earlier keys (never replacing)."""
        if current or (connector, node.key) not in self.nodes:
            self.nodes[(connector, node.key)] = node
        for old in node.previous_keys:
            self.nodes.setdefault((connector, old), node)
        self._chains.clear()

    def chain(self, connector: str, parent_key: str | None) -> frozenset[str]:
        """Keys and earlier keys of `parent_key` and of every ancestor above it."""
        if not parent_key:
            return frozenset()
        path: list[str] = []
        cur: str | None = parent_key
        while cur and (connector, cur) not in self._chains and cur not in path:
            path.append(cur)
            node = self.nodes.get((connector, cur))
            cur = node.parent_key if node and len(path) < MAX_DEPTH else None
        tail = self._chains.get((connector, cur), frozenset()) if cur else frozenset()
        for key in reversed(path):
            tail = tail | self.own_keys(connector, key)
            self._chains[(connector, key)] = tail
        return self._chains[(connector, parent_key)]

    def own_keys(self, connector: str, key: str) -> frozenset[str]:
        node = self.nodes.get((connector, key))
        return frozenset((key, node.key, *node.previous_keys)) if node else frozenset((key,))

    def earlier_keys(self, connector: str, key: str | None) -> tuple[str, ...]:
        """Other keys of the item known as `key`: its current key if `key` is an old one,
        and its earlier keys."""
        node = self.nodes.get((connector, key)) if key else None
        if node is None:
            return ()
        return node.previous_keys if node.key == key else (node.key, *node.previous_keys)

    def match(self, matcher: Matcher, item: StoredItem | WorkItem) -> list[Link]:
        anc = self.chain(item.connector, item.parent_key)
        return matcher.match(item, anc, self.earlier_keys(item.connector, item.parent_key))


def derive(items: Iterable[StoredItem], matcher: Matcher) -> dict[ItemId, list[Link]]:
    """Links of every item, through ancestors found among `items`."""
    items = list(items)
    with no_cycle_collection():
        ancestry = Ancestry()
        for it in items:  # the items are their own nodes: no copy per item
            ancestry.add(it.connector, it)
        return {it.ident: ancestry.match(matcher, it) for it in items}


# -- one synced page ------------------------------------------------------------------------


def link_page(
    items: Sequence[WorkItem], lineage: Lineage, matcher: Matcher
) -> dict[str, list[Link]]:
    """Links of a page's items by external id: ancestors through the page and `lineage`."""
    views = [_with_previous(it, lineage.stored.get((it.connector, it.external_id))) for it in items]
    ancestry = Ancestry()
    for it in views:
        ancestry.add(it.connector, KeyNode(it.key, it.parent_key, it.previous_keys))
    for connector, node in lineage.ancestors:
        ancestry.add(connector, node, current=False)
    return {it.external_id: ancestry.match(matcher, it) for it in views}


def _with_previous(item: WorkItem, stored: KeyNode | None) -> WorkItem:
    """The item with the earlier keys the store knows (as the commit will record them)."""
    if stored is None:
        return item
    prev = [*item.previous_keys, *stored.previous_keys]
    if stored.key != item.key:
        prev.append(stored.key)
    return dataclasses.replace(item, previous_keys=tuple(dict.fromkeys(prev)))


# -- remap reports -------------------------------------------------------------------------------


@dataclass
class RemapReport:
    items: int = 0
    links: int = 0
    added: int = 0
    removed: int = 0
    per_tactic: dict[str, int] = field(default_factory=dict)


def tactic_counts(
    items: Iterable[StoredItem], links: Mapping[ItemId, Sequence[Link]]
) -> dict[str, int]:
    """Live work items per tactic (an item linked by several rules counts once)."""
    counts: dict[str, int] = defaultdict(int)
    for it in items:
        if it.is_work:
            for tactic in {t for t, _ in links.get(it.ident, ())}:
                counts[tactic] += 1
    return dict(sorted(counts.items()))
