"""Review items: identity decisions the bridge will not take alone, raised, settled and read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, func, insert, select, update

from bridge.core.identity import PendingReview, review_id_for
from bridge.core.records import AccountRef, ReviewItem, ReviewKind
from bridge.store import schema as t
from bridge.store.base import Repository, as_utc
from bridge.store.outbox import OutboxRepository
from topics.catalogue import REVIEW


@dataclass(frozen=True)
class StoredReview:
    """A review item as stored: what is published of it, and the operator's decision on it."""

    review_id: str
    kind: str
    platform: str
    account: str
    candidates: list[str]
    raised_at: datetime
    event_id: str | None
    status: Literal["open", "linked", "rejected"]
    decision_id: str | None
    decided_by: str | None
    decided_at: datetime | None

    def item(self) -> ReviewItem:
        """The review item as published on the review topic."""
        return ReviewItem(
            review_id=self.review_id,
            kind=ReviewKind(self.kind),
            account=AccountRef(platform=self.platform, account=self.account),
            candidates=list(self.candidates),
            raised_at=self.raised_at,
            event_id=self.event_id,
            status=self.status,
        )


def _stored(r: Any) -> StoredReview:
    return StoredReview(
        review_id=r.review_id,
        kind=r.kind,
        platform=r.platform,
        account=r.account,
        candidates=list(r.candidates),
        raised_at=as_utc(r.raised_at),
        event_id=r.event_id,
        status=r.status,
        decision_id=r.decision_id,
        decided_by=r.decided_by,
        decided_at=as_utc(r.decided_at),
    )


class ReviewRepository(Repository):
    """Review items; each one raised or settled is queued for publication."""

    def __init__(self, conn: Connection, outbox: OutboxRepository) -> None:
        super().__init__(conn)
        #: Where each new or settled review item is queued for publication, in the same transaction.
        self.outbox = outbox

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
        self.outbox.enqueue(REVIEW.name, review_id)
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
        self.outbox.enqueue(REVIEW.name, review_id)
        return True

    def review_item(self, review_id: str) -> ReviewItem:
        item = self.find_review_item(review_id)
        if item is None:
            raise LookupError(f"no review item {review_id}")
        return item

    def find_review_item(self, review_id: str) -> ReviewItem | None:
        stored = self.review(review_id)
        return None if stored is None else stored.item()

    def review(self, review_id: str) -> StoredReview | None:
        """The review item ``review_id`` as stored, with its decision; ``None`` when there is none."""
        r = self.conn.execute(select(t.review_items).where(t.review_items.c.review_id == review_id)).first()
        return None if r is None else _stored(r)

    def reviews(self, *, open_only: bool) -> list[StoredReview]:
        """Every review item (or only the open ones), oldest first."""
        items = t.review_items
        query = select(items).order_by(items.c.raised_at, items.c.review_id)
        if open_only:
            query = query.where(items.c.status == "open")
        return [_stored(r) for r in self.conn.execute(query)]

    def open_by_kind(self) -> dict[str, int]:
        """How many review items are open, per kind (one small query)."""
        items = t.review_items
        rows = self.conn.execute(
            select(items.c.kind, func.count()).where(items.c.status == "open").group_by(items.c.kind)
        ).all()
        return {kind: count for kind, count in rows}
