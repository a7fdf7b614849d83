"""Operators' decisions on review items, as applied: stored once each, and read back."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, insert, or_, select

from bridge.core.decisions import OperatorDecision
from bridge.core.evidence import AccountKey
from bridge.store import schema as t
from bridge.store.base import Repository, as_utc, pairs_in


def decision_touches(refs: Iterable[tuple[str, str]], postgres: bool = False) -> ColumnElement[bool]:
    """The decisions on one of these (platform, account), or naming one of them as the anchor."""
    d = t.decisions.c
    pairs = list(refs)
    return or_(pairs_in(d.platform, d.account, pairs, postgres),
               pairs_in(d.anchor_platform, d.anchor_account, pairs, postgres))


@dataclass(frozen=True)
class StoredDecision:
    """A decision as applied (its signature was checked then; only the key's id is kept)."""

    decision_id: str
    review_id: str
    action: str
    account: AccountKey
    anchor: AccountKey | None
    decided_by: str
    decided_at: datetime
    note: str | None
    key_id: str | None


class DecisionRepository(Repository):
    """The decisions applied, one row each."""

    def known(self, decision_id: str) -> bool:
        return self.conn.execute(
            select(t.decisions.c.decision_id).where(t.decisions.c.decision_id == decision_id)
        ).first() is not None

    def record(self, decision: OperatorDecision) -> bool:
        """Store a decision once; returns False for a redelivered one."""
        if self.known(decision.decision_id):
            return False
        self.conn.execute(
            insert(t.decisions).values(
                decision_id=decision.decision_id,
                review_id=decision.review_id,
                action=decision.action.value,
                platform=str(decision.account.platform),
                account=decision.account.account,
                anchor_platform=str(decision.anchor.platform) if decision.anchor else None,
                anchor_account=decision.anchor.account if decision.anchor else None,
                decided_by=decision.decided_by,
                decided_at=decision.decided_at,
                note=decision.note,
                key_id=decision.key_id,
            )
        )
        return True

    def touching(self, keys: Iterable[AccountKey]) -> list[StoredDecision]:
        """Every decision on one of these accounts or naming one of them as its anchor, in the
        order they were decided."""
        d = t.decisions.c
        rows = self.conn.execute(
            select(t.decisions)
            .where(decision_touches(((k.platform, k.account) for k in keys), self.postgres))
            .order_by(d.decided_at, d.decision_id)
        )
        return [
            StoredDecision(
                decision_id=r.decision_id,
                review_id=r.review_id,
                action=r.action,
                account=AccountKey(r.platform, r.account),
                anchor=AccountKey(r.anchor_platform, r.anchor_account) if r.anchor_platform else None,
                decided_by=r.decided_by,
                decided_at=as_utc(r.decided_at),
                note=r.note,
                key_id=r.key_id,
            )
            for r in rows
        ]
