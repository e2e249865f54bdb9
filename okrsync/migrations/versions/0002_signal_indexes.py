"""index for the newest signal snapshot of a subject

A covering index on item_link(tactic_id, ...) was measured too: it saved ~15 ms on the
incremental path but led SQLite to walk links in tactic order on the full recompute
(5.0 s → 7.0 s for 1M items), so it is not created.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 15:55:00
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_signal_snapshot_latest", "signal_snapshot", ["subject_type", "subject_id", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_signal_snapshot_latest", table_name="signal_snapshot")
