"""decisions keep the key that signed them

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 20:40:00

Operator decisions are applied only when a key the workers trust signed them (CONTRACT §2). The
decision's ``key_id`` is kept with it, so an audit (``bridge explain``) shows which key spoke for
the operator. Decisions applied before this revision were unsigned: their ``key_id`` is null.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key_id', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.drop_column('key_id')
