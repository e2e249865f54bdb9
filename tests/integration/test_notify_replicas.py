"""Two replicas sharing one store send each notification once: both derive the same event
keys (the outbox keeps one row per event and channel) and a row is claimed by one sender
(a conditional UPDATE with a lease). In one process on SQLite and PostgreSQL, then with two
`okrsync run` daemons on one PostgreSQL, as the issue's "done when" asks."""

from __future__ import annotations

import asyncio
import functools
import json
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from okrsync.config import Settings, load_settings
from okrsync.notify.daemon import Notifier
from okrsync.store import Store
from tests.helpers import run_cli, write
from tests.integration.test_notify import (  # noqa: F401 - fixtures
    Mailbox,
    Receiver,
    config,
    mailbox,
    receiver,
    tree_text,
    turn_at_risk,
    world,
)
from tests.integration.test_service import daemon, events, wait_for
from tests.integration.test_service import world as sandbox_world


async def race(a: Notifier, b: Notifier, rounds: int) -> None:
    for _ in range(rounds):
        await asyncio.gather(a.tick(), b.tick())


def test_two_replicas_send_one_slack_message_and_one_email(
    tmp_path: Path,
    world: tuple[Settings, Store],  # noqa: F811 - the fixture
    receiver: Receiver,  # noqa: F811
    mailbox: Mailbox,  # noqa: F811
    store_url: str,
) -> None:
    """Two Notifiers, each with its own connection pool, scanning and sending at the same
    moments for several rounds after the key result turns at risk: one Slack message and
    one e-mail, and the outbox holds one sent row per channel."""
    _, store_a = world
    settings = load_settings(config(tmp_path, store_url, receiver, mailbox))
    store_b = Store.open(store_url)
    try:
        a = Notifier(store_a, lambda: settings, "replica-a")
        b = Notifier(store_b, lambda: settings, "replica-b")
        turn_at_risk(store_a, settings)
        asyncio.run(race(a, b, 5))
    finally:
        store_b.close()
    assert [body["text"] for _, _, body in receiver.posts] == [
        "Key result conv “Trial conversion”: status on track → at risk"
    ]
    assert len(mailbox.messages) == 1
    rows = store_a.notify_log()
    assert sorted((r.channel, r.status, r.attempts) for r in rows) == [
        ("mail", "sent", 1),
        ("team-slack", "sent", 1),
    ]


def test_a_row_whose_sender_died_is_taken_once_its_lease_lapses(
    world: tuple[Settings, Store],  # noqa: F811
) -> None:
    """Replica A claims the row and dies before settling it: B cannot take it while A's lease
    holds, takes it after, and A's late settle is refused (its lease is lost)."""
    settings, store = world
    turn_at_risk(store, settings)
    from okrsync.notify.daemon import scan

    scan(store, settings)
    [row] = store.notify_claim("replica-a", lease_s=60)
    assert store.notify_claim("replica-b", lease_s=60) == []
    _lapse(store, row.id)
    [again] = store.notify_claim("replica-b", lease_s=60)
    assert (again.id, again.attempts) == (row.id, 2)
    assert store.notify_settle(row.id, "replica-a", "sent") is False
    assert store.notify_settle(row.id, "replica-b", "sent") is True
    assert [r.status for r in store.notify_log()] == ["sent"]


def test_a_row_taken_between_a_senders_look_and_its_claim_is_left_to_the_taker(
    world: tuple[Settings, Store],  # noqa: F811
    store_url: str,
) -> None:
    """Replica B claims the row right after replica A has listed it as due (B's claim runs
    inside A's, between A's SELECT and its UPDATE): A's conditional UPDATE finds the row
    taken and A gets nothing, so the row is sent by B alone."""
    import sqlalchemy as sa

    from okrsync.notify.daemon import scan
    from okrsync.store import OutboxRow

    settings, store_a = world
    turn_at_risk(store_a, settings)
    scan(store_a, settings)
    store_b = Store.open(store_url)
    taken_by_b: list[OutboxRow] = []

    def interleave(conn: object, cursor: object, statement: str, *args: object) -> None:
        if not taken_by_b and statement.lstrip().startswith("SELECT notify_outbox.id"):
            taken_by_b.extend(store_b.notify_claim("replica-b", lease_s=60))

    sa.event.listen(store_a.engine, "after_cursor_execute", interleave)
    try:
        taken_by_a = store_a.notify_claim("replica-a", lease_s=60)
    finally:
        sa.event.remove(store_a.engine, "after_cursor_execute", interleave)
        store_b.close()
    assert len(taken_by_b) == 1
    assert taken_by_a == []


def _lapse(store: Store, row_id: int) -> None:
    import sqlalchemy as sa

    from okrsync.store.tables import NOTIFY_OUTBOX

    with store.tx() as conn:
        conn.execute(
            sa.update(NOTIFY_OUTBOX)
            .where(NOTIFY_OUTBOX.c.id == row_id)
            .values(lease_until=datetime.now(UTC) - timedelta(seconds=1))
        )


NOTIFY = """
[web]
public_url = "https://okr.example.com"

[notify_defaults]
every_s = 1
checkin_reminder_days = 0

[[notify]]
name = "team-slack"
kind = "slack"
url_env = "OKRSYNC_TEST_SLACK_URL"

[[notify]]
name = "mail"
kind = "email"
smtp_host = "localhost"
smtp_port = {port}
ca_file = "{ca}"
from = "okrsync@example.com"
to = ["dana@example.com"]
"""


@pytest.mark.postgres
def test_two_daemons_on_postgres_send_at_risk_once(
    tmp_path: Path,
    pg_url: str,
    receiver: Receiver,  # noqa: F811
    mailbox: Mailbox,  # noqa: F811
) -> None:
    """`okrsync run` twice on one PostgreSQL with a Slack and an e-mail channel: a check-in
    that turns the key result at risk gives exactly one Slack message and one e-mail."""
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    with sandbox_world(tmp_path, pg_url, schedule="every 1h") as (_sb, cfg, env):
        write(tmp_path / "okrs" / "main.toml", tree_text(datetime.now(UTC).date()))
        text = cfg.read_text() + NOTIFY.format(port=mailbox.port, ca=mailbox.ca_file)
        cfg_a = write(tmp_path / "a.toml", text.replace(str(tmp_path / "okrsync.log"), str(log_a)))
        cfg_b = write(tmp_path / "b.toml", text.replace(str(tmp_path / "okrsync.log"), str(log_b)))
        env = {**env, "OKRSYNC_TEST_SLACK_URL": receiver.url + "/hook"}
        with daemon(cfg_a, env, log_a) as a, daemon(cfg_b, env, log_b) as b:
            for log in (log_a, log_b):
                wait_for(functools.partial(_scanned, log), f"{log.name}'s first notification pass")
            assert (
                run_cli("-c", str(cfg_a), "checkin", "conv", "--value", "60", cwd=tmp_path).code
                == 0
            )
            wait_for(lambda: _slack(receiver, "→ on track"), "the on-track message")
            assert (
                run_cli("-c", str(cfg_a), "checkin", "conv", "--value", "40", cwd=tmp_path).code
                == 0
            )
            wait_for(lambda: _slack(receiver, "→ at risk"), "the at-risk message")
            wait_for(lambda: _mails(mailbox, "at risk"), "the at-risk e-mail")
            for log in (log_a, log_b):  # two more passes of each: nothing else goes out
                seen = len(_passes(log))

                def more(log: Path = log, seen: int = seen) -> bool:
                    return len(_passes(log)) > seen + 1

                wait_for(more, "more passes")
            assert a.stop() == 0
            assert b.stop() == 0
    assert len(_slack(receiver, "→ at risk")) == 1
    assert len(_mails(mailbox, "at risk")) == 1
    assert len(receiver.posts) == len(mailbox.messages) == 2  # no_data → on track, → at risk


def _scanned(log: Path) -> bool:
    return bool(_passes(log))


def _passes(log: Path) -> list[object]:
    return [e for e in events(log) if e["event"] == "notify.pass"]


def _slack(receiver: Receiver, text: str) -> list[str]:  # noqa: F811
    return [b["text"] for _, _, b in receiver.posts if text in json.dumps(b, ensure_ascii=False)]


def _mails(mailbox: Mailbox, text: str) -> list[str]:  # noqa: F811
    subjects = [
        str(message_from_bytes(m, policy=policy.default)["Subject"]) for m in mailbox.messages
    ]
    return [s for s in subjects if text in s]
