"""Terminal rendering (rich) of the OKR tree and check-in history.

Every string that comes from a tracker or the store goes through `safe` (rich markup escaped,
terminal control sequences stripped) or `printable` before it reaches a console: a title or an
error text must never clear the screen or plant a link (tracker text is also cleaned on
ingest; this is the second line, for error messages and data stored before that).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from okrsync.models import RunResult
from okrsync.signals import outcome_progress
from okrsync.store import Checkin, CheckinAudit
from okrsync.textsafe import markup_safe as safe
from okrsync.tree import KeyResultView, ObjectiveView

BAR = 20
SIGNALS_DOC = "docs/signals.md"
WRAP_MIN = 24  # the fewest cells a column of long text (an error) is squeezed to


@dataclass(frozen=True)
class Column:
    """A column of a table that fits its console. `drop`: 0 never dropped, else dropped when
    the page is too narrow, the highest first. `wrap`: long text wraps in the cell (a word
    too long for it is folded), the rest stay on one line."""

    name: str
    drop: int = 0
    wrap: bool = False
    justify: JustifyMethod = "left"


def fitted_table(
    console: Console, columns: Sequence[Column], rows: Sequence[Sequence[str]], title: str = ""
) -> Table:
    """A table of `rows` (rich markup) as wide as the console allows: optional columns are
    dropped until the kept ones fit on their own lines, with WRAP_MIN cells for wrapped text."""
    shown = list(columns)
    while _needed(shown, columns, rows) > console.width and any(c.drop for c in shown):
        shown.remove(max(shown, key=lambda c: c.drop))
    table = Table(title=title or None)
    for col in shown:
        table.add_column(col.name, justify=col.justify, no_wrap=not col.wrap, overflow="fold")
    picks = [columns.index(c) for c in shown]
    for row in rows:
        table.add_row(*(row[i] for i in picks))
    return table


def _needed(
    shown: Sequence[Column], columns: Sequence[Column], rows: Sequence[Sequence[str]]
) -> int:
    """Cells a table of `shown` needs: each unwrapped column its widest cell, each wrapped
    one up to WRAP_MIN, plus rich's padding and borders (3 a column, 1 at the end)."""
    total = 1
    for col in shown:
        i = columns.index(col)
        widest = max([Text(col.name).cell_len, *(Text.from_markup(r[i]).cell_len for r in rows)])
        total += (min(widest, WRAP_MIN) if col.wrap else widest) + 3
    return total


def bar(value: float | None, width: int = BAR) -> str:
    """A text bar like `████████░░░░  40%`; `no data` when there is no value."""
    if value is None:
        return "[dim]" + "·" * width + "  no data[/]"
    filled = round(value * width)
    return f"{'█' * filled}{'░' * (width - filled)} {value:4.0%}"


def signals_doc(cwd: Path | None = None) -> str:
    """Where this user finds docs/signals.md: the checkout's copy (relative to `cwd` when
    inside it, else absolute), or the repository path when okrsync runs from a wheel."""
    found = Path(__file__).resolve().parents[1] / SIGNALS_DOC
    if not found.is_file():  # an installed wheel carries it as package data
        found = Path(__file__).resolve().parent / "examples" / SIGNALS_DOC
    if not found.is_file():
        return f"{SIGNALS_DOC} in the okrsync repository"
    here = (cwd or Path.cwd()).resolve()
    return str(found.relative_to(here)) if found.is_relative_to(here) else str(found)


def report_footer(cwd: Path | None = None) -> str:
    """The report's last line: where every signal, status, flag and threshold is defined."""
    return f"[dim]What each signal, status and flag means: {safe(signals_doc(cwd))}[/]"


def _kr_line(kr: KeyResultView) -> str:
    unit = f" {kr.unit}" if kr.unit else ""
    cur = "—" if kr.current is None else f"{kr.current:g}"
    arrow = "↑" if kr.direction == "increase" else "↓"
    return (
        f"[bold]{safe(kr.id)}[/] {safe(kr.title)}  "
        f"[cyan]outcome[/] {bar(kr.progress)}  "
        f"[dim]{kr.start:g} → {kr.target:g}{safe(unit)} {arrow}, now {cur}[/]"
    )


def render_tree(console: Console, objectives: Sequence[ObjectiveView]) -> None:
    if not objectives:
        console.print("no objectives in the store; run `okrsync okrs sync` first")
        return
    root = Tree("[bold]OKRs[/]")
    for obj in objectives:
        period = safe(obj.period or f"{obj.start} … {obj.end}")
        owner = f" · {safe(obj.owner)}" if obj.owner else ""
        node = root.add(
            f"[bold magenta]{safe(obj.id)}[/] {safe(obj.title)} [dim]({period}{owner})[/]"
        )
        for kr in obj.key_results:
            kr_node = node.add(_kr_line(kr))
            for t in kr.tactics:
                kr_node.add(
                    f"[green]{safe(t.id)}[/] {safe(t.title)} "
                    f"[dim]· {t.linked_items} linked item(s)[/]"
                )
    console.print(root)


def render_checkins(console: Console, kr: KeyResultView, history: Sequence[Checkin]) -> None:
    table = Table(title=f"{safe(kr.id)}: {safe(kr.title)} ({kr.start:g} → {kr.target:g})")
    for col in ("id", "recorded (UTC)", "value", "progress", "confidence", "by", "note"):
        table.add_column(col, no_wrap=col in ("id", "recorded (UTC)"))
    for c in history:
        p = outcome_progress(kr.start, kr.target, c.value, kr.direction)
        table.add_row(
            f"#{c.id}",
            f"{c.recorded_at:%Y-%m-%d %H:%M}",
            f"{c.value:g}",
            f"{p:.0%}" if p is not None else "",
            "" if c.confidence is None else f"{c.confidence:.2f}",
            safe(c.author or ""),
            safe(c.note or ""),
        )
    if not history:
        console.print(
            f"no check-ins yet for {safe(kr.id)}; "
            f"add one with `okrsync checkin {safe(kr.id)} --value V`"
        )
        return
    console.print(table)


def _reading(value: float | None, at: datetime | None) -> str:
    return "—" if value is None or at is None else f"{value:g} at {at:%Y-%m-%d %H:%M}"


def render_checkin_audit(
    console: Console, kr: KeyResultView, trail: Sequence[CheckinAudit]
) -> None:
    """Every check-in of a key result added, corrected or deleted: when, who, the reading
    before and after, and why."""
    if not trail:
        console.print(f"no check-in of {safe(kr.id)} has been added, corrected or deleted")
        return
    table = Table(title=f"{safe(kr.id)}: check-in audit (UTC)")
    for col in ("changed (UTC)", "by", "action", "check-in", "before", "after", "reason"):
        table.add_column(col, no_wrap=col in ("changed (UTC)", "check-in"))
    for a in trail:
        table.add_row(
            f"{a.changed_at:%Y-%m-%d %H:%M}",
            safe(a.changed_by or ""),
            {"add": "added", "correct": "corrected", "delete": "deleted"}.get(a.action, a.action),
            f"#{a.checkin_id}",
            _reading(a.old_value, a.old_recorded_at),
            _reading(a.value, a.recorded_at),
            safe(a.reason or ""),
        )
    console.print(table)


RUN_COLUMNS = (
    Column("connector"),
    Column("run", justify="right"),
    Column("status"),
    Column("pages", drop=4, justify="right"),
    Column("new", justify="right"),
    Column("changed", justify="right"),
    Column("deleted", justify="right"),
    Column("requests", drop=3, justify="right"),
    Column("retries", drop=2, justify="right"),
    Column("secs", drop=1, justify="right"),
)


def _outcome(status: str) -> str:
    colour = {"ok": "green", "failed": "red"}.get(status, "yellow")
    return f"[{colour}]{safe(status)}[/]"


def render_runs(console: Console, results: Sequence[RunResult]) -> None:
    """One line per connector run: outcome, pages, item counts, requests, time; each error
    below the table as one line (soft-wrapped: never broken at the page width)."""
    rows = [
        [
            safe(r.connector),
            str(r.run_id),
            _outcome(r.status),
            *(str(n) for n in (r.pages, r.created, r.updated, r.deleted, r.requests, r.retries)),
            f"{r.duration_s:.2f}",
        ]
        for r in results
    ]
    console.print(fitted_table(console, RUN_COLUMNS, rows, title="sync runs"))
    for r in results:
        if r.error:
            console.print(f"[red]{safe(r.connector)}:[/] {safe(r.error)}", soft_wrap=True)
        if r.lost_scopes:
            console.print(
                f"[yellow]{safe(r.connector)}: access lost to "
                f"{safe(', '.join(r.lost_scopes))} (items kept, not deleted)[/]",
                soft_wrap=True,
            )
