"""CLI commands `okrsync notify test CHANNEL` (send a sample message now) and `okrsync notify
log` (what was queued, sent and failed). The daemon sends the real ones (okrsync.notify).

Exit codes: `test` 1 when the channel did not take the message (one line saying why, no URL
or secret), 2 for an unknown channel; `log` 0.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from okrsync.cli_state import err, out, state_of
from okrsync.errors import ConfigError
from okrsync.textsafe import markup_safe as safe

if TYPE_CHECKING:
    from okrsync.config import Settings
    from okrsync.config_notify import NotifyChannel
    from okrsync.notify.events import Event
    from okrsync.store import OutboxRow

notify_app = typer.Typer(no_args_is_help=True, help="Notifications: try a channel, see the log.")


class Status(StrEnum):
    pending = "pending"
    sending = "sending"
    sent = "sent"
    failed = "failed"


def sample_event() -> Event:
    """The sample `notify test` sends: a key result turning at risk, marked as a test."""
    from okrsync.notify.events import Event

    return Event(
        key=f"test:{datetime.now(UTC).isoformat()}",
        kind="status",
        subject_type="key_result",
        subject_id="sample-kr",
        title="Test message from okrsync notify test",
        objective_id=None,
        before="on_track",
        after="at_risk",
        at=datetime.now(UTC).isoformat(),
        figures={"progress": 0.4, "expected": 0.55, "current": 40, "start": 0, "target": 100},
    )


def channel_of(settings: Settings, name: str) -> NotifyChannel:
    for channel in settings.notify:
        if channel.name == name:
            return channel
    known = ", ".join(c.name for c in settings.notify) or "none configured"
    raise ConfigError(f"no notify channel named {name!r}; configured: {known} (see [[notify]])")


@notify_app.command("test")
def notify_test(
    ctx: typer.Context,
    channel: Annotated[str, typer.Argument(help="The \\[\\[notify]] channel's name.")],
) -> None:
    """Send a sample message on CHANNEL now (exit 1 if the channel does not take it)."""
    import asyncio

    from okrsync.notify.channels import SendFailed, send

    settings = state_of(ctx).settings
    target = channel_of(settings, channel)
    try:
        asyncio.run(
            send(
                target,
                sample_event(),
                settings.web.public_url,
                timeout_s=settings.notify_defaults.timeout_s,
            )
        )
    except SendFailed as exc:
        err().print(f"[bold red]error:[/] channel {safe(channel)}: {safe(exc)}", highlight=False)
        raise typer.Exit(1) from None
    out().print(f"sent a sample message on {safe(channel)} ({target.kind})", highlight=False)


@notify_app.command("log")
def notify_log(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many rows.")] = 50,
    channel: Annotated[str | None, typer.Option("--channel", help="Only this channel.")] = None,
    status: Annotated[list[Status] | None, typer.Option("--status", help="Only these.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """What was queued, sent, retried and failed, newest first."""
    store = state_of(ctx).store
    rows = store.notify_log(limit, channel, [s.value for s in status] if status else None)
    if as_json:
        typer.echo(json.dumps([_json(r) for r in rows], indent=2, ensure_ascii=False))
        return
    _table(rows)


def _json(r: OutboxRow) -> dict[str, object]:
    return {
        "id": r.id,
        "channel": r.channel,
        "kind": r.kind,
        "event_key": r.event_key,
        "status": r.status,
        "attempts": r.attempts,
        "created_at": r.created_at.isoformat(),
        "sent_at": r.sent_at.isoformat() if r.sent_at else None,
        "next_at": r.next_at.isoformat() if r.status == "pending" else None,
        "last_error": r.last_error,
        "event": r.event,
    }


def _table(rows: list[OutboxRow]) -> None:
    from rich.table import Table

    from okrsync.notify.channels import render
    from okrsync.notify.events import Event

    if not rows:
        out().print("no notifications yet")
        return
    table = Table(title="notifications (newest first, UTC)")
    for col in ("id", "channel", "status", "tries", "queued", "sent", "what", "last error"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r.id),
            safe(r.channel),
            r.status,
            str(r.attempts),
            r.created_at.strftime("%Y-%m-%d %H:%M"),
            r.sent_at.strftime("%Y-%m-%d %H:%M") if r.sent_at else "",
            safe(render(Event.of(r.event), None).headline),
            safe(r.last_error or ""),
        )
    out().print(table)


def register(app: typer.Typer) -> None:
    """Add `okrsync notify ...` to the root app."""
    app.add_typer(notify_app, name="notify")
