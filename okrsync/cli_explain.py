"""CLI command: `okrsync explain KEY` (which rules attach a stored item, condition by
condition, or why none does) and `okrsync explain --tactic ID` (the figures behind a
tactic's execution status). Nothing is written.

The item, its ancestors and the signal inputs come from the store; `okrsync.explain` (pure)
explains them. Tracker text is printed through `textsafe.printable` (`cli_mapping.say`).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from okrsync.cli_signals import AsOf, parse_as_of
from okrsync.cli_state import State, state_of
from okrsync.errors import ConfigError

if TYPE_CHECKING:  # imported where used, so `okrsync --version` stays light (cli_state)
    from okrsync.models import StoredItem
    from okrsync.store import Store


def register(app: typer.Typer) -> None:
    """Add this module's command to the root app."""
    app.command("explain")(explain_cmd)


def explain_cmd(
    ctx: typer.Context,
    key: Annotated[
        str | None,
        typer.Argument(help="A stored item's key (ALPHA-12, owner/repo#7, an Asana gid)."),
    ] = None,
    connector: Annotated[
        str | None,
        typer.Option("--connector", help="The connector that stores the item (its config name)."),
    ] = None,
    tactic: Annotated[
        str | None,
        typer.Option("--tactic", "-t", help="Explain this tactic's execution status instead."),
    ] = None,
    as_of: AsOf = None,
) -> None:
    """Why an item is attached to tactics (each condition that held) or why not; with
    --tactic, the figures and thresholds behind the tactic's execution status."""
    state = state_of(ctx)
    if tactic is not None and key is None:
        _explain_tactic(state, tactic, as_of)
    elif key is not None and tactic is None:
        if as_of is not None:
            raise ConfigError("--as-of applies to --tactic only; drop it to explain an item")
        _explain_item(state, key, connector)
    else:
        raise ConfigError(
            "give an item key (okrsync explain ALPHA-12) or a tactic "
            "(okrsync explain --tactic ID), one of the two"
        )


def _store(state: State) -> Store:
    """The existing store, read without migrating; refused (exit 2) when there is none."""
    from okrsync.cli_mapping import read_only_store

    store = read_only_store(state)
    if store is None:
        raise ConfigError("no store yet: run `okrsync sync --once` first, then explain again")
    return store


# -- one item -------------------------------------------------------------------------------


def _explain_item(state: State, key: str, connector: str | None) -> None:
    from okrsync.cli_mapping import connector_names, say
    from okrsync.explain import explain_item, item_lines
    from okrsync.mapping import Matcher

    tree = state.tree()
    matcher = Matcher.from_tree(tree, connector_names(state))
    store = _store(state)
    try:
        items = _the_items(store, key, connector)
        titles = {t.id: t.title for t in tree.tactics.values()}
        for n, it in enumerate(items):
            ancestors = store.stored_ancestors(it.connector, it.parent_key)
            if n:
                say()
            for line in item_lines(explain_item(it, ancestors, matcher), titles):
                say(line)
    finally:
        store.close()


def _the_items(store: Store, key: str, connector: str | None) -> list[StoredItem]:
    """The stored items `key` names; refused (exit 2) when none does, or when several
    connectors store one and `--connector` does not say which."""
    items = store.items_by_key(key, connector)
    where = f" in connector {connector!r}" if connector else ""
    if not items:
        raise ConfigError(
            f"no stored item has the key {key!r}{where}; check the key as the tracker shows "
            "it (`okrsync mappings preview` lists stored items)"
        )
    connectors = sorted({it.connector for it in items})
    if len(connectors) > 1:
        raise ConfigError(
            f"{key!r} is stored by several connectors ({', '.join(connectors)}); "
            f"add --connector {connectors[0]} (or another of them)"
        )
    return items


# -- one tactic -----------------------------------------------------------------------------


def _explain_tactic(state: State, tactic: str, as_of: str | None) -> None:
    from okrsync.cli_mapping import say
    from okrsync.explain import tactic_lines
    from okrsync.signal_types import ItemCounts
    from okrsync.signals import status_figures

    day = parse_as_of(as_of)
    cfg = state.settings.signals
    store = _store(state)
    try:
        structure, counts, _ = store.signal_inputs(day, cfg, [tactic])
        info = structure.tactics.get(tactic)
        if info is None:
            _unknown_tactic(tactic, store.active_okr_ids().get("tactic", []))
    finally:
        store.close()
    period = structure.period_of_tactic(tactic)
    figures = status_figures(counts.get(tactic, ItemCounts()), period, day, cfg)
    for line in tactic_lines(tactic, info.title, figures):
        say(line)
    say(f"  the items behind these counts: okrsync items --tactic {tactic}")


def _unknown_tactic(tactic: str, known: Sequence[str]) -> NoReturn:
    close = difflib.get_close_matches(tactic, list(known), n=1)
    hint = f"did you mean {close[0]!r}?" if close else "see `okrsync okrs show`"
    raise ConfigError(f"no active tactic {tactic!r} in the store; {hint}")
