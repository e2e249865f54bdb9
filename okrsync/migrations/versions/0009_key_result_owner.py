"""A key result's own owner (issue 18: the check-in reminder reaches it)

- `key_result.owner`: the `owner` of a `[[key_result]]` in the mapping files (a name, an
  e-mail address or both, as written). Empty on key results stored before this revision,
  until the next load of the mapping files fills it; the reminder then names it instead of
  the objective's owner.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("key_result") as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("key_result") as batch_op:
        batch_op.drop_column("owner")
