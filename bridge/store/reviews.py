"""Review items: identity decisions the bridge will not take alone, raised, settled and read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Select, and_, func, insert, or_, select, update

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


@dataclass(frozen=True)
class QueueFilter:
    """Which open review items the console's queue shows (every field optional)."""

    kind: str | None = None
    platform: str | None = None
    raised_after: datetime | None = None
    raised_before: datetime | None = None
    event_id: str | None = None


#: A queue position: the (raised_at, review_id) of the item a page starts after or ends before.
Cursor = tuple[datetime, str]


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

    # -- the console's queue (keyset pages over the revision 0005 indexes) ---------------------------

    def _open(self, query: Select, wanted: QueueFilter) -> Select:
        items = t.review_items
        query = query.where(items.c.status == "open")
        if wanted.kind is not None:
            query = query.where(items.c.kind == wanted.kind)
        if wanted.platform is not None:
            query = query.where(items.c.platform == wanted.platform)
        if wanted.raised_after is not None:
            query = query.where(items.c.raised_at >= wanted.raised_after)
        if wanted.raised_before is not None:
            query = query.where(items.c.raised_at < wanted.raised_before)
        if wanted.event_id is not None:
            query = query.where(items.c.event_id == wanted.event_id)
        return query

    def queue_page(
        self, wanted: QueueFilter, *, limit: int, after: Cursor | None = None, before: Cursor | None = None,
        newest_first: bool = False,
    ) -> list[StoredReview]:
        """One page of open items matching ``wanted``, in raised order (oldest first unless
        ``newest_first``), the ``limit`` after cursor ``after`` or before ``before``.

        A page is one index range whatever the queue's length: the position is a keyset, never an
        offset. Pages come back in display order in both directions.
        """
        items = t.review_items
        query = self._open(select(items), wanted)
        # Going back is going forward in the other order, then turning the page round.
        forward = before is None
        descending = newest_first == forward
        cursor = after if forward else before
        if cursor is not None:
            at, review_id = cursor
            if descending:
                query = query.where(items.c.raised_at <= at, or_(items.c.raised_at < at, and_(items.c.raised_at == at, items.c.review_id < review_id)))
            else:
                query = query.where(items.c.raised_at >= at, or_(items.c.raised_at > at, and_(items.c.raised_at == at, items.c.review_id > review_id)))
        order = (items.c.raised_at.desc(), items.c.review_id.desc()) if descending else (items.c.raised_at, items.c.review_id)
        rows = [_stored(r) for r in self.conn.execute(query.order_by(*order).limit(limit))]
        return rows if forward else rows[::-1]

    def queue_count(self, wanted: QueueFilter) -> int:
        """How many open items match ``wanted`` (an index-only count)."""
        return int(self.conn.execute(self._open(select(func.count()).select_from(t.review_items), wanted)).scalar_one())

    def open_by_platform(self) -> dict[str, int]:
        """How many review items are open, per platform of the account that raised them."""
        items = t.review_items
        rows = self.conn.execute(
            select(items.c.platform, func.count()).where(items.c.status == "open").group_by(items.c.platform)
        ).all()
        return {platform: count for platform, count in rows}

    def reviews_by_id(self, review_ids: list[str]) -> dict[str, StoredReview]:
        """The review items among ``review_ids`` (for a decision on several at once)."""
        items = t.review_items
        if not review_ids:
            return {}
        rows = self.conn.execute(select(items).where(items.c.review_id.in_(sorted(set(review_ids)))))
        return {r.review_id: _stored(r) for r in rows}
