"""Links from stored items: `remap` (re-derive all), `make_linker` (per sync page), `preview`.

No tracker is ever called: rules are local predicates over what the store holds. Ancestors
(for `epic` and `parent`) are resolved along `parent_key` within each connector, through the
items' current and earlier keys.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from okrsync.errors import ConfigError
from okrsync.mapping import Link, Matcher, Rule
from okrsync.models import WorkItem
from okrsync.okrfile import Source, no_cycle_collection
from okrsync.store import ItemReader, LinkRow, Store, StoredItem

MAX_DEPTH = 20
SAMPLE = 5
ItemId = tuple[str, str]  # (connector, external_id)


# -- ancestors ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Node:
    key: str
    parent_key: str | None
    previous_keys: tuple[str, ...] = ()


class Keyed(Protocol):
    """What the ancestry reads of a node: a Node, or an item itself."""

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


# -- remap ----------------------------------------------------------------------------------


@dataclass
class RemapReport:
    items: int = 0
    links: int = 0
    added: int = 0
    removed: int = 0
    per_tactic: dict[str, int] = field(default_factory=dict)


def remap(store: Store, matcher: Matcher) -> RemapReport:
    """Re-derive every link from the stored items in one transaction; write only changes."""
    links: dict[ItemId, list[Link]] = {}

    def wanted_of(items: list[StoredItem]) -> set[LinkRow]:
        links.update(derive(items, matcher))
        return {(c, e, t, r) for (c, e), pairs in links.items() for t, r in pairs}

    done = store.relink(wanted_of)
    report = RemapReport(len(done.items), done.links, done.added, done.removed)
    report.per_tactic = tactic_counts(done.items, links)
    return report


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


# -- the sync linker ------------------------------------------------------------------------

Linker = Callable[[Sequence[WorkItem]], Mapping[str, Sequence[Link]]]


def make_linker(store: Store, matcher: Matcher) -> Linker:
    """A per-page linker: ancestors through the page and the store, a few queries per page."""

    def link(items: Sequence[WorkItem]) -> dict[str, list[Link]]:
        if not items:
            return {}
        with store.item_reader() as reader:
            known = _stored_keys(reader, items)
            views = [_with_previous(it, known.get(it.external_id)) for it in items]
            ancestry = _page_ancestry(reader, views)
        return {it.external_id: ancestry.match(matcher, it) for it in views}

    return link


def _stored_keys(reader: ItemReader, items: Sequence[WorkItem]) -> dict[str, Node]:
    """Stored key and earlier keys of the page's items (one query per connector and chunk)."""
    found: dict[str, Node] = {}
    for connector, ids in _by_connector((i.connector, i.external_id) for i in items).items():
        for ext, key, prev in reader.keys_of(connector, ids):
            found[ext] = Node(key, None, prev)
    return found


def _with_previous(item: WorkItem, stored: Node | None) -> WorkItem:
    """The item with the earlier keys the store knows (as commit_page will record them)."""
    if stored is None:
        return item
    prev = [*item.previous_keys, *stored.previous_keys]
    if stored.key != item.key:
        prev.append(stored.key)
    return dataclasses.replace(item, previous_keys=tuple(dict.fromkeys(prev)))


def _by_connector(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for connector, value in pairs:
        out[connector].append(value)
    return {c: sorted(set(v)) for c, v in out.items()}


def _page_ancestry(reader: ItemReader, items: Sequence[WorkItem]) -> Ancestry:
    """The page's items plus their stored ancestors, fetched level by level by key."""
    ancestry = Ancestry()
    for it in items:
        ancestry.add(it.connector, Node(it.key, it.parent_key, it.previous_keys))
    wanted = [(it.connector, it.parent_key) for it in items if it.parent_key]
    for _ in range(MAX_DEPTH):
        missing = _by_connector((c, k) for c, k in wanted if (c, k) not in ancestry.nodes)
        if not missing:
            break
        wanted = _fetch_parents(reader, ancestry, missing)
    return ancestry


def _fetch_parents(
    reader: ItemReader, ancestry: Ancestry, missing: Mapping[str, Sequence[str]]
) -> list[tuple[str, str]]:
    """Add the stored items with these keys; return their own parents' keys."""
    nxt: list[tuple[str, str]] = []
    for connector, keys in missing.items():
        for chunk, rows in reader.by_keys(connector, keys):
            for key, parent, prev in rows:
                ancestry.add(connector, Node(key, parent, prev), current=False)
                if parent:
                    nxt.append((connector, parent))
            for key in chunk:  # unknown keys end their chain: remember them as roots
                ancestry.nodes.setdefault((connector, key), Node(key, None))
    return nxt


# -- preview --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemRef:
    connector: str
    key: str
    title: str

    def __str__(self) -> str:
        return f"{self.key}  {self.title}"


@dataclass
class RulePreview:
    rule_id: str
    source: Source
    matches: int = 0
    only_here: int = 0
    sample: list[ItemRef] = field(default_factory=list)


@dataclass
class TacticPreview:
    tactic_id: str
    title: str
    items: int = 0
    rules: list[RulePreview] = field(default_factory=list)


@dataclass
class ContainerGroup:
    connector: str
    container: str
    name: str | None
    count: int = 0
    sample: list[ItemRef] = field(default_factory=list)


@dataclass
class Overlap:
    item: ItemRef
    tactics: tuple[str, ...]


@dataclass
class PreviewReport:
    items: int = 0
    tactics: list[TacticPreview] = field(default_factory=list)
    unmapped: list[ContainerGroup] = field(default_factory=list)
    overlaps: list[Overlap] = field(default_factory=list)
    unmatched_rules: list[Rule] = field(default_factory=list)

    @property
    def unmapped_count(self) -> int:
        return sum(g.count for g in self.unmapped)

    def warnings(self) -> list[str]:
        """Rules that match no stored item, and tactic pairs sharing items."""
        out = [
            f"{r.source}: rule {r.id!r} of tactic {r.tactic!r} matches none of the "
            f"{self.items} stored items; check its values against the tracker "
            "(`okrsync mappings preview` lists what is unmapped, by container)"
            for r in self.unmatched_rules
        ]
        pairs: dict[tuple[str, ...], list[ItemRef]] = defaultdict(list)
        for o in self.overlaps:
            pairs[o.tactics].append(o.item)
        for tactics, refs in sorted(pairs.items()):
            keys = ", ".join(r.key for r in refs[:3]) + (", ..." if len(refs) > 3 else "")
            out.append(
                f"{len(refs)} item(s) count for several tactics ({', '.join(tactics)}): {keys}; "
                "fine if intended, else narrow a rule or add an 'exclude'"
            )
        return out


def preview(
    store: Store,
    matcher: Matcher,
    tactic: str | None = None,
    *,
    titles: Mapping[str, str] | None = None,
) -> PreviewReport:
    """What the rules would link among the stored items; nothing is written."""
    items = store.stored_items()
    return analyse(items, matcher, tactic, titles=titles)


def analyse(
    items: Sequence[StoredItem],
    matcher: Matcher,
    tactic: str | None = None,
    *,
    titles: Mapping[str, str] | None = None,
) -> PreviewReport:
    """The preview of `items` under `matcher` (pure)."""
    titles = dict(titles) if titles is not None else {r.tactic: "" for r in matcher.rules}
    if tactic is not None and tactic not in titles:
        close = difflib.get_close_matches(tactic, list(titles), n=1)
        hint = f"did you mean {close[0]!r}?" if close else "see `okrsync okrs show`"
        raise ConfigError(f"no tactic {tactic!r} in the mapping files; {hint}")
    links = derive(items, matcher)
    live = [it for it in items if not it.deleted]
    work = [it for it in live if it.is_work]
    report = PreviewReport(items=len(work))
    report.unmatched_rules = _unmatched(matcher.rules, live, links)
    report.tactics = [
        _tactic_preview(tid, title, matcher.rules, work, links)
        for tid, title in sorted(titles.items())
        if tactic in (None, tid)
    ]
    report.overlaps = _overlaps(work, links, tactic)
    if tactic is None:
        report.unmapped = _unmapped(work, links)
    else:
        report.unmatched_rules = [r for r in report.unmatched_rules if r.tactic == tactic]
    return report


def _ref(it: StoredItem) -> ItemRef:
    return ItemRef(it.connector, it.key, it.title)


def _unmatched(
    rules: Sequence[Rule], live: Sequence[StoredItem], links: Mapping[ItemId, Sequence[Link]]
) -> list[Rule]:
    if not live:
        return []
    used = {link for it in live for link in links[it.ident]}
    return [r for r in rules if r.link not in used]


def _tactic_preview(
    tactic: str,
    title: str,
    rules: Sequence[Rule],
    work: Sequence[StoredItem],
    links: Mapping[ItemId, Sequence[Link]],
) -> TacticPreview:
    view = TacticPreview(tactic, title)
    by_rule = {r.id: RulePreview(r.id, r.source) for r in rules if r.tactic == tactic}
    for it in work:
        mine = [rid for t, rid in links[it.ident] if t == tactic]
        view.items += bool(mine)
        for rid in mine:
            rp = by_rule[rid]
            rp.matches += 1
            rp.only_here += len(mine) == 1
            if len(rp.sample) < SAMPLE:
                rp.sample.append(_ref(it))
    view.rules = sorted(by_rule.values(), key=lambda r: (r.source.file, r.source.line or 0))
    return view


def _overlaps(
    work: Sequence[StoredItem], links: Mapping[ItemId, Sequence[Link]], tactic: str | None
) -> list[Overlap]:
    out: list[Overlap] = []
    for it in work:
        tactics = tuple(sorted({t for t, _ in links[it.ident]}))
        if len(tactics) > 1 and (tactic is None or tactic in tactics):
            out.append(Overlap(_ref(it), tactics))
    return out


def _unmapped(
    work: Sequence[StoredItem], links: Mapping[ItemId, Sequence[Link]]
) -> list[ContainerGroup]:
    groups: dict[tuple[str, str], ContainerGroup] = {}
    for it in work:
        if links[it.ident]:
            continue
        where = (it.connector, it.container or "")
        group = groups.get(where)
        if group is None:
            group = groups[where] = ContainerGroup(*where, it.custom.get("project"))
        group.count += 1
        if len(group.sample) < SAMPLE:
            group.sample.append(_ref(it))
    return sorted(groups.values(), key=lambda g: (-g.count, g.connector, g.container))
