"""Notifications out, end to end on a real store: a key result turning at risk reaches a
loopback Slack receiver and a local SMTP server (aiosmtpd, STARTTLS with a throwaway
certificate) once; a failing channel is retried with backoff while syncing goes on; a
restart does not resend; `okrsync notify test` and `notify log` on the command line."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from okrsync.config import Settings, load_settings
from okrsync.notify.daemon import Notifier, scan
from okrsync.okrfile import load_tree
from okrsync.pipeline import recompute
from okrsync.store import Store
from tests.helpers import run_cli, write


def tree_text(today: date, kr_owner: str | None = None) -> str:
    """One objective running 50 days either side of today (expected progress 0.5), one key
    result from 0 to 100: 60 is on track, 40 at risk, 20 off track (owned by `kr_owner`)."""
    start, end = today - timedelta(days=50), today + timedelta(days=50)
    owner = f'owner = "{kr_owner}"' if kr_owner else ""
    return f"""
    [[objective]]
    id = "grow"
    title = "Grow revenue"
    owner = "Dana"
    start = {start.isoformat()}
    end = {end.isoformat()}

    [[key_result]]
    id = "conv"
    objective = "grow"
    title = "Trial conversion"
    start = 0
    target = 100
    {owner}
    """


@dataclass
class Receiver:
    """A loopback HTTP server that records every POST (path, headers, JSON body) and answers
    `status` (settable: a failing channel)."""

    status: int = 200
    posts: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            rec.posts.append((self.path, dict(self.headers), json.loads(body)))
            self.send_response(rec.status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


@dataclass
class Mailbox:
    host: str
    port: int
    ca_file: str
    messages: list[bytes] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)  # each message's RCPT TO


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key, cert = tmp / "smtp.key", tmp / "smtp.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[Mailbox]:
    """aiosmtpd on loopback requiring STARTTLS, with a throwaway self-signed certificate."""
    import ssl

    from aiosmtpd.controller import Controller

    key, cert = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    box = Mailbox("localhost", 0, str(cert))

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            box.messages.append(envelope.content)
            box.recipients.append(list(envelope.rcpt_tos))
            return "250 OK"

    box.port = free_port()
    controller = Controller(
        Handler(), hostname="127.0.0.1", port=box.port, tls_context=context, require_starttls=True
    )
    controller.start()
    yield box
    controller.stop()


def config(
    tmp_path: Path,
    url: str,
    receiver: Receiver,
    mailbox: Mailbox | None,
    *,
    remind_owners: bool = False,
) -> Path:
    mail = (
        f"""
    [[notify]]
    name = "mail"
    kind = "email"
    smtp_host = "{mailbox.host}"
    smtp_port = {mailbox.port}
    ca_file = "{mailbox.ca_file}"
    from = "okrsync@example.com"
    to = ["dana@example.com"]
    remind_owners = {str(remind_owners).lower()}
    """
        if mailbox
        else ""
    )
    return write(
        tmp_path / "okrsync.toml",
        f"""
    [store]
    url = "{url}"

    [mappings]
    paths = ["{tmp_path / "mappings"}"]

    [web]
    public_url = "https://okr.example.com/"

    [notify_defaults]
    timeout_s = 5
    retry_base_s = 1
    max_attempts = 3

    [[notify]]
    name = "team-slack"
    kind = "slack"
    url_env = "OKRSYNC_TEST_SLACK_URL"
    {mail}
    """,
    )


@pytest.fixture
def world(
    tmp_path: Path, store_url: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Settings, Store]]:
    """Settings with a Slack channel (and e-mail where the test asks) over a store holding
    the tree, checked in on track, with the notification watermarks set."""
    monkeypatch.setenv("OKRSYNC_TEST_SLACK_URL", receiver.url + "/services/T/B/secret")
    write(tmp_path / "mappings" / "okrs.toml", tree_text(datetime.now(UTC).date()))
    settings = load_settings(config(tmp_path, store_url, receiver, None))
    store = Store.open(store_url)
    store.apply_okr_tree(load_tree(settings.mapping_paths()))
    store.add_checkin("conv", 60)
    recompute(store, settings.signals)
    scan(store, settings)  # the watermarks: what exists now is history
    yield settings, store
    store.close()


def turn_at_risk(store: Store, settings: Settings) -> None:
    store.add_checkin("conv", 40)
    recompute(store, settings.signals)


def tick(notifier: Notifier) -> int:
    return asyncio.run(notifier.tick())


def test_a_key_result_turning_at_risk_is_sent_once_to_slack(
    world: tuple[Settings, Store], receiver: Receiver
) -> None:
    """on_track → at_risk: one Slack message (text + blocks) naming the change, the figures
    and the dashboard link; later passes and a restart send nothing more."""
    settings, store = world
    turn_at_risk(store, settings)
    assert tick(Notifier(store, lambda: settings, "a")) == 1
    assert tick(Notifier(store, lambda: settings, "b")) == 0  # a restart: nothing again
    assert len(receiver.posts) == 1
    path, _headers, body = receiver.posts[0]
    assert path == "/services/T/B/secret"
    assert "on track → at risk" in body["text"]
    flat = json.dumps(body["blocks"])
    assert "40% (expected 50%)" in flat
    assert "https://okr.example.com/kr/conv" in flat
    [row] = store.notify_log()
    assert (row.status, row.attempts, row.channel) == ("sent", 1, "team-slack")


def test_a_failing_channel_is_retried_with_backoff_and_then_given_up(
    world: tuple[Settings, Store], receiver: Receiver
) -> None:
    """HTTP 500: the row goes back to pending with a later next attempt; after max_attempts
    it is failed; nothing is sent twice and the error names no URL."""
    settings, store = world
    receiver.status = 500
    turn_at_risk(store, settings)
    notifier = Notifier(store, lambda: settings, "a")
    tick(notifier)
    [row] = store.notify_log()
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error == "the slack webhook answered HTTP 500"
    assert row.next_at > datetime.now(UTC)
    assert tick(notifier) == 0  # not due yet: backoff
    for _ in range(2):
        _force_due(store, row.id)
        tick(notifier)
    [row] = store.notify_log()
    assert (row.status, row.attempts) == ("failed", 3)
    assert len(receiver.posts) == 3


def _force_due(store: Store, row_id: int) -> None:
    """Make a retried row due now (the test does not wait for its backoff)."""
    import sqlalchemy as sa

    from okrsync.store.tables import NOTIFY_OUTBOX

    with store.tx() as conn:
        conn.execute(
            sa.update(NOTIFY_OUTBOX)
            .where(NOTIFY_OUTBOX.c.id == row_id)
            .values(next_at=datetime.now(UTC) - timedelta(seconds=1))
        )


def test_a_connector_failing_three_runs_in_a_row_and_recovering(
    world: tuple[Settings, Store], receiver: Receiver
) -> None:
    """Runs recorded by anyone (here: straight in the store): the third failure in a row
    sends `connector_failing` once, the next ok run `connector_recovered`."""
    settings, store = world
    for status in ("failed", "failed", "failed", "failed", "ok", "ok"):
        run = store.start_run("jira-cloud")
        store.finish_run(run, status, error="HTTP 401" if status == "failed" else None)
    tick(Notifier(store, lambda: settings, "a"))
    texts = [body["text"] for _, _, body in receiver.posts]
    assert texts == [
        "Connector jira-cloud: 3 runs failed in a row",
        "Connector jira-cloud: recovered after 4 failed runs",
    ]


def test_a_failing_channel_never_blocks_syncing(
    world: tuple[Settings, Store], receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Slack URL points at a port nobody listens on: the pass logs and returns, and a
    recompute (what a sync ends with) goes on while the row waits for its retry."""
    settings, store = world
    monkeypatch.setenv("OKRSYNC_TEST_SLACK_URL", "http://127.0.0.1:9/hook")
    turn_at_risk(store, settings)
    tick(Notifier(store, lambda: settings, "a"))
    [row] = store.notify_log()
    assert row.status == "pending"
    assert row.last_error is not None
    assert "127.0.0.1:9" not in row.last_error
    store.add_checkin("conv", 20)
    assert recompute(store, settings.signals).snapshots_written > 0


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_at_risk_sends_one_email_over_starttls(
    tmp_path: Path,
    world: tuple[Settings, Store],
    receiver: Receiver,
    mailbox: Mailbox,
    store_url: str,
) -> None:
    """With an e-mail channel beside Slack: one plain-text message with a subject naming
    the change, over STARTTLS to a server whose certificate `ca_file` trusts."""
    _, store = world
    settings = load_settings(config(tmp_path, store_url, receiver, mailbox))
    turn_at_risk(store, settings)
    tick(Notifier(store, lambda: settings, "a"))
    assert len(receiver.posts) == 1
    [raw] = mailbox.messages
    mail = message_from_bytes(raw, policy=policy.default)
    assert (
        mail["Subject"] == "[okrsync] Key result conv “Trial conversion”: status on track → at risk"
    )
    assert "https://okr.example.com/kr/conv" in mail.get_content()


def test_notify_test_sends_a_sample_and_fails_with_one_line(
    tmp_path: Path, receiver: Receiver
) -> None:
    """`okrsync notify test CHANNEL`: exit 0 and the sample arrives; a channel answering 500:
    exit 1 with one line naming the channel and no URL; an unknown channel: exit 2."""
    url = f"sqlite:///{tmp_path / 'okrsync.db'}"
    cfg = config(tmp_path, url, receiver, None)
    env = {"OKRSYNC_TEST_SLACK_URL": receiver.url + "/services/T/B/secret"}
    ok = run_cli("-c", str(cfg), "notify", "test", "team-slack", cwd=tmp_path, env=env)
    assert ok.code == 0, ok.stderr
    assert "sent a sample message on team-slack (slack)" in ok.stdout
    assert "on track → at risk" in receiver.posts[0][2]["text"]
    receiver.status = 500
    failed = run_cli("-c", str(cfg), "notify", "test", "team-slack", cwd=tmp_path, env=env)
    assert failed.code == 1
    assert failed.stderr.strip() == (
        "error: channel team-slack: the slack webhook answered HTTP 500"
    )
    unknown = run_cli("-c", str(cfg), "notify", "test", "nope", cwd=tmp_path, env=env)
    assert unknown.code == 2
    assert "no notify channel named 'nope'; configured: team-slack" in unknown.stderr


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_notify_log_lists_what_was_sent_and_failed(
    tmp_path: Path, world: tuple[Settings, Store], receiver: Receiver
) -> None:
    """`okrsync notify log --json` after one sent message: its channel, status, attempts and
    event; `--status failed` lists none; the table names the change."""
    settings, store = world
    turn_at_risk(store, settings)
    tick(Notifier(store, lambda: settings, "a"))
    cfg = settings.config_file
    assert cfg is not None
    logged = run_cli("-c", str(cfg), "notify", "log", "--json", cwd=tmp_path)
    assert logged.code == 0, logged.stderr
    [row] = json.loads(logged.stdout)
    assert (row["channel"], row["status"], row["attempts"]) == ("team-slack", "sent", 1)
    assert row["event"]["after"] == "at_risk"
    none = run_cli("-c", str(cfg), "notify", "log", "--json", "--status", "failed", cwd=tmp_path)
    assert json.loads(none.stdout) == []
    table = run_cli("-c", str(cfg), "notify", "log", cwd=tmp_path)
    assert "status on track → at risk" in table.stdout


def test_a_channel_that_never_answers_is_cut_at_its_timeout(
    world: tuple[Settings, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A webhook that accepts the connection and never answers: the pass ends after
    timeout_s with the row pending again ("no answer within 1 s"), so the job never hangs."""
    import socket

    settings, store = world
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    monkeypatch.setenv("OKRSYNC_TEST_SLACK_URL", f"http://127.0.0.1:{silent.getsockname()[1]}/")
    quick = settings.model_copy(
        update={"notify_defaults": settings.notify_defaults.model_copy(update={"timeout_s": 1})}
    )
    turn_at_risk(store, quick)
    try:
        tick(Notifier(store, lambda: quick, "a"))
    finally:
        silent.close()
    [row] = store.notify_log()
    assert (row.status, row.last_error) == ("pending", "no answer within 1 s")


@pytest.mark.parametrize(
    ("kr_owner", "remind_owners", "rcpt"),
    [
        ("Lee <lee@example.com>", True, ["dana@example.com", "lee@example.com"]),
        ("lee@example.com", True, ["dana@example.com", "lee@example.com"]),
        ("Lee <lee@example.com>", False, ["dana@example.com"]),
        ("Lee", True, ["dana@example.com"]),
    ],
    ids=["name-and-address", "address", "remind-owners-off", "no-address"],
)
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_checkin_reminder_reaches_the_key_result_owner_by_email(
    tmp_path: Path,
    store_url: str,
    receiver: Receiver,
    mailbox: Mailbox,
    monkeypatch: pytest.MonkeyPatch,
    kr_owner: str,
    remind_owners: bool,
    rcpt: list[str],
) -> None:
    """A key result never checked in, 50 days into its period: one reminder e-mail naming
    its owner, sent to `to` and, with remind_owners, to the owner's address too (one
    message, one outbox row); without remind_owners or an address, to `to` alone."""
    monkeypatch.setenv("OKRSYNC_TEST_SLACK_URL", receiver.url + "/services/T/B/secret")
    write(tmp_path / "mappings" / "okrs.toml", tree_text(datetime.now(UTC).date(), kr_owner))
    cfg = config(tmp_path, store_url, receiver, mailbox, remind_owners=remind_owners)
    settings = load_settings(cfg)
    store = Store.open(store_url)
    try:
        store.apply_okr_tree(load_tree(settings.mapping_paths()))
        tick(Notifier(store, lambda: settings, "a"))
        tick(Notifier(store, lambda: settings, "b"))  # a restart: nothing again
        assert mailbox.recipients == [rcpt]
        mail = message_from_bytes(mailbox.messages[0], policy=policy.default)
        assert mail["To"] == ", ".join(rcpt)
        assert mail["Subject"] == (
            "[okrsync] Key result conv “Trial conversion”: no check-in for 50 days"
        )
        assert f"owner: {kr_owner}" in mail.get_content()
        mails = [r for r in store.notify_log() if r.channel == "mail"]
        assert [(r.status, r.event["kind"]) for r in mails] == [("sent", "checkin_reminder")]
    finally:
        store.close()


def test_enqueueing_the_same_events_again_adds_none(store: Store) -> None:
    """The outbox is insert-if-absent on (event_key, channel), and its count is of the rows
    really inserted, on SQLite and PostgreSQL (whose driver gives no usable rowcount for a
    skipped row): a second scan of the same events queues nothing new."""
    rows = [
        {"event_key": f"kr:{i}:at_risk", "channel": ch, "kind": "at_risk", "event": {"i": i}}
        for i in range(3)
        for ch in ("slack", "mail")
    ]
    assert store.notify_enqueue(rows) == 6
    assert store.notify_enqueue(rows) == 0
    more = [*rows, {**rows[0], "channel": "teams"}]
    assert store.notify_enqueue(more) == 1
