"""CLI commands: `okrsync mappings check|preview|values` and `okrsync remap`.

`check`, `preview` and `values` never write: they read the mapping files and, when a store
exists, its items (`values`: the values rules can name, with counts; `check` warns about a
condition value no stored item carries, with a did-you-mean from them). `remap` validates
everything before touching the store, so a broken file leaves the links as they were; an
empty mapping set (without `--allow-empty`) or one that would archive more than half of the
stored tree (without `--yes`) is refused the same way.

Tracker text (titles, keys) passes through `textsafe.printable` before it is printed, so a
title carrying terminal escapes cannot clear the screen or plant a link.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from okrsync.cli_state import State, out, state_of
from okrsync.errors import ConfigError
from okrsync.textsafe import printable

if TYPE_CHECKING:  # imported where used, so `okrsync --version` stays light (cli_state)
    from okrsync.mapping import Rule
    from okrsync.okrfile import OkrTree
    from okrsync.preview import ContainerGroup, PreviewReport, TacticPreview
    from okrsync.store import Store

# The flags every command that loads the OKR tree into the store takes (okrs sync, sync,
# remap); `mappings check` takes --allow-empty only, as it never writes.
AllowEmpty = Annotated[
    bool,
    typer.Option(
        "--allow-empty",
        help="Accept mapping files that define no objectives, key results or tactics.",
    ),
]
Yes = Annotated[
    bool,
    typer.Option(
        "--yes",
        help="Accept a load that archives more than half of the stored OKR tree.",
    ),
]

mappings_app = typer.Typer(
    no_args_is_help=True,
    help="Check and preview the rules that attach work to tactics; list the values to write "
    "them from.",
)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(mappings_app, name="mappings")
    app.command("remap")(remap_cmd)


def say(text: str = "") -> None:
    """Print plain text: no markup (rule tables are written in [[brackets]]), no wrapping,
    and no control characters: titles, keys and containers come from the trackers."""
    out().print(printable(text), markup=False, highlight=False, soft_wrap=True)


def connector_names(state: State) -> list[str] | None:
    """Configured connector names, or None when none are configured (nothing to check)."""
    names = [c.name for c in state.settings.connectors]
    return names or None


def read_only_store(state: State) -> Store | None:
    """The existing store, opened without migrating; None when there is none to read."""
    url = state.settings.store_url()
    path = url.removeprefix("sqlite:///")
    if url.startswith("sqlite:///") and (path == ":memory:" or not Path(path).exists()):
        return None
    from okrsync.store import Store  # only now: no store, no database library (`mappings check`)

    return Store.open_existing(url)


# -- check ----------------------------------------------------------------------------------


@mappings_app.command("check")
def check(
    ctx: typer.Context,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 on warnings too (for CI).")
    ] = False,
    allow_empty: AllowEmpty = False,
    probe: Annotated[
        bool,
        typer.Option("--probe", help="Also read each key result's source once (records nothing)."),
    ] = False,
) -> None:
    """Validate the mapping files (tree, rules and key-result sources, their environment
    variables included) without writing anything.

    Exit 0 when clean, 1 on warnings with --strict or a source failing its --probe, 2 on
    errors (an empty mapping set is one, unless --allow-empty).
    """
    import os

    from okrsync.okrfile import missing_env, no_cycle_collection

    state = state_of(ctx)
    with no_cycle_collection():  # one pause over loading and checking: see okrfile
        tree, rules = _load_and_check(state, allow_empty)
    if problems := missing_env(tree, os.environ):
        _fail(problems)
    probe_ok = True
    if probe:
        from okrsync.cli_measure import probe_sources

        probe_ok = probe_sources(state, tree)
    warnings = _store_warnings(state, rules, tree)
    for w in warnings:
        say(f"warning: {w}")
    say(
        f"{len(tree.files)} file(s), {len(tree.tactics)} tactics, {len(rules)} rules: "
        f"no errors, {len(warnings)} warning(s)"
    )
    if (warnings and strict) or (probe and not probe_ok):
        raise typer.Exit(1)


def _load_and_check(state: State, allow_empty: bool) -> tuple[OkrTree, list[Rule]]:
    """The tree and its compiled rules; every problem found exits 2."""
    from okrsync.mapping import check_rules
    from okrsync.okrfile import OkrFileError

    try:
        tree = state.tree()
    except OkrFileError as exc:
        _fail(exc.problems)
    if tree.size() == 0 and not allow_empty:
        from okrsync.pipeline import empty_message

        _fail([empty_message(state.settings.mapping_paths())])
    rules, problems = check_rules(tree.rules(), connector_names(state))
    if problems:
        _fail(problems)
    return tree, rules


def _fail(problems: list[str]) -> NoReturn:
    for p in problems:
        say(f"error: {p}")
    say(f"{len(problems)} error(s); nothing was changed. Fix them and run the check again.")
    raise typer.Exit(2)


def _store_warnings(state: State, rules: list[Rule], tree: OkrTree) -> list[str]:
    store = read_only_store(state)
    if store is None:
        say("note: no store yet, so rules were not tried against stored items")
        return []
    from okrsync.mapping import Matcher  # after the check above: the store brings sqlalchemy
    from okrsync.preview import analyse

    try:
        items = store.stored_items()
        values = store.value_counts()
    finally:
        store.close()
    if not any(not it.deleted for it in items):
        say("note: the store holds no items yet; run a sync to try the rules against them")
        return []
    report = analyse(items, Matcher(rules), titles=_titles(tree), values=values, raws=tree.rules())
    return report.warnings()


def _titles(tree: OkrTree) -> dict[str, str]:
    return {t.id: t.title for t in tree.tactics.values()}


# -- preview --------------------------------------------------------------------------------


@mappings_app.command("preview")
def preview_cmd(
    ctx: typer.Context,
    tactic: Annotated[
        str | None, typer.Option("--tactic", "-t", help="Only this tactic (its id).")
    ] = None,
) -> None:
    """Show which stored items each rule would attach, what stays unmapped, what overlaps."""
    from okrsync.mapping import Matcher
    from okrsync.preview import analyse

    state = state_of(ctx)
    tree = state.tree()
    matcher = Matcher.from_tree(tree, connector_names(state))
    store = read_only_store(state)
    if store is None:
        say("no store yet: run `okrsync sync --once` first, then preview again")
        return
    try:
        items = store.stored_items()
        values = store.value_counts()
    finally:
        store.close()
    report = analyse(items, matcher, tactic, titles=_titles(tree), values=values, raws=tree.rules())
    render_preview(report, tactic is None)


def render_preview(report: PreviewReport, full: bool) -> None:
    say(f"Preview over {report.items} stored work items (nothing is written)")
    for tp in report.tactics:
        _render_tactic(tp)
    if full:
        _render_unmapped(report.unmapped, report.unmapped_count)
    if report.overlaps:
        say()
        say(f"Overlaps: {len(report.overlaps)} item(s) count for several tactics")
        for o in report.overlaps[:20]:
            say(f"  {o.item.key}  {o.item.title}  → {', '.join(o.tactics)}")
        if len(report.overlaps) > 20:
            say(f"  ... and {len(report.overlaps) - 20} more")
    for w in report.warnings():
        say(f"warning: {w}")


def _render_tactic(tp: TacticPreview) -> None:
    say()
    say(f"{tp.tactic_id}  {tp.title}: {tp.items} item(s)")
    if not tp.rules:
        say("  no rules: add [[tactic.rule]] tables under this tactic to attach work")
    for rp in tp.rules:
        say(
            f"  rule {rp.rule_id} ({rp.source}): matches {rp.matches}, "
            f"{rp.only_here} only through this rule"
        )
        for ref in rp.sample:
            say(f"      {ref.connector}  {ref}")


def _render_unmapped(groups: list[ContainerGroup], total: int) -> None:
    say()
    say(f"Unmapped: {total} work item(s) attached to no tactic")
    for g in groups:
        name = f" ({g.name})" if g.name and g.name != g.container else ""
        sample = ", ".join(r.key for r in g.sample)
        say(f"  {g.connector}  {g.container or '(no container)'}{name}: {g.count}  e.g. {sample}")


# -- values ---------------------------------------------------------------------------------


class Field(StrEnum):
    labels = "labels"
    milestone = "milestone"
    section = "section"
    type = "type"
    assignee = "assignee"
    container = "container"
    iteration = "iteration"
    custom = "custom"


@mappings_app.command("values")
def values_cmd(
    ctx: typer.Context,
    connector: Annotated[
        str | None, typer.Option("--connector", help="Only this connector's items.")
    ] = None,
    field: Annotated[
        Field | None, typer.Option("--field", "-f", help="Only this field (default: all).")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=0, help="Values shown per field (0: all).")
    ] = 20,
) -> None:
    """List the values stored items carry (labels, milestones, sections, types, assignees,
    containers, custom fields) with counts, most common first: write rules from them."""
    state = state_of(ctx)
    store = read_only_store(state)
    if store is None:
        say("no store yet: run `okrsync sync --once` first, then list values again")
        return
    try:
        values = store.value_counts(connector, [field.value] if field else None)
    finally:
        store.close()
    scope = f" of connector {connector!r}" if connector else ""
    if not values:
        say(f"no live stored item{scope} carries a value here; run a sync, or check --connector")
        return
    say(f"Values of live stored items{scope} (count: items carrying it)")
    for name, rows in values.items():
        _render_values(name, rows, limit)


def _render_values(name: str, rows: Sequence[tuple[str, int, tuple[str, ...]]], limit: int) -> None:
    say()
    say(f"{name}: {len(rows)} value(s)")
    shown = rows if limit == 0 else rows[:limit]
    width = max(len(v) for v, _, _ in shown)
    for value, count, aliases in shown:
        also = f"  (also: {', '.join(aliases)})" if aliases else ""
        say(f"  {value.ljust(width)}  {count:>6}{also}")
    if len(rows) > len(shown):
        say(f"  ... and {len(rows) - len(shown)} more (--limit 0 shows all)")


# -- remap ----------------------------------------------------------------------------------


def remap_cmd(
    ctx: typer.Context,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Compute signals as of this day (YYYY-MM-DD; default today)."),
    ] = None,
    allow_empty: AllowEmpty = False,
    yes: Yes = False,
) -> None:
    """Re-derive every link (and the signals) from the stored items: no tracker is called."""
    from okrsync.pipeline import MappingState

    day = _parse_day(as_of)
    state = state_of(ctx)
    mapping = MappingState.load(state.settings)
    applied = mapping.apply(
        state.store, state.settings, as_of=day, allow_empty=allow_empty, yes=yes
    )
    report = applied.links
    say(
        f"remapped {report.items} stored items with {len(mapping.matcher.rules)} rules: "
        f"{report.links} links ({report.added} added, {report.removed} removed)"
    )
    for tid in sorted(mapping.tree.tactics):
        say(f"  {tid}: {report.per_tactic.get(tid, 0)} work item(s)")
    say(
        f"signals as of {applied.signals.as_of}: "
        f"{applied.signals.snapshots_written} snapshot(s) written"
    )


def _parse_day(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--as-of {text!r} is not a date; write it as YYYY-MM-DD") from None
