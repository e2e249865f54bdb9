"""check-in audit trail: every check-in added, corrected or deleted, by whom and when

- `checkin_audit` keeps one row per write to a check-in: the reading after it (`value`,
  `recorded_at`; none for a deletion) and, for a correction or deletion, the row's values
  before it (`old_*`), with `changed_by`, `changed_at` and an optional `reason`. A deleted
  check-in leaves `checkin` (progress never sees it) and lives on here.
- On SQLite `checkin` is rebuilt with AUTOINCREMENT, so the id of a deleted check-in is never
  given to a new one (its audit rows keep naming it); PostgreSQL sequences never reuse ids.

Check-ins recorded before this revision keep their ids and have no "add" row.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "checkin_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("checkin_id", sa.Integer(), nullable=False),
        sa.Column("key_result_id", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("old_value", sa.Float(), nullable=True),
        sa.Column("old_recorded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("old_confidence", sa.Float(), nullable=True),
        sa.Column("old_note", sa.String(), nullable=True),
        sa.Column("old_author", sa.String(), nullable=True),
        sa.Column("changed_by", sa.String(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(["key_result_id"], ["key_result.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("checkin_audit") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_checkin_audit_checkin_id"), ["checkin_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_checkin_audit_key_result_id"), ["key_result_id"], unique=False
        )
    if op.get_bind().dialect.name == "sqlite":
        # Copy, drop, rename: the rows keep their ids; sqlite_sequence starts at the largest.
        with op.batch_alter_table(
            "checkin", recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ):
            pass


def downgrade() -> None:
    with op.batch_alter_table("checkin_audit") as batch_op:
        batch_op.drop_index(batch_op.f("ix_checkin_audit_key_result_id"))
        batch_op.drop_index(batch_op.f("ix_checkin_audit_checkin_id"))
    op.drop_table("checkin_audit")
