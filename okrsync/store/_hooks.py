"""Webhooks in (docs/webhooks.md): deliveries already handled, and tracker-chosen secrets.

    remember_delivery   insert-if-absent of (connector, delivery id): True the first time,
                        False for a replay; rows older than a day are pruned on the way
    expect_handshake    open the window for an Asana `X-Hook-Secret` handshake of one
                        (connector, resource): the project gid the webhook watches, "" for a
                        connector-wide secret; Asana gives every webhook its own secret
    accept_handshake    store the secret, only while that window is open (and close it)
    stored_secrets      the secrets handshakes stored for a connector, by resource

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


def expect_handshake(
    conn: Connection, connector: str, resource: str, until: datetime, at: datetime
) -> None:
    """A handshake for (`connector`, `resource`) is accepted until `until` (a stored secret
    is kept until the handshake replaces it)."""
    t = WEBHOOK_SECRET
    ins = upsert(conn.dialect.name, t).values(
        connector=connector, resource=resource, handshake_until=until, updated_at=at
    )
    conn.execute(
        ins.on_conflict_do_update(
            index_elements=["connector", "resource"],
            set_={"handshake_until": until, "updated_at": at},
        )
    )


def handshake_open(conn: Connection, connector: str, resource: str, at: datetime) -> bool:
    """Whether a handshake for (`connector`, `resource`) is expected at `at`."""
    t = WEBHOOK_SECRET
    q = sa.select(t.c.handshake_until).where(t.c.connector == connector, t.c.resource == resource)
    until = conn.execute(q).scalar()
    return until is not None and until > at


def accept_handshake(
    conn: Connection, connector: str, resource: str, secret: str, at: datetime
) -> bool:
    """Store `secret` for (`connector`, `resource`) and close that window, only if it is open
    at `at`; False otherwise."""
    t = WEBHOOK_SECRET
    res = conn.execute(
        sa.update(t)
        .where(t.c.connector == connector, t.c.resource == resource, t.c.handshake_until > at)
        .values(secret=secret, handshake_until=None, updated_at=at)
    )
    return bool(res.rowcount)


def stored_secrets(conn: Connection, connector: str) -> dict[str, str]:
    """The secrets handshakes stored for `connector`, by resource (empty: none yet)."""
    t = WEBHOOK_SECRET
    q = sa.select(t.c.resource, t.c.secret).where(t.c.connector == connector)
    return {str(r.resource): str(r.secret) for r in conn.execute(q) if r.secret}
