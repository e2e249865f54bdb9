"""what a work item's status is derived from, its container's name and its assignee's ids

- `status_basis` (the category the tracker states) and `status_names` (the team's names it
  also depends on) let `okrsync remap` re-apply a changed `status_map` without a re-pull.
  Items stored before this revision have no basis: their status is kept until their next
  update from the tracker.
- `container_name` (an Asana or Jira project's name) replaces the connectors' former
  `custom.project` convention for `container` rules; filled here from `custom.project`.
- `assignee_ids` (e-mail, username or login, account id) for `assignee` rules; empty until
  an item's next update.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 15:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("work_item") as batch_op:
        batch_op.add_column(sa.Column("status_basis", sa.String(), nullable=True))
        batch_op.add_column(
            sa.Column("status_names", sa.JSON(), nullable=False, server_default="[]")
        )
        batch_op.add_column(sa.Column("container_name", sa.String(), nullable=True))
        batch_op.add_column(
            sa.Column("assignee_ids", sa.JSON(), nullable=False, server_default="[]")
        )
    project = (
        "json_extract(custom, '$.project')"
        if op.get_bind().dialect.name == "sqlite"
        else "(custom::jsonb ->> 'project')"
    )
    op.execute(
        f"UPDATE work_item SET container_name = {project} "  # noqa: S608 - no user input
        f"WHERE {project} IS NOT NULL AND {project} <> '' "
        f"AND {project} <> COALESCE(container, '')"
    )


def downgrade() -> None:
    with op.batch_alter_table("work_item") as batch_op:
        batch_op.drop_column("assignee_ids")
        batch_op.drop_column("container_name")
        batch_op.drop_column("status_names")
        batch_op.drop_column("status_basis")
