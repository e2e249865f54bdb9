"""Messages and the channels that carry them: Slack (incoming webhook), Microsoft Teams
(workflow webhook, an Adaptive Card), a generic JSON webhook signed with HMAC-SHA256, and
e-mail over SMTP (STARTTLS by default).

`render` turns an event into a `Message` (a headline, what changed, the figures behind it,
the dashboard link); each `payload_*` lays a message out for one kind; `send` delivers it and
raises `SendFailed` with one line that names no URL or secret. A webhook is posted to exactly
its configured URL: redirects are not followed (the URL is a secret of that origin).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Any

import httpx

from okrsync.config_notify import (
    ADDRESS,
    EmailChannel,
    NotifyChannel,
    SlackChannel,
    TeamsChannel,
    UrlChannel,
    WebhookChannel,
)
from okrsync.errors import ConfigError
from okrsync.notify.events import Event
from okrsync.redaction import scrub
from okrsync.textsafe import printable

SCHEMA = "okrsync.notification/1"
SIGNATURE_HEADER = "X-Okrsync-Signature"
TIMESTAMP_HEADER = "X-Okrsync-Timestamp"
_PAGES = {"key_result": "/kr/{}", "tactic": "/tactic/{}", "objective": "/"}  # no objective page
_NOUNS = {"key_result": "Key result", "tactic": "Tactic", "objective": "Objective"}
_NAMES = {
    "on_track": "on track",
    "at_risk": "at risk",
    "off_track": "off track",
    "no_data": "no data",
    "output_without_outcome": "output without outcome",
    "outcome_without_output": "outcome without output",
    "past_end": "after the period end",
    "by_end": "by the period end",
}


class SendFailed(Exception):
    """A channel did not take a message; the text is one line, without URL or secret."""


@dataclass(frozen=True)
class Message:
    headline: str  # what changed, from what to what
    facts: list[tuple[str, str]]  # the figures behind it
    link: str | None  # the dashboard page (None: [web] public_url is not set)

    @property
    def text(self) -> str:
        lines = [self.headline, *(f"{k}: {v}" for k, v in self.facts)]
        return "\n".join([*lines, self.link] if self.link else lines)


def _name(value: Any) -> str:
    return "none" if value is None else _NAMES.get(str(value), str(value))


def _pct(value: Any) -> str:
    return "n/a" if not isinstance(value, int | float) else f"{value * 100:.0f}%"


def render(event: Event, public_url: str | None) -> Message:
    """The message of one event."""
    return Message(_headline(event), _facts(event), link(event, public_url))


def link(event: Event, public_url: str | None) -> str | None:
    """The dashboard page of the event's subject (a connector's: /admin)."""
    if not public_url:
        return None
    page = _PAGES.get(event.subject_type, "/admin")
    return public_url.rstrip("/") + page.format(event.subject_id)


def _headline(e: Event) -> str:
    noun = _NOUNS.get(e.subject_type, "Connector")
    who = printable(f"{noun} {e.subject_id}" + (f" “{e.title}”" if e.title != e.subject_id else ""))
    if e.kind == "status":
        return f"{who}: status {_name(e.before)} → {_name(e.after)}"
    if e.kind == "flag":
        return f"{who}: divergence flag {_name(e.after or e.before)} " + (
            "appeared" if e.after else "cleared"
        )
    if e.kind == "forecast":
        return f"{who}: forecast moved from {_name(e.before)} to {_name(e.after)}"
    if e.kind == "checkin_reminder":
        days = e.figures.get("days_without_checkin")
        return f"{who}: no check-in for {days} days"
    if e.kind == "connector_failing":
        return f"{who}: {e.figures.get('failures')} runs failed in a row"
    if e.kind == "connector_recovered":
        return f"{who}: recovered after {e.figures.get('failures')} failed runs"
    return f"{who}: {e.kind}"


def _facts(e: Event) -> list[tuple[str, str]]:
    f = e.figures
    facts: list[tuple[str, str]] = []
    if "progress" in f and "expected" in f:
        facts.append(("progress", f"{_pct(f['progress'])} (expected {_pct(f['expected'])})"))
    elif "progress" in f:
        facts.append(("progress", _pct(f["progress"])))
    if f.get("current") is not None:
        facts.append(("value", f"{f['current']:g} (start {f['start']:g}, target {f['target']:g})"))
    if "completion" in f:
        done = f.get("items_done")
        counts = f" ({done} of {f.get('items_total')} items)" if done is not None else ""
        facts.append(("completion", _pct(f["completion"]) + counts))
    for key in ("forecast_finish", "period_end", "checked_in_at", "owner", "failures"):
        if f.get(key) is not None:
            facts.append((key.replace("_", " "), str(f[key])))
    if f.get("error"):
        facts.append(("last error", printable(scrub(str(f["error"])))[:300]))
    return facts


# -- layouts ---------------------------------------------------------------------------
def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def payload_slack(m: Message) -> dict[str, Any]:
    """A Slack incoming-webhook body: `text` (the notification's fallback) and `blocks`."""
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_slack_escape(m.headline)}*"}}
    ]
    if m.facts:
        fields = [
            {"type": "mrkdwn", "text": f"*{_slack_escape(k)}*\n{_slack_escape(v)}"}
            for k, v in m.facts[:10]
        ]
        blocks.append({"type": "section", "fields": fields})
    if m.link:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{m.link}|Open>"}]}
        )
    return {"text": _slack_escape(m.headline), "blocks": blocks}


def payload_teams(m: Message) -> dict[str, Any]:
    """A Teams workflow-webhook body: one Adaptive Card in `attachments`."""
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": m.headline, "weight": "Bolder", "wrap": True},
            {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in m.facts]},
        ],
    }
    if m.link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open in okrsync", "url": m.link}]
    attachment = {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
    return {"type": "message", "attachments": [attachment]}


def payload_webhook(m: Message, event: Event) -> dict[str, Any]:
    """okrsync's own document (docs/notifications.md#the-generic-webhook)."""
    return {
        "schema": SCHEMA,
        "event": event.as_json(),
        "message": {"headline": m.headline, "facts": dict(m.facts), "text": m.text},
        "link": m.link,
    }


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256 over `<timestamp>.<body>` (the timestamp is signed, so
    a receiver refusing old timestamps refuses replays)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def owner_addresses(owner: str | None) -> list[str]:
    """The e-mail addresses in an owner's text ("Dana <dana@acme.com>", "dana@acme.com");
    none in a bare name ("Dana")."""
    found = [addr.strip() for _, addr in getaddresses([owner or ""])]
    return [a for a in found if ADDRESS.fullmatch(a)]


def recipients(channel: EmailChannel, event: Event) -> list[str]:
    """The channel's `to`, and for a check-in reminder on a channel with `remind_owners`
    the owner's address as well (once: an address already in `to` is not repeated)."""
    to = list(channel.to)
    if channel.remind_owners and event.kind == "checkin_reminder":
        known = {a.strip().lower() for a in to}
        for address in owner_addresses(event.figures.get("owner")):
            if address.lower() not in known:
                to.append(address)
                known.add(address.lower())
    return to


def email_message(m: Message, channel: EmailChannel, to: list[str]) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = f"[okrsync] {m.headline}"[:200]
    msg["From"] = channel.sender
    msg["To"] = ", ".join(to)
    msg.set_content(m.text + "\n")
    return msg


# -- sending ---------------------------------------------------------------------------
def http_client(transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The client webhook posts go through (one per sender pass: its connections are reused
    from one message to the next). Redirects are not followed: a webhook answers itself."""
    return httpx.AsyncClient(transport=transport, follow_redirects=False)


async def send(
    channel: NotifyChannel,
    event: Event,
    public_url: str | None,
    *,
    timeout_s: float,
    transport: httpx.AsyncBaseTransport | None = None,
    client: httpx.AsyncClient | None = None,
) -> None:
    """Deliver `event` on `channel` (through `client`, else a client of its own on
    `transport`); SendFailed (one line, no URL or secret) when it fails."""
    message = render(event, public_url)
    try:
        if isinstance(channel, EmailChannel):
            await asyncio.wait_for(
                asyncio.to_thread(
                    _smtp_send, channel, message, recipients(channel, event), timeout_s
                ),
                timeout_s * 2,
            )
            return
        assert isinstance(channel, UrlChannel)  # noqa: S101 - every other kind posts to a URL
        body, headers = _body(channel, message, event)
        if client is not None:
            await _post(client, channel, body, headers, timeout_s)
            return
        async with http_client(transport) as own:
            await _post(own, channel, body, headers, timeout_s)
    except ConfigError as exc:
        raise SendFailed(str(exc)) from None
    except TimeoutError:
        raise SendFailed(f"no answer within {timeout_s:g} s") from None


def _body(channel: UrlChannel, m: Message, event: Event) -> tuple[bytes, dict[str, str]]:
    headers = {"Content-Type": "application/json", "User-Agent": "okrsync-notify"}
    if isinstance(channel, SlackChannel):
        doc = payload_slack(m)
    elif isinstance(channel, TeamsChannel):
        doc = payload_teams(m)
    else:
        doc = payload_webhook(m, event)
    body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    if isinstance(channel, WebhookChannel):
        stamp = str(int(time.time()))
        headers[TIMESTAMP_HEADER] = stamp
        headers[SIGNATURE_HEADER] = sign(channel.secret(), stamp, body)
        headers["X-Okrsync-Event"] = event.kind
        headers["X-Okrsync-Delivery"] = event.key
    return body, headers


async def _post(
    client: httpx.AsyncClient,
    channel: UrlChannel,
    body: bytes,
    headers: dict[str, str],
    timeout_s: float,
) -> None:
    url = channel.url()
    try:
        response = await client.post(url, content=body, headers=headers, timeout=timeout_s)
    except httpx.TimeoutException:
        raise SendFailed(f"no answer within {timeout_s:g} s") from None
    except httpx.HTTPError as exc:
        raise SendFailed(f"cannot reach the {channel.kind} webhook: {type(exc).__name__}") from None
    if not 200 <= response.status_code < 300:
        raise SendFailed(f"the {channel.kind} webhook answered HTTP {response.status_code}")


def _smtp_send(channel: EmailChannel, m: Message, to: list[str], timeout_s: float) -> None:
    """One message over SMTP (blocking: run in a thread)."""
    credentials = channel.credentials()
    context = ssl.create_default_context(cafile=channel.ca_file)
    try:
        with smtplib.SMTP(channel.smtp_host, channel.smtp_port, timeout=timeout_s) as smtp:
            if channel.starttls:
                smtp.starttls(context=context)
            if credentials is not None:
                smtp.login(*credentials)
            smtp.send_message(email_message(m, channel, to))
    except smtplib.SMTPException as exc:
        raise SendFailed(f"the SMTP server refused: {type(exc).__name__}") from None
    except ssl.SSLError as exc:
        raise SendFailed(f"STARTTLS failed: {exc.reason or 'TLS error'}") from None
    except OSError as exc:
        raise SendFailed(
            f"cannot reach SMTP server {channel.smtp_host}:{channel.smtp_port}: "
            f"{exc.strerror or type(exc).__name__}"
        ) from None
