"""CLI commands: `okrsync report`, `export`, `history` and `recompute`."""

from __future__ import annotations

import json
import os
import sys
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from okrsync.cli_state import err, out, state_of
from okrsync.errors import ConfigError
from okrsync.textsafe import markup_safe as safe

if TYPE_CHECKING:  # imported where used, so `okrsync --version` stays light (cli_state)
    from rich.table import Table

    from okrsync.signal_types import Snapshot

AsOf = Annotated[
    str | None,
    typer.Option("--as-of", help="Compute as of this UTC date, YYYY-MM-DD (default: today)."),
]
PeriodOpt = Annotated[
    str | None,
    typer.Option(
        "--period",
        help="Only objectives within this period: 2026 (its halves, quarters and months too), "
        "2026-H2, 2026-Q4 or 2026-11; Q and H in either case.",
    ),
]
ObjectiveOpt = Annotated[
    str | None, typer.Option("--objective", help="Only this objective and its children.")
]
SUMMARY = {
    "tactic": ("completion", "items_done", "items_total", "throughput_per_week", "forecast_finish",
               "execution_status"),
    "key_result": ("outcome.progress", "outcome.status", "execution.completion", "execution.status",
                   "flags"),
    "objective": ("outcome.progress", "outcome.status", "execution.completion", "execution.status",
                  "flags"),
}  # fmt: skip


class Format(StrEnum):
    json = "json"
    csv = "csv"


def parse_as_of(text: str | None) -> date:
    """`--as-of YYYY-MM-DD`, or today in UTC."""
    if text is None:
        from okrsync.signals import today

        return today()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--as-of must be a date like 2026-11-15, got {text!r}") from None


def report(
    ctx: typer.Context,
    period: PeriodOpt = None,
    objective: ObjectiveOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the export JSON instead.")] = False,
    as_of: AsOf = None,
) -> None:
    """The OKR tree: each key result's outcome beside its execution, tactics' signals, flags.

    Every signal, status and flag is defined in docs/signals.md."""
    from okrsync.report import export_tree, period_note, render_report, tree_sources

    state = state_of(ctx)
    data = export_tree(
        state.store,
        parse_as_of(as_of),
        state.settings.signals,
        period=period,
        objective=objective,
        sources=tree_sources(state.tree),
    )
    note = period_note(state.store, period, data)  # a period holding no objective says so
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        if note:
            err().print(safe(note))
    elif note:
        out().print(safe(note))
    else:
        render_report(out(), data)


def export(
    ctx: typer.Context,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="json or csv.")] = Format.json,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (default: stdout).")
    ] = None,
    period: PeriodOpt = None,
    objective: ObjectiveOpt = None,
    as_of: AsOf = None,
    items: Annotated[
        bool,
        typer.Option("--items", help="JSON only: list under each tactic the items it counts."),
    ] = False,
) -> None:
    """The whole tree with signals, as JSON (okrsync/schema/export.schema.json) or CSV.

    Every signal, status and flag is defined in docs/signals.md."""
    from okrsync.report import export_tree, period_note, tree_sources

    if items and fmt is Format.csv:
        raise ConfigError("--items is for the JSON export; drop it or use --format json")
    state = state_of(ctx)
    data = export_tree(
        state.store,
        parse_as_of(as_of),
        state.settings.signals,
        period=period,
        objective=objective,
        items=items,
        sources=tree_sources(state.tree),
    )
    if note := period_note(state.store, period, data):  # on stderr: the file stays valid
        err().print(safe(note))
    if output is None:
        _write(data, fmt, sys.stdout)
        return
    with open(output, "w", encoding="utf-8", newline="", opener=_private) as fh:
        _write(data, fmt, fh)
    out().print(f"wrote {fmt} export to {safe(output)}")


def _private(path: str, flags: int) -> int:
    """Open a new export file as 0600: it holds the whole tree, titles and owners."""
    return os.open(path, flags, 0o600)


def _write(data: dict[str, Any], fmt: Format, fh: Any) -> None:
    if fmt is Format.csv:
        from okrsync.report import write_csv

        write_csv(data, fh)
    else:
        fh.write(json.dumps(data, indent=2) + "\n")


def history(
    ctx: typer.Context,
    subject: Annotated[str, typer.Argument(help="A tactic, key result or objective id.")],
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Newest N snapshots.")] = 20,
) -> None:
    """How a subject's signals moved: its snapshots, oldest first, with what changed."""
    snaps = state_of(ctx).store.snapshot_history(subject, limit)
    if not snaps:
        raise ConfigError(
            f"no snapshots for {subject!r}; check the id with `okrsync report`, "
            "then run `okrsync recompute` (a sync also records them)"
        )
    for kind in sorted({s.subject_type for s in snaps}):
        out().print(history_table([s for s in snaps if s.subject_type == kind]))


def history_table(snaps: list[Snapshot]) -> Table:
    """One row per snapshot: the headline values and what changed since the previous one."""
    from rich.table import Table

    from okrsync.signals import flatten

    kind = snaps[0].subject_type
    table = Table(title=f"{kind.replace('_', ' ')} {safe(snaps[0].subject_id)}: signal history")
    table.add_column("recorded (UTC)", no_wrap=True)
    table.add_column("as of", no_wrap=True)
    table.add_column("signals", ratio=1)
    table.add_column("what moved", ratio=2)
    previous: dict[str, Any] = {}
    for snap in snaps:
        flat = flatten(snap.values)
        moved = [f"{k}: {_fmt(previous.get(k))} → {_fmt(v)}" for k, v in flat.items()
                 if previous and previous.get(k) != v]  # fmt: skip
        table.add_row(
            f"{snap.computed_at:%Y-%m-%d %H:%M}",
            snap.as_of.isoformat(),
            "\n".join(f"{k} {_fmt(flat.get(k))}" for k in SUMMARY[kind]),
            "\n".join(moved) if previous else "first snapshot",
        )
        previous = flat
    return table


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return safe(", ".join(map(str, value))) or "—"
    return safe(value)


def recompute(ctx: typer.Context, as_of: AsOf = None) -> None:
    """Recompute every signal and record a snapshot for each subject that changed."""
    from okrsync.pipeline import recompute as recompute_signals

    state = state_of(ctx)
    rep = recompute_signals(state.store, state.settings.signals, parse_as_of(as_of))
    out().print(
        f"signals as of {rep.as_of}: {rep.tactics} tactics, {rep.key_results} key results, "
        f"{rep.objectives} objectives; {rep.snapshots_written} snapshot(s) written "
        f"in {rep.seconds:.2f} s"
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("report")(report)
    app.command("export")(export)
    app.command("history")(history)
    app.command("recompute")(recompute)
