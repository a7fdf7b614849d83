"""The credits stage: re-derive the credit records a batch touched, from every fact behind them.

A record is never patched event by event (:func:`bridge.core.credits.derive_record`): the facts
of all its learner's accounts for its course are read, and the record is derived again and
stored with its version (:mod:`bridge.core.versions`). A touched record whose learner has no fact
for the course any more (or is no longer live) is retired.
"""

from __future__ import annotations

from bridge.core.credits import CreditFact, derive_record
from bridge.core.evidence import AccountKey
from bridge.core.records import record_id_for
from bridge.pipeline.batch import BatchResult, Touched
from bridge.store.uow import UnitOfWork


def refresh_records(uow: UnitOfWork, touched: Touched, result: BatchResult, hours_per_credit: float) -> None:
    """Derive every touched record of a live learner again; retire the touched records left without facts."""
    live = uow.learners.live({learner for learner, _ in touched.records})
    # Each changed record of a live learner needs the facts of that learner's accounts for its course.
    need: dict[AccountKey, set[str]] = {}
    for key, placement in touched.placements.items():
        if placement.learner_id in live:
            wanted = {c for c in touched.courses.get(key, ()) if (placement.learner_id, c) in touched.records}
            if wanted:
                need[key] = wanted
    facts: dict[tuple[str, str], list[CreditFact]] = {}
    for key, found in uow.ledger.facts_of(need).items():
        learner_id = touched.placements[key].learner_id
        for course_key, fact in found:
            facts.setdefault((learner_id, course_key), []).append(fact)
    states = [
        derive_record(learner_id, course_key, facts[(learner_id, course_key)], hours_per_credit)
        for learner_id, course_key in sorted(facts)
    ]
    result.records_changed += uow.ledger.save_records(states)
    retired = [record_id_for(l, c) for l, c in sorted(touched.records) if (l, c) not in facts]
    result.records_changed += uow.ledger.retire_records(retired)
