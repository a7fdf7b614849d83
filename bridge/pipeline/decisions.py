"""The decisions stage: operators' answers to review items, applied when signed and valid.

A decision is verified first (its signature, by the operators' trusted keys), then checked
against its review item (:func:`bridge.core.decisions.decision_fault`); a forged or invalid
decision is dead-lettered, a valid one is stored, settles its review item and marks its accounts
for re-resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bridge.core.decisions import DECISION_REJECTED, DECISION_UNVERIFIED, DecisionAction, OperatorDecision, decision_fault
from bridge.core.evidence import AccountKey
from bridge.core.sealing import Sealer
from bridge.core.signing import TrustedKeys
from bridge.pipeline.batch import BatchResult, Touched
from bridge.pipeline.messages import Inbound, dead_letter
from bridge.store.uow import UnitOfWork


def record_decisions(
    uow: UnitOfWork,
    decisions: Sequence[tuple[Inbound, OperatorDecision]],
    trusted_keys: TrustedKeys,
    sealer: Sealer,
    touched: Touched,
    result: BatchResult,
    now: datetime,
) -> None:
    """Apply the batch's decisions in order."""
    for msg, decision in decisions:
        _record_decision(uow, msg, decision, trusted_keys, sealer, touched, result, now)


def _record_decision(
    uow: UnitOfWork, msg: Inbound, decision: OperatorDecision, trusted_keys: TrustedKeys, sealer: Sealer,
    touched: Touched, result: BatchResult, now: datetime,
) -> None:
    # The signature first: a forged decision is a security event even when it copies the id
    # of one already applied, and it must reach the dead letters to be seen.
    forged = trusted_keys.fault(decision.signed_fields(), decision.decided_by, decision.decided_at)
    if forged is not None:
        result.dead_letters.append((msg, dead_letter(msg, forged, DECISION_UNVERIFIED, now, sealer)))
        return
    if uow.decisions.known(decision.decision_id):
        result.duplicates += 1
        return
    item = uow.reviews.find_review_item(decision.review_id)
    anchor_learner, candidates = None, set()
    if item is not None and decision.anchor is not None:
        learner = uow.identity.learner_of(AccountKey(str(decision.anchor.platform), decision.anchor.account))
        anchor_learner = uow.learners.live_learner(learner) if learner else None
        candidates = {uow.learners.live_learner(c) for c in item.candidates}
    fault = decision_fault(decision, item, anchor_learner, candidates)
    if fault is not None:
        result.dead_letters.append((msg, dead_letter(msg, fault, DECISION_REJECTED, now, sealer)))
        return
    uow.decisions.record(decision)
    result.decisions += 1
    status = "linked" if decision.action is DecisionAction.LINK else "rejected"
    uow.reviews.settle_review(decision.review_id, status, decision.decision_id, decision.decided_by, decision.decided_at)
    accounts = {AccountKey(str(decision.account.platform), decision.account.account)}
    if decision.anchor is not None:
        accounts.add(AccountKey(str(decision.anchor.platform), decision.anchor.account))
    touched.accounts |= accounts
    touched.changed |= accounts
