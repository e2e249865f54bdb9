"""`mappings preview`: what the rules would link among the stored items, as a pure analysis
(`analyse`) of the items the store returns; nothing is written."""

from __future__ import annotations

import difflib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from okrsync.errors import ConfigError
from okrsync.linking import ItemId, derive
from okrsync.mapping import Link, Matcher, Rule
from okrsync.models import StoredItem
from okrsync.okrfile import Source

SAMPLE = 5


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
