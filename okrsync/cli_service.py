"""CLI commands: `okrsync run [--once]`, `okrsync runs [show ID]`, `okrsync logs`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from okrsync.cli_state import out, state_of
from okrsync.errors import ConfigError
from okrsync.textsafe import markup_safe as safe
from okrsync.textsafe import printable

if TYPE_CHECKING:  # imported where used, so `okrsync --version` stays light (cli_state)
    from rich.table import Table

    from okrsync.store import SyncRunRow

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_AGO = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

runs_app = typer.Typer(help="Sync runs recorded in the store.")


def parse_since(text: str) -> datetime:
    """`2026-11-01` (UTC midnight), an ISO timestamp, or an age such as `24h`, `30m`, `7d`."""
    m = _AGO.match(text.strip())
    if m:
        return datetime.now(UTC) - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: use a date (2026-11-01), an ISO time, or an age like 24h / 30m / 7d"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


SinceOpt = Annotated[
    str | None, typer.Option("--since", help="A date (2026-11-01) or an age (24h, 30m, 7d).")
]


def run_cmd(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="Run every connector once and exit (1 if any failed).")
    ] = False,
) -> None:
    """Run the sync daemon: scheduled jobs, /healthz /readyz /metrics, SIGHUP reload."""
    from okrsync.service import run

    code = run(state_of(ctx).config_path, once=once)
    raise typer.Exit(code)


@runs_app.callback(invoke_without_command=True)
def runs_list(
    ctx: typer.Context,
    connector: Annotated[str | None, typer.Option("--connector", help="Only this one.")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only runs not ended ok.")] = False,
    since: SinceOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 50,
) -> None:
    """List sync runs, newest first (`okrsync runs show ID` for one in full)."""
    if ctx.invoked_subcommand is not None:
        return
    state = state_of(ctx)
    _mapping_status(ctx)
    start = parse_since(since) if since else None
    rows = state.store.runs(connector, failed=failed, since=start, limit=limit)
    if not rows:
        filtered = connector or failed or since
        out().print("no sync runs recorded" + (" matching the filters" if filtered else ""))
        return
    out().print(_runs_table(rows))


def _mapping_status(ctx: typer.Context) -> None:
    """Say when the mapping files are broken now (the daemon keeps its last good mapping)."""
    state = state_of(ctx)
    state.settings  # noqa: B018 - a broken config file is its own error, raised here
    try:
        state.tree()
    except ConfigError as exc:
        out().print(
            f"[bold red]mapping files invalid[/] (a running daemon keeps its last good "
            f"mapping): {safe(str(exc))}",
            soft_wrap=True,
        )


RUNS_COLUMNS = (
    ("id", 0),
    ("connector", 0),
    ("started (UTC)", 1),
    ("took", 7),
    ("status", 0),
    ("trigger", 8),
    ("pages", 3),
    ("requests", 4),
    ("retries", 5),
    ("rl wait", 6),
    ("+/~/-", 2),
    ("host", 9),
)


def _runs_table(rows: Iterable[SyncRunRow]) -> Table:
    """Id, connector, status and the full error always (the error wraps in its cell); the
    other columns as the page width allows, the host first to go, the start time last."""
    from okrsync.render import Column, fitted_table

    columns = [Column(name, drop=drop) for name, drop in RUNS_COLUMNS]
    columns.append(Column("error", wrap=True))
    return fitted_table(out(), columns, [_run_cells(r) for r in rows])


def _run_cells(r: SyncRunRow) -> list[str]:
    return [
        str(r.id),
        safe(r.connector),
        f"{r.started_at:%Y-%m-%d %H:%M:%S}",
        _took(r),
        _status(r.status),
        safe(r.trigger),
        str(r.pages),
        str(r.requests),
        str(r.retries),
        f"{r.rate_limit_wait_s:.1f}s",
        f"{r.items_created}/{r.items_updated}/{r.items_deleted}",
        safe(r.host or ""),
        safe(printable(r.error or "")),
    ]


def _took(r: SyncRunRow) -> str:
    if r.ended_at is None:
        return "…"
    return f"{(r.ended_at - r.started_at).total_seconds():.1f}s"


def _status(status: str) -> str:
    colour = {"ok": "green", "failed": "red", "interrupted": "yellow"}.get(status, "cyan")
    return f"[{colour}]{safe(status)}[/]"


@runs_app.command("show")
def runs_show(ctx: typer.Context, run_id: Annotated[int, typer.Argument(help="Run id.")]) -> None:
    """Everything recorded about one sync run."""
    r = state_of(ctx).store.run(run_id)
    if r is None:
        raise ConfigError(f"no sync run {run_id}; list them with `okrsync runs`")
    fields: list[tuple[str, Any]] = [
        ("connector", r.connector),
        ("status", _status(r.status)),
        ("trigger", r.trigger),
        ("started", f"{r.started_at:%Y-%m-%d %H:%M:%S} UTC"),
        ("ended", f"{r.ended_at:%Y-%m-%d %H:%M:%S} UTC" if r.ended_at else "—"),
        ("took", _took(r)),
        ("host", r.host or "—"),
        ("pages", r.pages),
        ("requests", r.requests),
        ("retries", r.retries),
        ("rate-limit wait", f"{r.rate_limit_wait_s:.1f}s"),
        (
            "items",
            f"{r.items_created} created, {r.items_updated} updated, {r.items_deleted} deleted",
        ),
        ("lost scopes", ", ".join(r.lost_scopes) or "—"),
        ("error", r.error or "—"),
    ]
    out().print(f"[bold]sync run {r.id}[/]")
    for label, value in fields:
        out().print(f"  {label:16} {value if label == 'status' else safe(value)}", soft_wrap=True)
    out().print(f"[dim]its log lines: okrsync logs --run {r.id}[/]")


# -- logs ------------------------------------------------------------------------------------
def log_events(lines: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(line, event) for every JSON object line; other lines are skipped."""
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            yield line.rstrip("\n"), event


def matches(
    event: dict[str, Any],
    *,
    connector: str | None = None,
    run_id: int | None = None,
    level: str | None = None,
    since: datetime | None = None,
) -> bool:
    """Whether a log event passes every given filter (level: that level or worse)."""
    if connector is not None and event.get("connector") != connector:
        return False
    if run_id is not None and str(event.get("run_id")) != str(run_id):
        return False
    if level is not None and LEVELS.get(str(event.get("level")), 0) < LEVELS[level]:
        return False
    return since is None or _event_time(event) >= since


def _event_time(event: dict[str, Any]) -> datetime:
    try:
        when = datetime.fromisoformat(str(event.get("timestamp")))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def render_event(event: dict[str, Any]) -> str:
    """One readable line: time, level, event, then the other keys as k=v."""
    rest = {k: v for k, v in event.items() if k not in ("timestamp", "level", "event")}
    pairs = " ".join(
        f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in rest.items()
    )
    return f"{event.get('timestamp', '')} {event.get('level', ''):7} {event.get('event')} {pairs}"


def logs_cmd(
    ctx: typer.Context,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="JSON-lines log file.")] = None,
    connector: Annotated[str | None, typer.Option("--connector")] = None,
    run_id: Annotated[int | None, typer.Option("--run", help="Only this sync run's lines.")] = None,
    level: Annotated[
        str | None, typer.Option("--level", help="This level or worse: debug|info|warning|error.")
    ] = None,
    since: SinceOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON lines.")] = False,
) -> None:
    """Filter the daemon's JSON log file (default: logging.file from the config)."""
    path = file or _configured_log(ctx)
    if level is not None and level not in LEVELS:
        raise typer.BadParameter(f"{level!r}: use one of {', '.join(LEVELS)}", param_hint="--level")
    start = parse_since(since) if since else None
    try:
        fh = path.open(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(f"cannot read log file {path}: {exc.strerror}") from None
    with fh:
        for line, event in log_events(fh):
            if matches(event, connector=connector, run_id=run_id, level=level, since=start):
                text = line if as_json else render_event(event)
                out().print(printable(text), markup=False, highlight=False, soft_wrap=True)


def _configured_log(ctx: typer.Context) -> Path:
    configured = state_of(ctx).settings.logging.file
    if not configured:
        raise ConfigError(
            "no log file to read: pass --file, or set logging.file in the config "
            "(the daemon then writes JSON lines there)"
        )
    return Path(configured)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("run")(run_cmd)
    app.add_typer(runs_app, name="runs")
    app.command("logs")(logs_cmd)
