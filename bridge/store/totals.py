"""Totals of the whole store, for the demo's summary and operators (no personal data)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, select

from bridge.store import schema as t
from bridge.store.base import Repository


class TotalsRepository(Repository):
    """Counts over every table, read in the caller's transaction."""

    def counts(self) -> dict[str, object]:
        """Events per platform, learners, accounts, records per status, credits awarded, open
        reviews, data-quality notes per reason and the outbox's backlog."""

        def scalar(query: Any) -> Any:
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
