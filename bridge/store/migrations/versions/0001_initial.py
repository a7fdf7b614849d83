"""initial registry and ledger

Revision ID: 0001
Revises: 
Create Date: 2026-11-29 00:44:10.572021
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('accounts',
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('account', sa.String(length=128), nullable=False),
    sa.Column('learner_id', sa.String(length=64), nullable=True),
    sa.Column('method', sa.String(length=32), nullable=True),
    sa.Column('linked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('event_id', sa.String(length=128), nullable=True),
    sa.Column('first_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('first_event_id', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('platform', 'account', name=op.f('pk_accounts'))
    )
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_accounts_learner_id'), ['learner_id'], unique=False)

    op.create_table('credit_facts',
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('event_id', sa.String(length=128), nullable=False),
    sa.Column('account', sa.String(length=128), nullable=False),
    sa.Column('course_key', sa.String(length=256), nullable=False),
    sa.Column('course_id', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('hours', sa.Float(), nullable=True),
    sa.Column('platform_credits', sa.Float(), nullable=True),
    sa.Column('passed', sa.Boolean(), nullable=True),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('topic', sa.String(length=255), nullable=False),
    sa.Column('partition', sa.Integer(), nullable=False),
    sa.Column('offset', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('platform', 'event_id', name=op.f('pk_credit_facts'))
    )
    with op.batch_alter_table('credit_facts', schema=None) as batch_op:
        batch_op.create_index('ix_credit_facts_account_course', ['platform', 'account', 'course_key'], unique=False)

    op.create_table('credit_records',
    sa.Column('record_id', sa.String(length=64), nullable=False),
    sa.Column('learner_id', sa.String(length=64), nullable=False),
    sa.Column('course_key', sa.String(length=256), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('retired', sa.Boolean(), nullable=False),
    sa.Column('state', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=True),
    sa.Column('credits', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('record_id', name=op.f('pk_credit_records'))
    )
    with op.batch_alter_table('credit_records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_credit_records_learner_id'), ['learner_id'], unique=False)

    op.create_table('data_quality',
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('event_id', sa.String(length=128), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('platform', 'event_id', 'reason', name=op.f('pk_data_quality'))
    )
    op.create_table('decisions',
    sa.Column('decision_id', sa.String(length=64), nullable=False),
    sa.Column('review_id', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('account', sa.String(length=128), nullable=False),
    sa.Column('anchor_platform', sa.String(length=16), nullable=True),
    sa.Column('anchor_account', sa.String(length=128), nullable=True),
    sa.Column('decided_by', sa.String(length=128), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('decision_id', name=op.f('pk_decisions'))
    )
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.create_index('ix_decisions_account', ['platform', 'account'], unique=False)
        batch_op.create_index(batch_op.f('ix_decisions_review_id'), ['review_id'], unique=False)

    op.create_table('evidence',
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('account', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('key_id', sa.String(length=32), nullable=False),
    sa.Column('first_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('first_event_id', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('platform', 'account', 'kind', 'digest', name=op.f('pk_evidence'))
    )
    with op.batch_alter_table('evidence', schema=None) as batch_op:
        batch_op.create_index('ix_evidence_kind_digest', ['kind', 'digest'], unique=False)

    op.create_table('learners',
    sa.Column('learner_id', sa.String(length=64), nullable=False),
    sa.Column('merged_into', sa.String(length=64), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('state', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('learner_id', name=op.f('pk_learners'))
    )
    with op.batch_alter_table('learners', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_learners_merged_into'), ['merged_into'], unique=False)

    op.create_table('outbox',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('topic', sa.String(length=255), nullable=False),
    sa.Column('key', sa.String(length=256), nullable=False),
    sa.Column('tombstone', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox'))
    )
    op.create_table('review_items',
    sa.Column('review_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('account', sa.String(length=128), nullable=False),
    sa.Column('candidates', sa.JSON(), nullable=False),
    sa.Column('raised_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('event_id', sa.String(length=128), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('decision_id', sa.String(length=64), nullable=True),
    sa.Column('decided_by', sa.String(length=128), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('review_id', name=op.f('pk_review_items'))
    )


def downgrade() -> None:
    op.drop_table('review_items')
    op.drop_table('outbox')
    with op.batch_alter_table('learners', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_learners_merged_into'))

    op.drop_table('learners')
    with op.batch_alter_table('evidence', schema=None) as batch_op:
        batch_op.drop_index('ix_evidence_kind_digest')

    op.drop_table('evidence')
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_decisions_review_id'))
        batch_op.drop_index('ix_decisions_account')

    op.drop_table('decisions')
    op.drop_table('data_quality')
    with op.batch_alter_table('credit_records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_credit_records_learner_id'))

    op.drop_table('credit_records')
    with op.batch_alter_table('credit_facts', schema=None) as batch_op:
        batch_op.drop_index('ix_credit_facts_account_course')

    op.drop_table('credit_facts')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_accounts_learner_id'))

    op.drop_table('accounts')
