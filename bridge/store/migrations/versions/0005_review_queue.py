"""indexes of the console's review queue

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 10:00:00

The operators' console (`bridge console`) pages through open review items, oldest or newest
first, filtered by kind, platform, age or the event that raised them, at hundreds of thousands of
items: each page must be an index range, never a sort of the open items.
"""

from __future__ import annotations

from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_review_items_queue', 'review_items', ['status', 'raised_at', 'review_id'])
    op.create_index('ix_review_items_queue_kind', 'review_items', ['status', 'kind', 'raised_at', 'review_id'])
    op.create_index('ix_review_items_queue_platform', 'review_items', ['status', 'platform', 'raised_at', 'review_id'])
    op.create_index('ix_review_items_event', 'review_items', ['event_id'])


def downgrade() -> None:
    op.drop_index('ix_review_items_event', table_name='review_items')
    op.drop_index('ix_review_items_queue_platform', table_name='review_items')
    op.drop_index('ix_review_items_queue_kind', table_name='review_items')
    op.drop_index('ix_review_items_queue', table_name='review_items')
