"""CLI command `okrsync items`: the work items behind a tactic's counts, or a connector's
items that no tactic counts.

The store selects them with the predicates its signal aggregate sums (`_item_reads`), so
`items --tactic T --stale` lists exactly the items `stale` counts in `report` and `export`.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from okrsync.cli_signals import AsOf, parse_as_of
from okrsync.cli_state import State, columns, out, state_of
from okrsync.errors import ConfigError
from okrsync.textsafe import markup_safe as safe

if TYPE_CHECKING:  # imported where used, so `okrsync --version` stays light (cli_state)
    from rich.console import Console
    from rich.table import Table

    from okrsync.signal_types import ItemCounts
    from okrsync.store import ListedItem

# filter name (a count of the aggregate) → the signal it drills into, as docs/signals.md names it
SIGNAL_OF = {
    "todo": "items_todo", "in_progress": "items_in_progress", "done": "items_done",
    "dropped": "items_dropped", "stale": "stale", "overdue": "overdue",
    "scope_added": "scope_added", "done_in_window": "done in the throughput window",
    "unestimated": "items_unestimated",
}  # fmt: skip


class ItemStatus(StrEnum):
    todo = "todo"
    in_progress = "in_progress"
    done = "done"
    dropped = "dropped"


def items(
    ctx: typer.Context,
    tactic: Annotated[
        str | None, typer.Option("--tactic", "-t", help="The tactic whose items to list.")
    ] = None,
    status: Annotated[
        ItemStatus | None, typer.Option("--status", help="Only items in this status.")
    ] = None,
    stale: Annotated[bool, typer.Option("--stale", help="Only the items `stale` counts.")] = False,
    overdue: Annotated[
        bool, typer.Option("--overdue", help="Only the items `overdue` counts.")
    ] = False,
    scope_added: Annotated[
        bool, typer.Option("--scope-added", help="Only the items `scope_added` counts.")
    ] = False,
    in_window: Annotated[
        bool,
        typer.Option("--in-window", help="Only the done items throughput counts (its window)."),
    ] = False,
    unestimated: Annotated[
        bool, typer.Option("--unestimated", help="Only the items `items_unestimated` counts.")
    ] = False,
    unlinked: Annotated[
        bool,
        typer.Option("--unlinked", help="List the connector's live items no tactic counts."),
    ] = False,
    connector: Annotated[
        str | None, typer.Option("--connector", help="With --unlinked: the connector's name.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    as_of: AsOf = None,
) -> None:
    """The items behind a tactic's counts (all of them, or those one count holds), with key,
    title, status, assignee, dates and tracker URL; or with --unlinked --connector C, that
    connector's live work items linked to no tactic. Filters combine (all must hold)."""
    picked = {"stale": stale, "overdue": overdue, "scope_added": scope_added,
              "done_in_window": in_window, "unestimated": unestimated}  # fmt: skip
    filters = [name for name, on in picked.items() if on]
    if status is not None:
        filters.insert(0, status.value)
    state = state_of(ctx)
    day = parse_as_of(as_of)
    if unlinked:
        _unlinked(state, tactic, connector, filters, day, as_json)
    else:
        _linked(state, tactic, connector, filters, day, as_json)


def _linked(
    state: State,
    tactic: str | None,
    connector: str | None,
    filters: list[str],
    day: date,
    as_json: bool,
) -> None:
    if tactic is None:
        raise ConfigError(
            "give a tactic: `okrsync items --tactic ID` (ids: `okrsync report`), "
            "or `--unlinked --connector NAME` for the items no tactic counts"
        )
    if connector is not None:
        raise ConfigError("--connector goes with --unlinked; drop it to list a tactic's items")
    cfg = state.settings.signals
    structure, counts, _ = state.store.signal_inputs(day, cfg, [tactic])
    if tactic not in structure.tactics:
        raise ConfigError(_unknown("active tactic", tactic, state.store.active_okr_ids()["tactic"]))
    found = state.store.tactic_items(structure, day, cfg, [tactic], filters)[tactic]
    title = structure.tactics[tactic].title
    if as_json:
        head = {"tactic": {"id": tactic, "title": title}, "connector": None}
        _print_json(head, filters, day, found)
        return
    out().print(
        f"[bold]tactic {safe(tactic)}[/] {safe(title)} [dim]as of {day}[/]: "
        f"{_what(filters, len(found))}"
    )
    if tactic in counts:
        out().print(f"[dim]{_summary(counts[tactic])}[/]")
    _print_table(found, with_rule=True)


def _unlinked(
    state: State,
    tactic: str | None,
    connector: str | None,
    filters: list[str],
    day: date,
    as_json: bool,
) -> None:
    if tactic is not None:
        raise ConfigError("--unlinked lists items no tactic counts: drop --tactic")
    if connector is None:
        raise ConfigError("--unlinked needs --connector NAME (the connector's config name)")
    if "scope_added" in filters:
        raise ConfigError("--scope-added needs a tactic's period: drop it with --unlinked")
    configured = (c.name for c in state.settings.connectors)
    known = sorted({*state.store.item_connectors(), *configured})
    if connector not in known:
        raise ConfigError(_unknown("connector", connector, known))
    found = state.store.unlinked_items(connector, day, state.settings.signals, filters)
    if as_json:
        _print_json({"tactic": None, "connector": connector}, filters, day, found)
        return
    out().print(
        f"[bold]connector {safe(connector)}[/], linked to no tactic [dim]as of {day}[/]: "
        f"{_what(filters, len(found))}"
    )
    _print_table(found, with_rule=False)


def _unknown(kind: str, name: str, known: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known) or 'none'}"
    return f"no {kind} {name!r}; {hint}"


def _what(filters: list[str], n: int) -> str:
    which = " and ".join(SIGNAL_OF[f] for f in filters)
    return f"{n} item(s)" + (f" counted in {which}" if which else " counted")


def _summary(c: ItemCounts) -> str:
    return (
        f"counts: {c.total} items ({c.done} done, {c.in_progress} in progress, {c.todo} to do), "
        f"{c.dropped} dropped; {c.stale} stale, {c.overdue} overdue, "
        f"{c.scope_added} scope added, {c.done_in_window} done in window"
    )


def _print_json(
    head: dict[str, Any], filters: list[str], day: date, found: list[ListedItem]
) -> None:
    doc = {
        "as_of": day.isoformat(),
        **head,
        "filters": filters,
        "count": len(found),
        "items": [i.as_json() for i in found],
    }
    typer.echo(json.dumps(doc, indent=2))


# Piped output (a file, grep, less) with no COLUMNS set is not squeezed into the console's
# 120 columns: a row stays on one line, up to this width. COLUMNS, or a terminal, sets the width.
PIPED_WIDTH = 240

# (name, drop): 0 never dropped; else dropped on a narrow page, the highest first
ITEM_COLUMNS = (("key", 0), ("title", 0), ("status", 0), ("assignee", 3), ("created", 6),
                ("updated", 5), ("due", 2), ("completed", 4))  # fmt: skip


def _print_table(found: list[ListedItem], *, with_rule: bool) -> None:
    if not found:
        return
    console = out()
    before = console.width
    if not console.is_terminal and columns() is None:
        console.width = PIPED_WIDTH  # print() caps its width at the console's
    try:
        console.print(items_table(console, found, with_rule=with_rule))
    finally:
        console.width = before


def items_table(console: Console, found: list[ListedItem], *, with_rule: bool) -> Table:
    """One row per item, fitted to the console: key, title, status and url always (title
    and url wrap), the dates, assignee and rule as the width allows; every tracker text
    printable and markup-escaped."""
    from okrsync.render import Column, fitted_table

    cols = [Column(n, drop=d, wrap=n == "title") for n, d in ITEM_COLUMNS]
    boards = any(i.board_label for i in found)  # a board column only when an item is on one
    cols += [Column("board", drop=7, wrap=True)] if boards else []
    cols += [*([Column("rule", drop=1)] if with_rule else []), Column("url", wrap=True)]
    rows = [_item_cells(i, with_rule, boards=boards) for i in found]
    return fitted_table(console, cols, rows)


def _item_cells(i: ListedItem, with_rule: bool, *, boards: bool = False) -> list[str]:
    cells = [
        safe(i.key), safe(i.title), i.status.replace("_", " "), safe(i.assignee or "—"),
        _day(i.created), _day(i.updated), _day(i.due), _day(i.completed_at),
    ]  # fmt: skip
    if boards:
        cells.append(safe(i.board_label or "—"))
    return [*cells, *([safe(i.rule_id or "")] if with_rule else []), safe(i.url or "—")]


def _day(value: date | datetime | None) -> str:
    if value is None:
        return "—"
    return (value.date() if isinstance(value, datetime) else value).isoformat()


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("items")(items)
