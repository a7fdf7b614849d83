"""published values kept ready to send; decisions searchable by anchor

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 03:30:00

Learners and credit records gain ``value``: the JSON the outbox publishes for their current
version, written when they change, so publishing reads it instead of rebuilding it. Rows written
before this revision have no value and are rebuilt from ``state`` until they next change.

Decisions gain an index on their anchor account: re-resolution looks decisions up by either side,
and without it each batch scanned the table.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('learners', schema=None) as batch_op:
        batch_op.add_column(sa.Column('value', sa.Text(), nullable=True))
    with op.batch_alter_table('credit_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('value', sa.Text(), nullable=True))
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.create_index('ix_decisions_anchor', ['anchor_platform', 'anchor_account'], unique=False)


#: The fields of a record's ``state`` (the published record without id and version), in order.
_STATE_FIELDS = ("learner_id", "course_key", "status", "credits", "hours", "score", "enrolled_at",
                 "completed_at", "sources", "rule")


def downgrade() -> None:
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.drop_index('ix_decisions_anchor')
    # Revision 0001 reads a record's ``state``; rows written since 0002 have only ``value``.
    records = sa.table("credit_records", sa.column("record_id"), sa.column("state"), sa.column("value"))
    conn = op.get_bind()
    rows = conn.execute(sa.select(records.c.record_id, records.c.value).where(records.c.value.is_not(None))).all()
    for record_id, value in rows:
        published = json.loads(value)
        state = json.dumps({k: published[k] for k in _STATE_FIELDS}, separators=(",", ":"), ensure_ascii=False)
        conn.execute(sa.update(records).where(records.c.record_id == record_id).values(state=state))
    with op.batch_alter_table('credit_records', schema=None) as batch_op:
        batch_op.drop_column('value')
    with op.batch_alter_table('learners', schema=None) as batch_op:
        batch_op.drop_column('value')
