"""`okrsync explain`: why an item is (or is not) attached to tactics, and the figures behind
a tactic's execution status. Pure: the CLI reads the item, its ancestors and the signal
inputs from the store; these functions explain them and return the lines to print.

    explain_item(item, ancestors, matcher)  every rule checked condition by condition
                                            (`Matcher.explain`), ancestors through
                                            `linking.Ancestry` as a remap walks them
    item_lines(explanation, titles)         the matching rules and each condition that held,
                                            or the closest rules and what failed
    tactic_lines(tactic, title, figures)    remaining, done in window, throughput, forecast
                                            against the period end, the deciding threshold
                                            (`signals.status_figures`: the numbers a
                                            recompute uses)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from okrsync.linking import MAX_DEPTH, Ancestry
from okrsync.mapping import ConditionCheck, Matcher, RuleCheck
from okrsync.models import CONTAINER_KINDS, StoredItem
from okrsync.signals import StatusFigures

CLOSEST = 5  # rules shown when none matches
SHOWN_TITLE = 80  # characters of a title quoted in an explanation
NOUNS = {
    "connector": "connector",
    "container": "container",
    "epic": "ancestors",
    "parent": "parent",
    "labels_any": "labels",
    "labels_all": "labels",
    "milestone": "milestone",
    "section": "section",
    "type": "type",
    "keys": "key",
    "assignee": "assignee",
    "iteration": "iteration",
    "title": "title",
}
# An ancestor as explanations show it: its current key and every key it is known by.
Step = tuple[str, frozenset[str]]


@dataclass(frozen=True)
class ItemExplanation:
    """One item under every rule: `path` holds its ancestors, nearest first."""

    item: StoredItem
    path: tuple[Step, ...]
    checks: tuple[RuleCheck, ...]

    @property
    def matched(self) -> list[RuleCheck]:
        return [c for c in self.checks if c.matches]

    def closest(self, limit: int = CLOSEST) -> list[RuleCheck]:
        """Rules that do not match but meet at least one of their conditions, fewest failed
        conditions first."""
        near = [c for c in self.checks if not c.matches and _held(c)]
        near.sort(key=lambda c: (len(c.failed), -len(_held(c)), c.rule.tactic, c.rule.id))
        return near[:limit]


def explain_item(
    item: StoredItem, ancestors: Sequence[StoredItem], matcher: Matcher
) -> ItemExplanation:
    """Every rule of `matcher` checked on `item`, with ancestors resolved as `linking.derive`
    resolves them (`ancestors`: the stored items up its parent chain)."""
    ancestry = Ancestry()
    for node in (*ancestors, item):
        ancestry.add(item.connector, node)
    chain = ancestry.chain(item.connector, item.parent_key)
    path = ancestor_path(ancestry, item.connector, item.parent_key)
    order = {k: i for i, (_, keys) in enumerate(path) for k in sorted(keys)}
    ordered = sorted(chain, key=lambda k: (order.get(k, len(order)), k))
    earlier = ancestry.earlier_keys(item.connector, item.parent_key)
    return ItemExplanation(item, path, tuple(matcher.explain(item, ordered, earlier)))


def ancestor_path(ancestry: Ancestry, connector: str, parent_key: str | None) -> tuple[Step, ...]:
    """The ancestors up `parent_key`'s chain as `Ancestry.chain` walks it, nearest first."""
    path: list[Step] = []
    seen: set[str] = set()
    key = parent_key
    while key and key not in seen and len(path) < MAX_DEPTH:
        seen.add(key)
        node = ancestry.nodes.get((connector, key))
        path.append((node.key if node else key, ancestry.own_keys(connector, key)))
        key = node.parent_key if node else None
    return tuple(path)


def _held(check: RuleCheck) -> list[ConditionCheck]:
    return [c for c in check.conditions if c.held and not c.exclude]


# -- one item: the lines to print ---------------------------------------------------------


def item_lines(ex: ItemExplanation, titles: Mapping[str, str]) -> list[str]:
    """What `okrsync explain KEY` prints for one item."""
    lines = _header(ex)
    matched = ex.matched
    tactics = {c.rule.tactic for c in matched}
    if matched:
        lines.append(f"matches {len(matched)} rule(s) of {len(tactics)} tactic(s):")
        for check in matched:
            lines.append(_rule_line(check, titles))
            lines += [f"    {describe(c, ex.path)}" for c in check.conditions]
        return lines
    every = {c.rule.tactic for c in ex.checks}
    lines.append(f"matches none of the {len(ex.checks)} rule(s) of {len(every)} tactic(s).")
    closest = ex.closest()
    if not closest:
        lines.append("  no rule has a condition this item meets")
    else:
        lines.append("closest rules (fewest failed conditions first):")
    for check in closest:
        lines.append(
            f"{_rule_line(check, titles)}: {len(check.failed)} of "
            f"{len(check.conditions)} condition(s) failed"
        )
        for c in check.conditions:
            lines.append(f"    {'held:  ' if c.ok else 'failed:'} {describe(c, ex.path)}")
    lines.append("  (`okrsync mappings values` lists the values stored items carry)")
    return lines


def _header(ex: ItemExplanation) -> list[str]:
    it = ex.item
    kind = f"{it.kind}, {it.item_type}" if it.item_type and it.item_type != it.kind else it.kind
    where = [f"{it.connector} {kind}"]
    if it.container:
        where.append(f"in {it.container}")
    if it.boards:
        where.append("on " + ", ".join(_board(b, n) for b, n in _boards(it)))
    if it.iteration or it.iteration_start:
        where.append(f"iteration {_iteration(it)}")
    if ex.path:
        where.append("ancestors " + " > ".join(key for key, _ in ex.path))
    lines = [f"{it.key}  {_short(it.title)}", f"  {'; '.join(where)}"]
    if it.deleted:
        lines.append("  note: deleted in the tracker, so it counts in no signal")
    elif it.kind in CONTAINER_KINDS:
        lines.append(f"  note: {it.kind} items are containers: linked, but never counted")
    return lines


def _boards(it: StoredItem) -> list[tuple[str, str | None]]:
    names = list(it.board_names)
    return [(b, names[i] if i < len(names) else None) for i, b in enumerate(it.boards)]


def _board(board: str, name: str | None) -> str:
    return f"{board} ({_short(name)})" if name and name != board else board


def _iteration(it: StoredItem) -> str:
    """`Sprint 14 (2026-12-01 to 2026-12-14)`: the last day shown, not the exclusive end."""
    start, end = it.iteration_start, it.iteration_end
    dates = f" ({start} to {end - timedelta(days=1)})" if start and end and end > start else ""
    return f"{_short(it.iteration or '(untitled)')}{dates}"


def _rule_line(check: RuleCheck, titles: Mapping[str, str]) -> str:
    rule = check.rule
    title = titles.get(rule.tactic)
    named = f"{rule.tactic} ({title})" if title else rule.tactic
    return f"  tactic {named}, rule {rule.id} at {rule.source}"


def describe(c: ConditionCheck, path: Sequence[Step] = ()) -> str:
    """One condition and the item's value behind its outcome, e.g.
    `epic = "ALPHA-1" (ancestor ALPHA-1 via ALPHA-7)`."""
    said = _written(c)
    if c.exclude:
        if not c.held:
            return f"{said}: does not apply"
        return f"{said}: leaves the item out ({_evidence(c, c.matched, path)})"
    if c.held:
        return f"{said} ({_evidence(c, c.matched, path)})"
    if c.key == "labels_all" and c.matched:
        have = {v.casefold() for v in c.matched}
        missing = [w for w in c.written if w.strip().casefold() not in have]
        return f"{said}: not met (item lacks {', '.join(missing)})"
    noun = _noun(c)
    if not c.have:
        return f"{said}: not met (item has no {noun})"
    return f"{said}: not met ({_evidence(c, c.have, path)})"


def _written(c: ConditionCheck) -> str:
    name = f"exclude.{c.key}" if c.exclude else c.key
    if c.key == "title":
        return f"{name} =~ {c.written[0]!r}"
    if len(c.written) == 1:
        return f'{name} = "{c.written[0]}"'
    quoted = ", ".join(f'"{w}"' for w in c.written)
    return f"{name} = [{quoted}]"


def _noun(c: ConditionCheck) -> str:
    return NOUNS.get(c.key, c.key.removeprefix("custom."))


def _evidence(c: ConditionCheck, values: Sequence[str], path: Sequence[Step]) -> str:
    if c.key == "title":
        return f'title "{_short(values[0])}"'
    if c.key == "epic" and c.held and not c.exclude:
        return "; ".join(_ancestor(v, path) for v in values)
    if c.key == "epic":
        return "item ancestors " + (" > ".join(k for k, _ in path) or ", ".join(values))
    if c.key == "keys":
        return "; ".join(f"item key {v}" if v == c.have[0] else f"earlier key {v}" for v in values)
    return f"item {_noun(c)} {', '.join(values)}"


def _ancestor(value: str, path: Sequence[Step]) -> str:
    """`ancestor ALPHA-1 via ALPHA-7` for an `epic` value found up the item's chain."""
    folded = value.casefold()
    for i, (key, keys) in enumerate(path):
        if folded in {k.casefold() for k in keys}:
            known = "" if key.casefold() == folded else f", known as {value} before a move"
            if i == 0:
                return f"ancestor {key}, the item's parent{known}"
            return f"ancestor {key} via {' > '.join(k for k, _ in path[:i])}{known}"
    return f"ancestor {value}"


def _short(text: str) -> str:
    return text if len(text) <= SHOWN_TITLE else text[: SHOWN_TITLE - 1] + "…"


# -- one tactic: the figures behind its status --------------------------------------------


def tactic_lines(tactic: str, title: str, f: StatusFigures) -> list[str]:
    """What `okrsync explain --tactic ID` prints: the figures the status was decided from."""
    c, p = f.counts, f.period
    lines = [
        f"tactic {tactic} ({title}) as of {f.as_of}: execution status {f.status}",
        f"  period {p.start} .. {p.end} (L = {p.length} days)",
        f"  items counted: {c.total} (not dropped): {c.done} done, {c.remaining} remaining "
        f"({c.in_progress} in progress, {c.todo} to do); {c.dropped} dropped",
        f"  done in window: {c.done_in_window} item(s) closed in the {f.window_days} days "
        f"ending {f.as_of}",
        f"  throughput: {c.done_in_window} × 7 ÷ {f.window_days} = "
        f"{f.throughput_per_week:.2f} items/week",
        *_forecast_lines(f),
        f"  decided by: {f.clause} → {f.status}",
        f"  thresholds: [signals] throughput_window_days = {f.window_days}, "
        f"at_risk_share = {f.at_risk_share:g} (docs/signals.md)",
    ]
    return lines


def _forecast_lines(f: StatusFigures) -> list[str]:
    c = f.counts
    if f.forecast is None:
        why = "nothing remains" if c.remaining <= 0 else "nothing was done in the window"
        return [f"  forecast: none ({why})"]
    days = (f.forecast - f.as_of).days
    late = (f.forecast - f.period.end).days
    against = (
        f"{-late} day(s) before it"
        if late < 0
        else ("on it" if late == 0 else f"{late} day(s) after it")
    )
    return [
        f"  forecast: as-of + remaining × window ÷ done in window = {f.as_of} + "
        f"{c.remaining} × {f.window_days} ÷ {c.done_in_window} days = {f.as_of} + {days} "
        f"days = {f.forecast}",
        f"  against the period end {f.period.end}: {against}; at_risk allows up to "
        f"{f.at_risk_share:g} × {f.period.length} = {f.at_risk_days:.2f} day(s) after it",
    ]
