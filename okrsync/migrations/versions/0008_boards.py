"""GitHub Projects boards and iterations on work items (issue 19)

- `boards` (ids such as "project:acme/12") and `board_names` (their titles): a `container`
  rule matches either, as well as the item's own container. Empty lists on items stored
  before this revision, until their next update from the tracker.
- `iteration` (its title), `iteration_start` and `iteration_end` (the day after its last):
  what `iteration` rules ("Sprint 14", "@current", "@previous", "@next") read.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 20:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("work_item") as batch_op:
        batch_op.add_column(sa.Column("boards", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(
            sa.Column("board_names", sa.JSON(), nullable=False, server_default="[]")
        )
        batch_op.add_column(sa.Column("iteration", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("iteration_start", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("iteration_end", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("work_item") as batch_op:
        batch_op.drop_column("iteration_end")
        batch_op.drop_column("iteration_start")
        batch_op.drop_column("iteration")
        batch_op.drop_column("board_names")
        batch_op.drop_column("boards")
