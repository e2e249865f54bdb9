"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 14:17:11.801311
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('item_link',
    sa.Column('connector', sa.String(), nullable=False),
    sa.Column('external_id', sa.String(), nullable=False),
    sa.Column('tactic_id', sa.String(), nullable=False),
    sa.Column('rule_id', sa.String(), nullable=False),
    sa.Column('linked_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('connector', 'external_id', 'tactic_id', 'rule_id')
    )
    with op.batch_alter_table('item_link', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_item_link_tactic_id'), ['tactic_id'], unique=False)

    op.create_table('objective',
    sa.Column('id', sa.String(), nullable=False),
    sa.Column('title', sa.String(), nullable=False),
    sa.Column('owner', sa.String(), nullable=True),
    sa.Column('period', sa.String(), nullable=True),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('parent_id', sa.String(), nullable=True),
    sa.Column('weight', sa.Float(), nullable=False),
    sa.Column('source', sa.String(), nullable=False),
    sa.Column('archived_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['parent_id'], ['objective.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('signal_snapshot',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subject_type', sa.String(), nullable=False),
    sa.Column('subject_id', sa.String(), nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('digest', sa.String(), nullable=False),
    sa.Column('values', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('signal_snapshot', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_signal_snapshot_subject_id'), ['subject_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_signal_snapshot_subject_type'), ['subject_type'], unique=False)

    op.create_table('sync_cursor',
    sa.Column('connector', sa.String(), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('connector')
    )
    op.create_table('sync_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('connector', sa.String(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(), nullable=False),
    sa.Column('pages', sa.Integer(), nullable=False),
    sa.Column('requests', sa.Integer(), nullable=False),
    sa.Column('retries', sa.Integer(), nullable=False),
    sa.Column('rate_limit_wait_s', sa.Float(), nullable=False),
    sa.Column('items_created', sa.Integer(), nullable=False),
    sa.Column('items_updated', sa.Integer(), nullable=False),
    sa.Column('items_deleted', sa.Integer(), nullable=False),
    sa.Column('lost_scopes', sa.JSON(), nullable=False),
    sa.Column('error', sa.String(), nullable=True),
    sa.Column('host', sa.String(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('sync_run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sync_run_connector'), ['connector'], unique=False)

    op.create_table('work_item',
    sa.Column('connector', sa.String(), nullable=False),
    sa.Column('external_id', sa.String(), nullable=False),
    sa.Column('key', sa.String(), nullable=False),
    sa.Column('kind', sa.String(), nullable=False),
    sa.Column('item_type', sa.String(), nullable=True),
    sa.Column('title', sa.String(), nullable=False),
    sa.Column('url', sa.String(), nullable=True),
    sa.Column('container', sa.String(), nullable=True),
    sa.Column('parent_key', sa.String(), nullable=True),
    sa.Column('labels', sa.JSON(), nullable=False),
    sa.Column('milestone', sa.String(), nullable=True),
    sa.Column('section', sa.String(), nullable=True),
    sa.Column('assignee', sa.String(), nullable=True),
    sa.Column('estimate', sa.Float(), nullable=True),
    sa.Column('due', sa.Date(), nullable=True),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status_raw', sa.String(), nullable=False),
    sa.Column('status', sa.String(), nullable=False),
    sa.Column('custom', sa.JSON(), nullable=False),
    sa.Column('previous_keys', sa.JSON(), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lost_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('connector', 'external_id')
    )
    with op.batch_alter_table('work_item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_work_item_container'), ['container'], unique=False)
        batch_op.create_index(batch_op.f('ix_work_item_key'), ['key'], unique=False)

    op.create_table('key_result',
    sa.Column('id', sa.String(), nullable=False),
    sa.Column('objective_id', sa.String(), nullable=False),
    sa.Column('title', sa.String(), nullable=False),
    sa.Column('unit', sa.String(), nullable=True),
    sa.Column('start_value', sa.Float(), nullable=False),
    sa.Column('target_value', sa.Float(), nullable=False),
    sa.Column('direction', sa.String(), nullable=False),
    sa.Column('weight', sa.Float(), nullable=False),
    sa.Column('source', sa.String(), nullable=False),
    sa.Column('archived_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['objective_id'], ['objective.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('key_result', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_key_result_objective_id'), ['objective_id'], unique=False)

    op.create_table('checkin',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key_result_id', sa.String(), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=True),
    sa.Column('note', sa.String(), nullable=True),
    sa.Column('author', sa.String(), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['key_result_id'], ['key_result.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('checkin', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checkin_key_result_id'), ['key_result_id'], unique=False)

    op.create_table('tactic',
    sa.Column('id', sa.String(), nullable=False),
    sa.Column('key_result_id', sa.String(), nullable=False),
    sa.Column('title', sa.String(), nullable=False),
    sa.Column('weight', sa.Float(), nullable=False),
    sa.Column('source', sa.String(), nullable=False),
    sa.Column('archived_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['key_result_id'], ['key_result.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('tactic', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tactic_key_result_id'), ['key_result_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('tactic', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tactic_key_result_id'))

    op.drop_table('tactic')
    with op.batch_alter_table('checkin', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checkin_key_result_id'))

    op.drop_table('checkin')
    with op.batch_alter_table('key_result', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_key_result_objective_id'))

    op.drop_table('key_result')
    with op.batch_alter_table('work_item', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_work_item_key'))
        batch_op.drop_index(batch_op.f('ix_work_item_container'))

    op.drop_table('work_item')
    with op.batch_alter_table('sync_run', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sync_run_connector'))

    op.drop_table('sync_run')
    op.drop_table('sync_cursor')
    with op.batch_alter_table('signal_snapshot', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_signal_snapshot_subject_type'))
        batch_op.drop_index(batch_op.f('ix_signal_snapshot_subject_id'))

    op.drop_table('signal_snapshot')
    op.drop_table('objective')
    with op.batch_alter_table('item_link', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_item_link_tactic_id'))

    op.drop_table('item_link')
