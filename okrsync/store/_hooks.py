"""Webhooks in (docs/webhooks.md): deliveries already handled, and tracker-chosen secrets.

    remember_delivery   insert-if-absent of (connector, delivery id): True the first time,
                        False for a replay; rows older than a day are pruned on the way
    expect_handshake    open a connector's window for an Asana `X-Hook-Secret` handshake
    accept_handshake    store the secret, only while the window is open (and close it)
    stored_secret       the secret a handshake stored (None: none yet)

Each is one statement (or two) in the caller's transaction, so two replicas receiving the
same delivery or handshake agree: one insert or update wins.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from okrsync.store._sql import upsert
from okrsync.store.tables import WEBHOOK_DELIVERY, WEBHOOK_SECRET

DELIVERY_TTL = timedelta(hours=24)


def remember_delivery(conn: Connection, connector: str, delivery_id: str, at: datetime) -> bool:
    """Record a delivery; False when `connector` already had it within the last day."""
    t = WEBHOOK_DELIVERY
    conn.execute(sa.delete(t).where(t.c.received_at < at - DELIVERY_TTL))
    ins = upsert(conn.dialect.name, t).values(
        connector=connector, delivery_id=delivery_id, received_at=at
    )
    # RETURNING, not rowcount: PostgreSQL's driver reports no usable count for a skipped row.
    skip = ins.on_conflict_do_nothing(index_elements=["connector", "delivery_id"])
    return conn.execute(skip.returning(t.c.delivery_id)).first() is not None


def expect_handshake(conn: Connection, connector: str, until: datetime, at: datetime) -> None:
    """A handshake for `connector` is accepted until `until` (any stored secret is kept)."""
    t = WEBHOOK_SECRET
    ins = upsert(conn.dialect.name, t).values(
        connector=connector, handshake_until=until, updated_at=at
    )
    conn.execute(
        ins.on_conflict_do_update(
            index_elements=["connector"], set_={"handshake_until": until, "updated_at": at}
        )
    )


def handshake_open(conn: Connection, connector: str, at: datetime) -> bool:
    """Whether a handshake for `connector` is expected at `at`."""
    t = WEBHOOK_SECRET
    q = sa.select(t.c.handshake_until).where(t.c.connector == connector)
    until = conn.execute(q).scalar()
    return until is not None and until > at


def accept_handshake(conn: Connection, connector: str, secret: str, at: datetime) -> bool:
    """Store `secret` and close the window, only if it is open at `at`; False otherwise."""
    t = WEBHOOK_SECRET
    res = conn.execute(
        sa.update(t)
        .where(t.c.connector == connector, t.c.handshake_until > at)
        .values(secret=secret, handshake_until=None, updated_at=at)
    )
    return bool(res.rowcount)


def stored_secret(conn: Connection, connector: str) -> str | None:
    """The secret a handshake stored for `connector` (None: none yet)."""
    t = WEBHOOK_SECRET
    value = conn.execute(sa.select(t.c.secret).where(t.c.connector == connector)).scalar()
    return str(value) if value else None
