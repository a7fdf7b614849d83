"""identity versions in 64 bits

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 12:00:00

An identity's version now weighs the identity evidence of its component by how early each piece was
first seen (bridge/core/versions.py): about 2.4 billion per account or digest, above a 32-bit
integer. Versions already published (event counts) are far below and stay as they are.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('learners', schema=None) as batch_op:
        batch_op.alter_column('version', existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False)


def downgrade() -> None:
    # Fails on PostgreSQL while any version is above 32 bits (any identity published under 0006).
    with op.batch_alter_table('learners', schema=None) as batch_op:
        batch_op.alter_column('version', existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=False)
