"""The facts stage: the rows each kept event adds (its fact, its account, its evidence).

The rows are collected while the batch's events are recorded and written with one statement per
table once every event is recorded; what each event touched is marked for the stages after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bridge.core.evidence import AccountKey, EvidenceItem, Sighting
from bridge.pipeline.batch import BatchResult, Touched
from bridge.pipeline.contents import ContentPlan, Kept, Prepared
from bridge.store.ledger import fact_row
from bridge.store.uow import UnitOfWork


@dataclass
class Writes:
    """A batch's new rows, written with one statement per table once every event is prepared."""

    accounts: dict[AccountKey, Sighting] = field(default_factory=dict)
    evidence: dict[tuple[AccountKey, EvidenceItem], Sighting] = field(default_factory=dict)
    facts: list[dict[str, object]] = field(default_factory=list)
    problems: list[dict[str, str]] = field(default_factory=list)

    @staticmethod
    def note(earliest: dict, key: object, seen: Sighting) -> None:
        if key not in earliest or seen < earliest[key]:
            earliest[key] = seen

    def apply(self, uow: UnitOfWork, touched: Touched, max_shared: int) -> None:
        """Write the rows; mark the accounts whose identity evidence changed (``touched.changed``)
        and the name+mobile digests that became crowded (rule 8, ``touched.crowds``)."""
        touched.changed |= uow.identity.note_accounts(self.accounts)
        noted = uow.identity.note_evidence(self.evidence, max_shared)
        touched.changed |= noted.changed
        touched.crowds = noted.crowded
        uow.ledger.add_facts(self.facts)
        uow.ledger.record_dqs(self.problems)


def record_events(
    prepared: Sequence[Prepared], plan: ContentPlan, touched: Touched, writes: Writes, result: BatchResult
) -> None:
    """Record the events whose content the plan keeps, in batch order, and count them."""
    for index, item in enumerate(prepared):
        kept = plan.apply.get(index)
        if kept is None:
            continue
        problem = _record_event(item, kept, touched, writes)
        result.processed[(str(item.event.platform), item.event.kind.value)] += 1
        result.event_times.append(item.event.occurred_at)
        if problem:
            result.data_quality[problem] += 1


def _record_event(item: Prepared, kept: Kept, touched: Touched, writes: Writes) -> str | None:
    """Record a prepared event whose content is kept; returns its data-quality problem, if any."""
    msg, event, evidence = item.msg, item.event, item.evidence
    account = AccountKey(str(event.platform), event.account)
    seen = Sighting(event.occurred_at, event.event_id)
    fact = fact_row(item.fact, item.course_key, msg.topic, msg.partition, msg.offset, kept.digest, kept.key_id,
                    evidence.items)
    fact["contents"] = kept.contents
    writes.note(writes.accounts, account, seen)
    for evidence_item in evidence.items:
        writes.note(writes.evidence, (account, evidence_item), seen)
    if evidence.document_problem:
        writes.problems.append({"platform": account.platform, "event_id": event.event_id, "reason": evidence.document_problem})
    writes.facts.append(fact)
    touched.accounts.add(account)
    touched.new_courses.setdefault(account, set()).add(item.course_key)
    touched.sightings.setdefault(account, seen)
    return evidence.document_problem
