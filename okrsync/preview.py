"""`mappings preview`: what the rules would link among the stored items, as a pure analysis
(`analyse`) of the items the store returns; nothing is written.

With the value counts the store returns (`Store.value_counts`, what `mappings values`
prints), a rule condition naming a value no stored item carries is a warning with the
closest stored values (`unknown_values`).
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from okrsync.errors import ConfigError
from okrsync.linking import ItemId, derive
from okrsync.mapping import ITERATION_KEYWORDS, Link, Matcher, Rule, Test, rule_id
from okrsync.models import StoredItem
from okrsync.okrfile import RawRule, Source

SAMPLE = 5
# (value, live items carrying it, other names it matches by) per field, most common first:
# what `Store.value_counts` returns; custom fields as `custom.<name>`
ValueCount = tuple[str, int, tuple[str, ...]]
ValueCounts = Mapping[str, Sequence[ValueCount]]
# The field of `mappings values` each condition names (custom.<name> names itself).
VALUE_FIELDS = {
    "labels_any": "labels",
    "labels_all": "labels",
    "milestone": "milestone",
    "section": "section",
    "type": "type",
    "assignee": "assignee",
    "container": "container",
    "iteration": "iteration",
}


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
    unknown_values: list[str] = field(default_factory=list)

    @property
    def unmapped_count(self) -> int:
        return sum(g.count for g in self.unmapped)

    def warnings(self) -> list[str]:
        """Condition values no stored item carries, rules that match no stored item, and
        tactic pairs sharing items."""
        out = [*self.unknown_values]
        out += [
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
    values: ValueCounts | None = None,
    raws: Iterable[RawRule] = (),
) -> PreviewReport:
    """The preview of `items` under `matcher` (pure); with the store's `values`, warnings
    for condition values no stored item carries (at the lines `raws` give)."""
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
    if values is not None and live:
        mine = [r for r in matcher.rules if tactic in (None, r.tactic)]
        report.unknown_values = unknown_values(mine, values, raws)
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
            group = groups[where] = ContainerGroup(*where, it.container_name)
        group.count += 1
        if len(group.sample) < SAMPLE:
            group.sample.append(_ref(it))
    return sorted(groups.values(), key=lambda g: (-g.count, g.connector, g.container))


# -- condition values no stored item carries ---------------------------------------------


@dataclass(frozen=True)
class _Known:
    """One field's stored values by folded name (aliases too): (shown value, items)."""

    values: dict[str, tuple[str, int]]
    top: list[tuple[str, int]]


def _known(rows: Sequence[ValueCount]) -> _Known:
    values: dict[str, tuple[str, int]] = {}
    for value, count, aliases in rows:
        for name in (value, *aliases):
            values.setdefault(name.casefold(), (name, count))
    return _Known(values, [(v, n) for v, n, _ in rows[:3]])


def unknown_values(
    rules: Sequence[Rule], values: ValueCounts, raws: Iterable[RawRule] = ()
) -> list[str]:
    """A warning for each value a rule condition names that no stored item carries, with
    the closest stored value (or the most common ones), at the condition's file:line."""
    raw_of = {rule_id(r): r for r in raws}
    known = {name.casefold(): (name, _known(rows)) for name, rows in values.items()}
    found: list[tuple[str, int, str]] = []
    for rule in rules:
        for part, prefix in ((rule.include, ()), (rule.exclude, ("exclude",))):
            for test in part.tests:
                field_ = VALUE_FIELDS.get(test.key, test.key)
                if field_ not in VALUE_FIELDS.values() and not field_.startswith("custom."):
                    continue
                path = (*prefix, *test.key.split(".", 1))
                raw = raw_of.get(rule.id)
                where = Source(rule.source.file, raw.line(path)) if raw else rule.source
                head = f"{where}: rule {rule.id!r} of tactic {rule.tactic!r}: "
                for text in _missing(test, field_, known, ".".join(path)):
                    found.append((str(where.file), where.line or 0, head + text))
    return [text for _, _, text in sorted(found, key=lambda f: (f[0], f[1]))]


def _missing(
    test: Test, field_: str, known: Mapping[str, tuple[str, _Known]], said: str
) -> list[str]:
    """What `test` names that no stored item carries, each with a did-you-mean."""
    stored = known.get(field_.casefold())
    if stored is None and field_.startswith("custom."):
        names = [n for n in known if n.startswith("custom.")]
        close = difflib.get_close_matches(field_.casefold(), names, n=1)
        if close:
            hint = f"did you mean {known[close[0]][0]!r}?"
        else:
            shown = ", ".join(known[n][0] for n in names[:5])
            hint = f"stored custom fields: {shown}" if names else "no item has any custom field"
        return [f"no stored item has the custom field in '{said}'; {hint}"]
    listing = f"(`okrsync mappings values --field {field_.split('.')[0]}` lists them)"
    out: list[str] = []
    for written in test.written:
        folded = written.strip().casefold()
        if stored is not None and folded in stored[1].values:
            continue
        if field_ == "iteration" and folded in ITERATION_KEYWORDS:
            continue  # "@current" names no stored value: it is resolved by date
        out.append(
            f"'{said}' value {written!r} is on no stored item; {_suggest(folded, stored)} "
            + listing
        )
    return out


def _suggest(folded: str, stored: tuple[str, _Known] | None) -> str:
    if stored is None:
        return "no stored item has any value there"
    values = stored[1].values
    close = difflib.get_close_matches(folded, list(values), n=1)
    if close:
        shown, count = values[close[0]]
        return f"did you mean {shown!r} ({count} item(s))?"
    common = ", ".join(f"{v!r} ({n})" for v, n in stored[1].top)
    return f"the most common values are {common}"
