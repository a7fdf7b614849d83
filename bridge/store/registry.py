"""The identity registry and credit ledger over one SQLAlchemy connection (one transaction).

Every method runs inside the caller's transaction: the pipeline opens one per batch, so an
event's effects, the fact that it was processed and the outbox rows that will publish them are
committed together or not at all.
"""

from __future__ import annotations

from sqlalchemy import and_, func, select

from bridge.store import schema as t
from bridge.store.base import chunks
from bridge.store.contents import ContentsRepository
from bridge.store.identity import IdentityRepository
from bridge.store.ledger import LedgerRepository, published_record
from bridge.store.outbox import OutboxEntry, OutboxRepository
from bridge.store.reviews import ReviewRepository
from topics import catalogue

__all__ = ["OutboxEntry", "Registry"]


class Registry(IdentityRepository, LedgerRepository, ContentsRepository, ReviewRepository, OutboxRepository):
    """All repositories of the store on one connection."""

    def published_values(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], bytes | None]:
        """The current value of each (topic, key), a few queries for all of them (``None``: a tombstone)."""
        values: dict[tuple[str, str], bytes | None] = {}
        records = sorted({k for topic, k in keys if topic == catalogue.CREDIT_RECORDS.name})
        c = t.credit_records.c
        for chunk in chunks(records):
            for row in self.conn.execute(
                select(c.record_id, c.state, c.value, c.version, c.retired).where(c.record_id.in_(chunk))
            ):
                value = None if row.retired else published_record(row)
                values[(catalogue.CREDIT_RECORDS.name, row.record_id)] = None if value is None else value.encode()
        learners = sorted({k for topic, k in keys if topic == catalogue.LEARNER_IDENTITIES.name})
        rebuild = []
        for chunk in chunks(learners):
            for row in self.conn.execute(
                select(t.learners.c.learner_id, t.learners.c.value).where(t.learners.c.learner_id.in_(chunk))
            ):
                if row.value is None:
                    rebuild.append(row.learner_id)
                else:
                    values[(catalogue.LEARNER_IDENTITIES.name, row.learner_id)] = row.value.encode()
        for learner_id, identity in self.identity_states(rebuild).items():
            values[(catalogue.LEARNER_IDENTITIES.name, learner_id)] = identity.model_dump_json().encode()
        for topic, key in keys:
            if (topic, key) not in values:
                values[(topic, key)] = self.published_value(topic, key)
        return values

    def published_value(self, topic: str, key: str) -> bytes | None:
        """The current value of ``key`` on an output topic (``None``: a tombstone)."""
        if topic == catalogue.CREDIT_RECORDS.name:
            c = t.credit_records.c
            row = self.conn.execute(select(c.state, c.value, c.version, c.retired).where(c.record_id == key)).one()
            value = None if row.retired else published_record(row)
            return None if value is None else value.encode()
        if topic == catalogue.LEARNER_IDENTITIES.name:
            return self.identity_state(key).model_dump_json().encode()
        if topic == catalogue.REVIEW.name:
            return self.review_item(key).model_dump_json().encode()
        raise ValueError(f"no stored value for topic {topic}")

    def counts(self) -> dict[str, object]:
        """Totals for the demo summary and operators (no personal data)."""

        def scalar(query):
            return self.conn.execute(query).scalar_one()

        live = t.learners.c.merged_into.is_(None)
        per_learner = (
            select(t.accounts.c.learner_id, func.count(func.distinct(t.accounts.c.platform)).label("n"))
            .group_by(t.accounts.c.learner_id)
            .subquery()
        )
        records = t.credit_records.c
        by_status = dict(
            self.conn.execute(
                select(records.status, func.count()).where(records.retired.is_(False)).group_by(records.status)
            ).all()
        )
        facts = t.credit_facts.c
        return {
            "events": dict(self.conn.execute(select(facts.platform, func.count()).group_by(facts.platform)).all()),
            "learners": scalar(select(func.count()).select_from(t.learners).where(live)),
            "merged_learners": scalar(select(func.count()).select_from(t.learners).where(~live)),
            "accounts": scalar(select(func.count()).select_from(t.accounts)),
            "cross_platform_learners": scalar(select(func.count()).select_from(per_learner).where(per_learner.c.n > 1)),
            "records_by_status": by_status,
            "credits_awarded": float(
                scalar(
                    select(func.coalesce(func.sum(records.credits), 0.0)).where(
                        and_(records.retired.is_(False), records.status == "AWARDED")
                    )
                )
            ),
            "open_reviews": scalar(
                select(func.count()).select_from(t.review_items).where(t.review_items.c.status == "open")
            ),
            "data_quality": dict(
                self.conn.execute(
                    select(t.data_quality.c.reason, func.count()).group_by(t.data_quality.c.reason)
                ).all()
            ),
            "outbox_pending": scalar(select(func.count()).select_from(t.outbox)),
        }
