"""Review items: identity decisions the bridge will not take alone."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, func, insert, select, update

from bridge.core.identity import PendingReview, review_id_for
from bridge.core.records import AccountRef, ReviewItem, ReviewKind
from bridge.store import schema as t
from bridge.store.base import Repository, as_utc
from topics.catalogue import REVIEW


class ReviewRepository(Repository):
    def raise_review(self, review: PendingReview, raised_at: datetime, event_id: str | None) -> str | None:
        """Open a review item unless the same question was asked before; returns its id if new."""
        review_id = review_id_for(review)
        exists = self.conn.execute(select(t.review_items.c.review_id).where(t.review_items.c.review_id == review_id)).first()
        if exists is not None:
            return None
        self.conn.execute(
            insert(t.review_items).values(
                review_id=review_id,
                kind=review.kind.value,
                platform=review.account.platform,
                account=review.account.account,
                candidates=list(review.candidates),
                raised_at=raised_at,
                event_id=event_id,
                status="open",
            )
        )
        self.enqueue(REVIEW.name, review_id)
        return review_id

    def settle_review(self, review_id: str, status: str, decision_id: str, decided_by: str, decided_at: datetime) -> bool:
        """Record an operator's decision on a review item (publishes its new status)."""
        row = self.conn.execute(select(t.review_items.c.status).where(t.review_items.c.review_id == review_id)).first()
        if row is None:
            return False
        self.conn.execute(
            update(t.review_items)
            .where(t.review_items.c.review_id == review_id)
            .values(status=status, decision_id=decision_id, decided_by=decided_by, decided_at=decided_at)
        )
        self.enqueue(REVIEW.name, review_id)
        return True

    def review_item(self, review_id: str) -> ReviewItem:
        item = self.find_review_item(review_id)
        if item is None:
            raise LookupError(f"no review item {review_id}")
        return item

    def find_review_item(self, review_id: str) -> ReviewItem | None:
        r = self.conn.execute(select(t.review_items).where(t.review_items.c.review_id == review_id)).first()
        if r is None:
            return None
        return ReviewItem(
            review_id=r.review_id,
            kind=ReviewKind(r.kind),
            account=AccountRef(platform=r.platform, account=r.account),
            candidates=list(r.candidates),
            raised_at=as_utc(r.raised_at),
            event_id=r.event_id,
            status=r.status,
        )

    def open_by_kind(self) -> dict[str, int]:
        """How many review items are open, per kind (one small query)."""
        items = t.review_items
        rows = self.conn.execute(
            select(items.c.kind, func.count()).where(items.c.status == "open").group_by(items.c.kind)
        ).all()
        return {kind: count for kind, count in rows}


def count_open_reviews(engine: Engine) -> dict[str, int]:
    """The open review items per kind, read on a pooled connection of their own."""
    with engine.connect() as conn:
        return ReviewRepository(conn).open_by_kind()
