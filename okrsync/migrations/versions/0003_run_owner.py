"""the owner of each sync run: host, pid and the process's start time

A run still "running" is marked abandoned only when its owner is gone: on the same host,
that pid is not alive or is another process (a different start time); elsewhere, the
connector's lock is free. Nullable: runs recorded before this revision have no owner.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 11:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_run") as batch_op:
        batch_op.add_column(sa.Column("owner_host", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("owner_pid", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("owner_start", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sync_run") as batch_op:
        batch_op.drop_column("owner_start")
        batch_op.drop_column("owner_pid")
        batch_op.drop_column("owner_host")
