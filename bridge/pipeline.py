"""The processing stage: a batch of raw messages in, committed effects and dead letters out.

This is the unit of work of a stream worker, and it knows nothing of Kafka or Faust: it is handed
messages with their coordinates, parses them with the platform adapters, asks the core for the
identity and credit decisions, and stores the effects in one database transaction together with
the facts that mark each event processed and the outbox rows that will publish the results.
"""

from __future__ import annotations

import base64
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from bridge.core.courses import CourseKeys
from bridge.core.credits import CreditFact, derive_record
from bridge.core.events import CanonicalEvent
from bridge.core.identity import Evidence, LearnerView, resolve
from bridge.core.pseudonym import Pseudonymiser
from bridge.core.records import DeadLetter
from bridge.errors import BadInput
from bridge.store.registry import Registry

log = logging.getLogger(__name__)

Parser = Callable[[bytes], CanonicalEvent]


@dataclass(frozen=True)
class Inbound:
    """One consumed message and where it came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class BatchResult:
    """What a batch did; the worker publishes the dead letters and feeds the metrics."""

    dead_letters: list[tuple[Inbound, DeadLetter]] = field(default_factory=list)
    processed: Counter[tuple[str, str]] = field(default_factory=Counter)
    duplicates: int = 0
    identity: Counter[str] = field(default_factory=Counter)
    data_quality: Counter[str] = field(default_factory=Counter)
    reviews: int = 0
    records_changed: int = 0
    identities_changed: int = 0


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def dead_letter(msg: Inbound, reason: str, code: str, now: datetime) -> DeadLetter:
    return DeadLetter(
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        reason=reason,
        reason_code=code,
        payload_base64=base64.b64encode(msg.value or b"").decode("ascii"),
        dead_lettered_at=now,
    )


class Pipeline:
    """Processes batches of inbound messages; safe to call again with the same messages."""

    def __init__(
        self,
        engine: Engine,
        parsers: Mapping[str, Parser],
        pseudonymiser: Pseudonymiser,
        course_keys: CourseKeys,
        hours_per_credit: float,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.parsers = parsers
        self.pseudonymiser = pseudonymiser
        self.course_keys = course_keys
        self.hours_per_credit = hours_per_credit
        self.clock = clock

    def parse(self, msg: Inbound) -> CanonicalEvent:
        parser = self.parsers.get(msg.topic)
        if parser is None:
            raise BadInput(f"the bridge does not consume topic {msg.topic}", code="unknown_topic")
        if msg.value is None:
            raise BadInput("the message has no value (a tombstone on an input topic)", code="empty_message")
        return parser(msg.value)

    def process(self, batch: Sequence[Inbound]) -> BatchResult:
        """Process a batch in one transaction. Database errors propagate (nothing is committed)."""
        result = BatchResult()
        now = self.clock()
        parsed: list[tuple[Inbound, CanonicalEvent]] = []
        for msg in batch:
            try:
                parsed.append((msg, self.parse(msg)))
            except BadInput as exc:
                result.dead_letters.append((msg, dead_letter(msg, exc.reason, exc.code, now)))

        with self.engine.begin() as conn:
            registry = Registry(conn)
            seen = registry.known_events((e.platform.value, e.event_id) for _, e in parsed)
            work = _Dirty()
            for msg, event in parsed:
                key = (event.platform.value, event.event_id)
                if key in seen:
                    result.duplicates += 1
                    continue
                seen.add(key)
                savepoint = conn.begin_nested()
                try:
                    self._apply(registry, msg, event, work, result)
                except DBAPIError:
                    # The database itself failed or a concurrent worker won a race: the whole
                    # batch is retried, none of it is committed.
                    savepoint.rollback()
                    raise
                except Exception as exc:  # noqa: BLE001 - a poison event must not stall the partition
                    savepoint.rollback()
                    log.exception(
                        "event failed in processing; dead-lettered",
                        extra={"platform": key[0], "event_id": key[1], "topic": msg.topic,
                               "partition": msg.partition, "offset": msg.offset},
                    )
                    reason = (
                        f"the bridge failed to process this event ({type(exc).__name__}); "
                        "report it to the bridge team with these coordinates and replay it after the fix"
                    )
                    result.dead_letters.append((msg, dead_letter(msg, reason, "processing_error", now)))
                else:
                    savepoint.commit()
                    result.processed[(event.platform.value, event.kind.value)] += 1
            self._refresh(registry, work, result)
        return result

    def _apply(
        self, registry: Registry, msg: Inbound, event: CanonicalEvent, work: _Dirty, result: BatchResult
    ) -> None:
        evidence = Evidence.of(event, self.pseudonymiser)
        platform, account = event.platform.value, event.account
        key_id = self.pseudonymiser.key_id

        owner_id = registry.account_owner(platform, account)
        doc_owner_id = (
            registry.document_owner(evidence.document_type, evidence.document_digest)
            if evidence.document_digest
            else None
        )
        candidates: list[LearnerView] = []
        if owner_id is None and doc_owner_id is None and evidence.name_mobile_digest:
            candidates = [registry.learner_view(c) for c in registry.name_mobile_candidates(evidence.name_mobile_digest)]
        decision = resolve(
            platform,
            account,
            evidence,
            registry.learner_view(owner_id) if owner_id else None,
            registry.learner_view(doc_owner_id) if doc_owner_id else None,
            candidates,
        )
        learner_id = decision.learner_id
        if decision.create_learner:
            registry.create_learner(learner_id)
        if decision.merge_from:
            moved = registry.merge(decision.merge_from, learner_id)
            registry.retire_records(decision.merge_from, moved)
            work.records.update((learner_id, k) for k in moved)
            work.learners.add(decision.merge_from)
            result.identity["merge"] += 1
        if decision.link_method:
            registry.link_account(platform, account, learner_id, decision.link_method, event.occurred_at, event.event_id, key_id)
            result.identity[decision.link_method.value] += 1
        if decision.attach_document:
            registry.attach_document(evidence.document_type, evidence.document_digest, learner_id, event.event_id, key_id)
        if evidence.name_mobile_digest:
            registry.note_name_mobile(platform, account, evidence.name_mobile_digest, key_id)
        if decision.review:
            if registry.raise_review(
                decision.review.kind, platform, account, decision.review.candidates, event.occurred_at, event.event_id
            ):
                result.reviews += 1
        if evidence.document_problem:
            registry.record_dq(platform, event.event_id, evidence.document_problem.value)
            result.data_quality[evidence.document_problem.value] += 1

        course_key = self.course_keys.key_for(event.platform, event.course_id)
        registry.add_fact(CreditFact.from_event(event), learner_id, course_key, msg.topic, msg.partition, msg.offset)
        work.records.add((learner_id, course_key))
        work.learners.add(learner_id)

    def _refresh(self, registry: Registry, work: _Dirty, result: BatchResult) -> None:
        merged = registry.merged_learners(work.learners | {lid for lid, _ in work.records})
        for learner_id, course_key in sorted(work.records):
            if learner_id in merged:
                continue
            facts = registry.facts_for(learner_id, course_key)
            if facts and registry.save_record(derive_record(learner_id, course_key, facts, self.hours_per_credit)):
                result.records_changed += 1
        for learner_id in sorted(work.learners):
            if registry.refresh_identity(learner_id):
                result.identities_changed += 1


@dataclass
class _Dirty:
    """What a batch touched, refreshed once at the end of the batch."""

    records: set[tuple[str, str]] = field(default_factory=set)
    learners: set[str] = field(default_factory=set)
