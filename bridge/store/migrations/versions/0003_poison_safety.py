"""one content per event id; shared name+mobile counted; the registry's own id

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 16:50:00

Facts gain the keyed digest of their event's content, how many distinct contents their event id
has shown, and the evidence of the kept content (CONTRACT §1: one content per event id).
``rejected_contents`` keeps the contents that lost. ``shared_evidence`` counts the accounts holding
each name+mobile digest (identity rule 8), filled here from the evidence already stored.
``held_outputs`` lists output values held back for exceeding the message bound.
``registry_meta`` holds a random ``registry_id``, made once, so that a worker notices when the
database it started with is replaced under it.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('credit_facts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('content_digest', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('content_key_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('contents', sa.Integer(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('evidence', sa.Text(), nullable=True))
        # Kafka offsets are 64-bit: a long-lived partition passes 2**31.
        batch_op.alter_column('offset', existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False)
        # The per-course event counts of identity versions sum ``contents``: the index covers it,
        # so they stay index-only.
        batch_op.drop_index('ix_credit_facts_account_course')
        batch_op.create_index('ix_credit_facts_account_course', ['platform', 'account', 'course_key', 'contents'],
                              unique=False)
    op.create_table(
        'rejected_contents',
        sa.Column('platform', sa.String(length=16), nullable=False),
        sa.Column('event_id', sa.String(length=128), nullable=False),
        sa.Column('content_digest', sa.String(length=64), nullable=False),
        sa.Column('content_key_id', sa.String(length=32), nullable=False),
        sa.Column('topic', sa.String(length=255), nullable=False),
        sa.Column('partition', sa.Integer(), nullable=False),
        sa.Column('offset', sa.BigInteger(), nullable=False),
        sa.Column('rejected_at', UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint('platform', 'event_id', 'content_digest', name=op.f('pk_rejected_contents')),
    )
    op.create_table(
        'shared_evidence',
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('holders', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('kind', 'digest', name=op.f('pk_shared_evidence')),
    )
    op.execute(
        "INSERT INTO shared_evidence (kind, digest, holders) "
        "SELECT kind, digest, COUNT(*) FROM evidence WHERE kind = 'name_mobile' GROUP BY kind, digest"
    )
    op.create_table(
        'held_outputs',
        sa.Column('topic', sa.String(length=255), nullable=False),
        sa.Column('key', sa.String(length=256), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('held_at', UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint('topic', 'key', name=op.f('pk_held_outputs')),
    )
    meta = op.create_table(
        'registry_meta',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('value', sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_registry_meta')),
    )
    op.bulk_insert(meta, [{'name': 'registry_id', 'value': uuid.uuid4().hex}])


def downgrade() -> None:
    op.drop_table('registry_meta')
    op.drop_table('held_outputs')
    op.drop_table('shared_evidence')
    op.drop_table('rejected_contents')
    with op.batch_alter_table('credit_facts', schema=None) as batch_op:
        batch_op.drop_index('ix_credit_facts_account_course')
        batch_op.create_index('ix_credit_facts_account_course', ['platform', 'account', 'course_key'], unique=False)
        batch_op.drop_column('evidence')
        batch_op.alter_column('offset', existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=False)
        batch_op.drop_column('contents')
        batch_op.drop_column('content_key_id')
        batch_op.drop_column('content_digest')
