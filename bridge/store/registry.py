"""The identity registry and credit ledger over one SQLAlchemy connection (one transaction).

Every method runs inside the caller's transaction: the pipeline opens one per batch, so an
event's effects, the fact that it was processed and the outbox rows that will publish them are
committed together or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Connection, and_, delete, func, insert, select, tuple_, update

from bridge.core.credits import CreditFact, RecordState
from bridge.core.events import DocumentType, EventKind, Platform
from bridge.core.identity import LearnerView
from bridge.core.records import (
    AccountRef,
    LearnerIdentity,
    Link,
    LinkMethod,
    ReviewItem,
    ReviewKind,
    stable_id,
)
from bridge.store import schema as t
from topics import catalogue


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class OutboxEntry:
    id: int
    topic: str
    key: str


class Registry:
    """Reads and writes of the registry and ledger within one open transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = conn.dialect.name == "postgresql"

    # -- processed events -------------------------------------------------------------------

    def known_events(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of the (platform, event_id) pairs were already processed."""
        keys = list(keys)
        found: set[tuple[str, str]] = set()
        # Chunked so that the IN list stays within every driver's parameter limit.
        for start in range(0, len(keys), 400):
            chunk = keys[start : start + 400]
            rows = self.conn.execute(
                select(t.credit_facts.c.platform, t.credit_facts.c.event_id).where(
                    tuple_(t.credit_facts.c.platform, t.credit_facts.c.event_id).in_(chunk)
                )
            )
            found.update((r.platform, r.event_id) for r in rows)
        return found

    def add_fact(
        self, fact: CreditFact, learner_id: str, course_key: str, topic: str, partition: int, offset: int
    ) -> None:
        self.conn.execute(
            insert(t.credit_facts).values(
                platform=fact.platform.value,
                event_id=fact.event_id,
                account=fact.account,
                learner_id=learner_id,
                course_key=course_key,
                course_id=fact.course_id,
                kind=fact.kind.value,
                occurred_at=fact.occurred_at,
                hours=fact.hours,
                platform_credits=fact.platform_credits,
                passed=fact.passed,
                score=fact.score,
                topic=topic,
                partition=partition,
                offset=offset,
            )
        )

    def facts_for(self, learner_id: str, course_key: str) -> list[CreditFact]:
        rows = self.conn.execute(
            select(t.credit_facts).where(
                t.credit_facts.c.learner_id == learner_id, t.credit_facts.c.course_key == course_key
            )
        )
        return [
            CreditFact(
                platform=Platform(r.platform),
                account=r.account,
                event_id=r.event_id,
                kind=EventKind(r.kind),
                occurred_at=as_utc(r.occurred_at),
                course_id=r.course_id,
                hours=r.hours,
                platform_credits=r.platform_credits,
                passed=r.passed,
                score=r.score,
            )
            for r in rows
        ]

    def record_dq(self, platform: str, event_id: str, reason: str) -> None:
        exists = self.conn.execute(
            select(t.data_quality.c.reason).where(
                t.data_quality.c.platform == platform,
                t.data_quality.c.event_id == event_id,
                t.data_quality.c.reason == reason,
            )
        ).first()
        if exists is None:
            self.conn.execute(insert(t.data_quality).values(platform=platform, event_id=event_id, reason=reason))

    # -- identity ---------------------------------------------------------------------------

    def learner_view(self, learner_id: str) -> LearnerView:
        rows = self.conn.execute(
            select(t.documents.c.doc_type, t.documents.c.digest).where(t.documents.c.learner_id == learner_id)
        )
        return LearnerView(learner_id, {DocumentType(r.doc_type): r.digest for r in rows})

    def account_owner(self, platform: str, account: str) -> str | None:
        return self.conn.execute(
            select(t.accounts.c.learner_id).where(t.accounts.c.platform == platform, t.accounts.c.account == account)
        ).scalar_one_or_none()

    def document_owner(self, doc_type: DocumentType, digest: str) -> str | None:
        return self.conn.execute(
            select(t.documents.c.learner_id).where(
                t.documents.c.doc_type == doc_type.value, t.documents.c.digest == digest
            )
        ).scalar_one_or_none()

    def name_mobile_candidates(self, digest: str) -> list[str]:
        rows = self.conn.execute(
            select(t.accounts.c.learner_id).where(t.accounts.c.name_mobile_digest == digest).distinct()
        )
        return sorted(r.learner_id for r in rows)

    def merged_learners(self, learner_ids: Iterable[str]) -> set[str]:
        """Which of these learners have been merged into another."""
        ids = sorted(set(learner_ids))
        found: set[str] = set()
        for start in range(0, len(ids), 400):
            found.update(
                self.conn.execute(
                    select(t.learners.c.learner_id).where(
                        t.learners.c.learner_id.in_(ids[start : start + 400]), t.learners.c.merged_into.is_not(None)
                    )
                ).scalars()
            )
        return found

    def create_learner(self, learner_id: str) -> None:
        exists = self.conn.execute(
            select(t.learners.c.learner_id).where(t.learners.c.learner_id == learner_id)
        ).first()
        if exists is None:
            self.conn.execute(insert(t.learners).values(learner_id=learner_id, version=0, merged_into=None))

    def link_account(
        self,
        platform: str,
        account: str,
        learner_id: str,
        method: LinkMethod,
        linked_at: datetime,
        event_id: str,
        key_id: str,
    ) -> None:
        self.conn.execute(
            insert(t.accounts).values(
                platform=platform,
                account=account,
                learner_id=learner_id,
                method=method.value,
                linked_at=linked_at,
                event_id=event_id,
                key_id=key_id,
            )
        )

    def note_name_mobile(self, platform: str, account: str, digest: str, key_id: str) -> None:
        self.conn.execute(
            update(t.accounts)
            .where(t.accounts.c.platform == platform, t.accounts.c.account == account)
            .values(name_mobile_digest=digest, key_id=key_id)
        )

    def attach_document(
        self, doc_type: DocumentType, digest: str, learner_id: str, event_id: str, key_id: str
    ) -> None:
        self.conn.execute(
            insert(t.documents).values(
                doc_type=doc_type.value, digest=digest, learner_id=learner_id, event_id=event_id, key_id=key_id
            )
        )

    def merge(self, source: str, survivor: str) -> set[str]:
        """Move everything of ``source`` to ``survivor``; return the course keys that moved."""
        course_keys = set(
            self.conn.execute(
                select(t.credit_facts.c.course_key).where(t.credit_facts.c.learner_id == source).distinct()
            ).scalars()
        )
        for table in (t.accounts, t.documents, t.credit_facts):
            self.conn.execute(update(table).where(table.c.learner_id == source).values(learner_id=survivor))
        # Learners merged earlier into the source now point at the survivor: merges compose.
        self.conn.execute(
            update(t.learners).where(t.learners.c.merged_into == source).values(merged_into=survivor)
        )
        self.conn.execute(update(t.learners).where(t.learners.c.learner_id == source).values(merged_into=survivor))
        return course_keys

    def identity_state(self, learner_id: str) -> LearnerIdentity:
        """The learner's identity as published, with its stored version."""
        learner = self.conn.execute(select(t.learners).where(t.learners.c.learner_id == learner_id)).one()
        rows = self.conn.execute(
            select(t.accounts)
            .where(t.accounts.c.learner_id == learner_id)
            .order_by(t.accounts.c.platform, t.accounts.c.account)
        ).all()
        return LearnerIdentity(
            learner_id=learner_id,
            accounts=[AccountRef(platform=Platform(r.platform), account=r.account) for r in rows],
            links=[
                Link(
                    platform=Platform(r.platform),
                    account=r.account,
                    method=LinkMethod(r.method),
                    linked_at=as_utc(r.linked_at),
                    event_id=r.event_id,
                )
                for r in rows
            ],
            merged_into=learner.merged_into,
            version=max(learner.version, 1),
        )

    def refresh_identity(self, learner_id: str) -> bool:
        """Store the learner's identity state; bump the version and queue it if it changed."""
        row = self.conn.execute(
            select(t.learners.c.version, t.learners.c.state).where(t.learners.c.learner_id == learner_id)
        ).one()
        state = self.identity_state(learner_id).model_dump_json(exclude={"version"})
        if state == row.state:
            return False
        self.conn.execute(
            update(t.learners)
            .where(t.learners.c.learner_id == learner_id)
            .values(state=state, version=row.version + 1)
        )
        self.enqueue(catalogue.LEARNER_IDENTITIES.name, learner_id)
        return True

    # -- credit records ---------------------------------------------------------------------

    def save_record(self, state: RecordState) -> bool:
        """Store the derived record; bump the version and queue it if it changed."""
        record_id = state.record_id
        text = state.model_dump_json()
        row = self.conn.execute(
            select(t.credit_records.c.version, t.credit_records.c.state, t.credit_records.c.retired).where(
                t.credit_records.c.record_id == record_id
            )
        ).first()
        values = dict(state=text, retired=False, status=state.status.value, credits=state.credits)
        if row is None:
            self.conn.execute(
                insert(t.credit_records).values(
                    record_id=record_id, learner_id=state.learner_id, course_key=state.course_key, version=1, **values
                )
            )
        elif row.state == text and not row.retired:
            return False
        else:
            self.conn.execute(
                update(t.credit_records)
                .where(t.credit_records.c.record_id == record_id)
                .values(version=row.version + 1, **values)
            )
        self.enqueue(catalogue.CREDIT_RECORDS.name, record_id)
        return True

    def retire_records(self, learner_id: str, course_keys: Iterable[str]) -> None:
        """Retire the learner's records for these courses: a tombstone is published for each."""
        keys = list(course_keys)
        if not keys:
            return
        rows = self.conn.execute(
            select(t.credit_records.c.record_id).where(
                t.credit_records.c.learner_id == learner_id,
                t.credit_records.c.course_key.in_(keys),
                t.credit_records.c.retired.is_(False),
            )
        ).scalars()
        for record_id in list(rows):
            self.conn.execute(
                update(t.credit_records)
                .where(t.credit_records.c.record_id == record_id)
                .values(retired=True, version=t.credit_records.c.version + 1)
            )
            self.enqueue(catalogue.CREDIT_RECORDS.name, record_id)

    # -- review items -----------------------------------------------------------------------

    def raise_review(
        self, kind: ReviewKind, platform: str, account: str, candidates: Sequence[str], raised_at: datetime, event_id: str
    ) -> str | None:
        """Open a review item unless the same one is already open; returns its id if new."""
        review_id = stable_id("rv", kind.value, platform, account, *sorted(candidates))
        exists = self.conn.execute(
            select(t.review_items.c.review_id).where(t.review_items.c.review_id == review_id)
        ).first()
        if exists is not None:
            return None
        self.conn.execute(
            insert(t.review_items).values(
                review_id=review_id,
                kind=kind.value,
                platform=platform,
                account=account,
                candidates=sorted(candidates),
                raised_at=raised_at,
                event_id=event_id,
                status="open",
            )
        )
        self.enqueue(catalogue.REVIEW.name, review_id)
        return review_id

    def review_item(self, review_id: str) -> ReviewItem:
        r = self.conn.execute(select(t.review_items).where(t.review_items.c.review_id == review_id)).one()
        return ReviewItem(
            review_id=r.review_id,
            kind=ReviewKind(r.kind),
            account=AccountRef(platform=Platform(r.platform), account=r.account),
            candidates=list(r.candidates),
            raised_at=as_utc(r.raised_at),
            event_id=r.event_id,
        )

    # -- outbox -----------------------------------------------------------------------------

    def enqueue(self, topic: str, key: str) -> None:
        self.conn.execute(insert(t.outbox).values(topic=topic, key=key))

    def pending(self, limit: int) -> list[OutboxEntry]:
        query = select(t.outbox).order_by(t.outbox.c.id).limit(limit)
        if self._lock:
            # Two workers never publish the same rows; each takes the ones nobody holds.
            query = query.with_for_update(skip_locked=True)
        return [OutboxEntry(r.id, r.topic, r.key) for r in self.conn.execute(query)]

    def lock_records(self, record_ids: Sequence[str]) -> None:
        """Hold the rows while their state is published, so a newer state cannot be sent first."""
        if self._lock and record_ids:
            self.conn.execute(
                select(t.credit_records.c.record_id)
                .where(t.credit_records.c.record_id.in_(sorted(record_ids)))
                .order_by(t.credit_records.c.record_id)
                .with_for_update()
            ).all()

    def lock_learners(self, learner_ids: Sequence[str]) -> None:
        if self._lock and learner_ids:
            self.conn.execute(
                select(t.learners.c.learner_id)
                .where(t.learners.c.learner_id.in_(sorted(learner_ids)))
                .order_by(t.learners.c.learner_id)
                .with_for_update()
            ).all()

    def published_value(self, topic: str, key: str) -> bytes | None:
        """The current value of ``key`` on an output topic (``None``: a tombstone)."""
        if topic == catalogue.CREDIT_RECORDS.name:
            row = self.conn.execute(
                select(t.credit_records.c.state, t.credit_records.c.version, t.credit_records.c.retired).where(
                    t.credit_records.c.record_id == key
                )
            ).one()
            if row.retired:
                return None
            return RecordState.model_validate_json(row.state).to_record(row.version).model_dump_json().encode()
        if topic == catalogue.LEARNER_IDENTITIES.name:
            return self.identity_state(key).model_dump_json().encode()
        if topic == catalogue.REVIEW.name:
            return self.review_item(key).model_dump_json().encode()
        raise ValueError(f"no stored value for topic {topic}")

    def done(self, ids: Sequence[int]) -> None:
        if ids:
            self.conn.execute(delete(t.outbox).where(t.outbox.c.id.in_(list(ids))))

    # -- reporting --------------------------------------------------------------------------

    def counts(self) -> dict[str, object]:
        """Totals for the demo summary and operators (no personal data)."""
        scalar = lambda q: self.conn.execute(q).scalar_one()  # noqa: E731
        live = t.learners.c.merged_into.is_(None)
        per_learner = (
            select(t.accounts.c.learner_id, func.count(func.distinct(t.accounts.c.platform)).label("n"))
            .group_by(t.accounts.c.learner_id)
            .subquery()
        )
        by_status = dict(
            self.conn.execute(
                select(t.credit_records.c.status, func.count())
                .where(t.credit_records.c.retired.is_(False))
                .group_by(t.credit_records.c.status)
            ).all()
        )
        events = dict(
            self.conn.execute(select(t.credit_facts.c.platform, func.count()).group_by(t.credit_facts.c.platform)).all()
        )
        dq = dict(self.conn.execute(select(t.data_quality.c.reason, func.count()).group_by(t.data_quality.c.reason)).all())
        return {
            "events": events,
            "learners": scalar(select(func.count()).select_from(t.learners).where(live)),
            "merged_learners": scalar(select(func.count()).select_from(t.learners).where(~live)),
            "accounts": scalar(select(func.count()).select_from(t.accounts)),
            "cross_platform_learners": scalar(select(func.count()).select_from(per_learner).where(per_learner.c.n > 1)),
            "records_by_status": by_status,
            "credits_awarded": float(
                scalar(
                    select(func.coalesce(func.sum(t.credit_records.c.credits), 0.0)).where(
                        and_(t.credit_records.c.retired.is_(False), t.credit_records.c.status == "AWARDED")
                    )
                )
            ),
            "open_reviews": scalar(
                select(func.count()).select_from(t.review_items).where(t.review_items.c.status == "open")
            ),
            "data_quality": dq,
            "outbox_pending": scalar(select(func.count()).select_from(t.outbox)),
        }
