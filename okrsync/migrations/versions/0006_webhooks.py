"""webhooks: what triggered a run, and the delivery ids already handled

- `sync_run.trigger`: "schedule" (the daemon's timer), "manual" (`sync --once`, `run --once`,
  the demo) or "webhook" (a verified tracker delivery). Runs recorded before this revision
  read "schedule".
- `webhook_delivery`: one row per tracker delivery handled, by connector and the tracker's
  delivery id, kept for a day: a replayed delivery finds its row and does nothing. The primary
  key makes the check atomic across replicas sharing one PostgreSQL store.
- `webhook_secret`: the secret a tracker chose for one webhook of a connector (Asana sends it
  in the `X-Hook-Secret` handshake, one per webhook), keyed by (connector, resource): the
  resource is the Asana project gid the webhook watches ("" for a connector-wide secret); and
  until when a handshake is expected for it (`okrsync hooks register` opens that window;
  outside it a handshake is refused).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 19:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_run") as batch_op:
        batch_op.add_column(
            sa.Column("trigger", sa.String(), nullable=False, server_default="schedule")
        )
    op.create_table(
        "webhook_delivery",
        sa.Column("connector", sa.String(), nullable=False),
        sa.Column("delivery_id", sa.String(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("connector", "delivery_id"),
    )
    with op.batch_alter_table("webhook_delivery") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_delivery_received_at"), ["received_at"], unique=False
        )
    op.create_table(
        "webhook_secret",
        sa.Column("connector", sa.String(), nullable=False),
        sa.Column("resource", sa.String(), nullable=False),
        sa.Column("secret", sa.String(), nullable=True),
        sa.Column("handshake_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("connector", "resource"),
    )


def downgrade() -> None:
    op.drop_table("webhook_secret")
    with op.batch_alter_table("webhook_delivery") as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_delivery_received_at"))
    op.drop_table("webhook_delivery")
    with op.batch_alter_table("sync_run") as batch_op:
        batch_op.drop_column("trigger")
