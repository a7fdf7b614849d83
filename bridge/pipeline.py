"""The processing stage: a batch of raw messages in, committed effects and dead letters out.

This is the unit of work of a stream worker, and it knows nothing of Kafka or Faust: it is handed
messages with their coordinates, parses them with the platform adapters, and in one database
transaction stores each event's fact and identity evidence, re-resolves the identities the batch
touched, re-derives the credit records it touched, and queues what changed for publication.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import Engine

from bridge.core.contents import NewContent, settle
from bridge.core.courses import CourseKeys
from bridge.core.credits import CreditFact, derive_record
from bridge.core.decisions import (
    DECISION_REJECTED,
    DECISION_UNVERIFIED,
    DecisionAction,
    OperatorDecision,
    decision_fault,
    parse_decision,
)
from bridge.core.events import CanonicalEvent
from bridge.core.identity import AccountKey, Evidence, EvidenceItem, PendingReview, Placement, Sighting, cluster
from bridge.core.pseudonym import Pseudonymiser
from bridge.core.records import DEADLETTER_PAYLOAD_BOUND, DeadLetter, ReviewKind, record_id_for
from bridge.core.sealing import Sealer
from bridge.core.signing import TrustedKeys
from bridge.errors import BadInput
from bridge.settings import DEVELOPMENT_DEADLETTER_KEY
from bridge.store.contents import Retraction, StoredFact
from bridge.store.engine import writer
from bridge.store.ledger import fact_row
from bridge.store.registry import Registry
from topics.catalogue import DECISIONS

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
    source: str | None = None
    """The file a backfilled line came from (its coordinates are then the line's); ``None`` for Kafka."""


@dataclass
class BatchResult:
    """What a batch did; the worker publishes the dead letters and feeds the metrics."""

    dead_letters: list[tuple[Inbound, DeadLetter]] = field(default_factory=list)
    processed: Counter[tuple[str, str]] = field(default_factory=Counter)
    duplicates: int = 0
    decisions: int = 0
    identity: Counter[str] = field(default_factory=Counter)
    data_quality: Counter[str] = field(default_factory=Counter)
    reviews: int = 0
    records_changed: int = 0
    identities_changed: int = 0
    #: Event time of every event processed in the batch, for latency metrics.
    event_times: list[datetime] = field(default_factory=list)

    def merge(self, other: BatchResult) -> BatchResult:
        """This result with ``other``'s added (the parts of a batch that was split)."""
        self.dead_letters.extend(other.dead_letters)
        self.processed.update(other.processed)
        self.duplicates += other.duplicates
        self.decisions += other.decisions
        self.identity.update(other.identity)
        self.data_quality.update(other.data_quality)
        self.reviews += other.reviews
        self.records_changed += other.records_changed
        self.identities_changed += other.identities_changed
        self.event_times.extend(other.event_times)
        return self


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def dead_letter(msg: Inbound, reason: str, code: str, now: datetime, sealer: Sealer) -> DeadLetter:
    """The dead letter of ``msg``: its bytes sealed under the dead-letter key when they fit within
    the message bound, always their digest (``msg.value`` ``None``: bytes no longer held, e.g. a
    content retracted after the fact). The bytes are never carried readable (CONTRACT §2)."""
    value = msg.value
    carried = value is not None and len(value) <= DEADLETTER_PAYLOAD_BOUND
    sealed, key_id = sealer.seal(value, msg.topic, msg.partition, msg.offset) if carried else (None, None)
    return DeadLetter(
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        reason=reason,
        reason_code=code,
        payload_sha256=hashlib.sha256(value).hexdigest() if value is not None else None,
        payload_bytes=len(value) if value is not None else None,
        payload_encrypted=sealed,
        key_id=key_id,
        dead_lettered_at=now,
        source_file=msg.source,
    )


def _internal_reason(exc: BaseException) -> str:
    return (
        f"the bridge failed to process this message ({type(exc).__name__}); report it to the bridge "
        "team with these coordinates and replay it after the fix"
    )


def _poison_reason(exc: BaseException) -> str:
    cause = type(getattr(exc, "orig", None) or exc).__name__
    return (
        f"this message passed validation but made its batch fail in storage or processing ({cause}) every "
        "time; it was isolated and the rest of its batch committed. Report it to the bridge team with these "
        "coordinates and replay it after the fix"
    )


@dataclass
class _Writes:
    """A batch's new rows, written with one statement per table once every event is prepared."""

    accounts: dict[AccountKey, Sighting] = field(default_factory=dict)
    evidence: dict[tuple[AccountKey, EvidenceItem], Sighting] = field(default_factory=dict)
    facts: list[dict[str, object]] = field(default_factory=list)
    problems: list[dict[str, str]] = field(default_factory=list)

    @staticmethod
    def note(earliest: dict, key: object, seen: Sighting) -> None:
        if key not in earliest or seen < earliest[key]:
            earliest[key] = seen

    def apply(self, registry: Registry, max_shared: int) -> set[str]:
        """Write the rows; returns the name+mobile digests that became crowded (rule 8)."""
        registry.note_accounts(self.accounts)
        crowded = registry.note_evidence(self.evidence, max_shared)
        registry.add_facts(self.facts)
        registry.record_dqs(self.problems)
        return crowded


@dataclass
class _Touched:
    """What a batch touched, resolved and refreshed once at the end of the batch."""

    accounts: set[AccountKey] = field(default_factory=set)
    records: set[tuple[str, str]] = field(default_factory=set)
    learners: set[str] = field(default_factory=set)
    #: The event that first touched each account in this batch (for review items).
    sightings: dict[AccountKey, Sighting] = field(default_factory=dict)
    #: The version each touched learner's identity gets if it changed (its component's size).
    identity_versions: dict[str, int] = field(default_factory=dict)
    #: Name+mobile digests that this batch's new holders made crowded (rule 8).
    crowds: set[str] = field(default_factory=set)
    #: The course keys of each account's new facts in this batch.
    new_courses: dict[AccountKey, set[str]] = field(default_factory=dict)
    #: Where each account of the resolved group belongs now, and its fact count per course key.
    placements: dict[AccountKey, Placement] = field(default_factory=dict)
    courses: dict[AccountKey, dict[str, int]] = field(default_factory=dict)


def _crowd_review(
    digest: str, holders: Sequence[AccountKey], placements: Mapping[AccountKey, Placement]
) -> PendingReview:
    """The one review item a crowded name+mobile raises (rule 8): its first holder (by platform and
    account), with the learners of the others as the candidates an operator may link it to. Its id
    derives from the digest, so it is one item whichever holders were there when it crowded."""
    account = min(holders)
    candidates = sorted({placements[k].learner_id for k in holders if k != account and k in placements})
    return PendingReview(ReviewKind.AMBIGUOUS_MATCH, account, tuple(candidates), subject=f"crowd:{digest}")


DUPLICATE_EVENT_ID = "duplicate_event_id"
_CONTENT_ORDER = (
    "the first in its fixed order of contents: event time, then account, course, kind, outcome, score, hours "
    "and credits, then a keyed digest of the whole content"
)
_LOST_REASON = (
    "this message's event id was already used with other content; the bridge keeps one content per event id, "
    f"{_CONTENT_ORDER}, and this content comes after the one kept, so nothing of it was applied. Fix the "
    "source so that each event has its own id, and resend this event under a new id"
)
_LEGACY_KEPT_REASON = (
    "this message's event id was already used with other content, processed before the bridge kept content "
    "digests; that content keeps the event id, so nothing of this one was applied. Fix the source so that "
    "each event has its own id, and resend this event under a new id"
)
_RETRACTED_REASON = (
    "this message was processed, but its event id later arrived with other content; the bridge keeps one "
    f"content per event id, {_CONTENT_ORDER}, and the other content comes first, so this message's effects "
    "were withdrawn and the other applied in its place. The bridge no longer holds this message's bytes: read "
    "them at these coordinates of the source topic. Fix the source so that each event has its own id, and "
    "resend this event under a new id"
)


@dataclass
class _Prepared:
    """An event worked out before anything of it is recorded: what it would store, and its content."""

    msg: Inbound
    event: CanonicalEvent
    content: NewContent
    #: Worked out only for an event that is not a redelivery.
    evidence: Evidence = field(default_factory=Evidence)
    course_key: str = ""
    fact: CreditFact | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.event.platform.value, self.event.event_id)


@dataclass(frozen=True)
class _Kept:
    """What a kept content's fact stores beside it: its event id's contents count and its digest."""

    contents: int
    digest: str | None
    key_id: str


@dataclass
class _ContentPlan:
    """How a batch settles one content per event id, applied once every event is prepared."""

    #: Prepared events (by index) whose content is kept, with what their fact stores beside it.
    apply: dict[int, _Kept] = field(default_factory=dict)
    #: Stored contents that lost to a content of this batch: retracted.
    retract: list[StoredFact] = field(default_factory=list)
    #: Contents that lost (rows of rejected_contents).
    rejected: list[dict[str, object]] = field(default_factory=list)
    #: Stored contents that stay, with their event ids' new count of contents.
    bumps: dict[tuple[str, str], int] = field(default_factory=dict)
    bumped: list[StoredFact] = field(default_factory=list)
    #: The account of each retracted content -> the account of the content that replaced it.
    winner_of: dict[AccountKey, AccountKey] = field(default_factory=dict)

    def reject(self, msg: Inbound, key: tuple[str, str], digest: str | None, key_id: str | None, now: datetime) -> None:
        self.rejected.append({"platform": key[0], "event_id": key[1], "content_digest": digest,
                              "content_key_id": key_id, "topic": msg.topic, "partition": msg.partition,
                              "offset": msg.offset, "rejected_at": now})

    def apply_to(self, registry: Registry, touched: _Touched, retraction: Retraction) -> None:
        """Store the rejected contents and the new counts, and mark what they touched: a kept
        content's record and identity count one more event; a retraction's accounts are re-resolved
        and its records re-derived (or retired)."""
        registry.reject_contents(self.rejected)
        registry.set_contents(self.bumps)
        for known in self.bumped:
            touched.accounts.add(known.account)
            touched.new_courses.setdefault(known.account, set()).add(known.course_key)
        touched.accounts |= retraction.accounts
        touched.records |= retraction.records


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
        max_shared_evidence: int = 10,
        trusted_keys: TrustedKeys | None = None,
        sealer: Sealer | None = None,
    ) -> None:
        self.engine = engine
        #: Seals dead-letter payloads; by default under the development key (bootstrap passes the configured one).
        self.sealer = sealer if sealer is not None else Sealer.from_secret(DEVELOPMENT_DEADLETTER_KEY)
        #: The operators' keys decisions must be signed by; none: no decision is applied.
        self.trusted_keys = trusted_keys if trusted_keys is not None else TrustedKeys()
        self._writer = writer(engine, serializable=True)
        self.parsers = parsers
        self.pseudonymiser = pseudonymiser
        self.course_keys = course_keys
        self.hours_per_credit = hours_per_credit
        self.clock = clock
        self.max_shared_evidence = max_shared_evidence

    def _dead_letter(self, msg: Inbound, reason: str, code: str, now: datetime) -> DeadLetter:
        return dead_letter(msg, reason, code, now, self.sealer)

    def parse(self, msg: Inbound) -> CanonicalEvent | OperatorDecision:
        if msg.value is None:
            raise BadInput("the message has no value (a tombstone on an input topic)", code="empty_message")
        if msg.topic == DECISIONS.name:
            return parse_decision(msg.value)
        parser = self.parsers.get(msg.topic)
        if parser is None:
            raise BadInput(f"the bridge does not consume topic {msg.topic}", code="unknown_topic")
        return parser(msg.value)

    def probe(self) -> None:
        """A write transaction that changes nothing: raises when the database takes no writes now."""
        with self._writer.begin() as conn:
            Registry(conn).touch()

    def poisoned(self, msg: Inbound, exc: BaseException | None) -> BatchResult:
        """The result of a message that, alone, fails its batch for a reason other than a
        transient one: dead-lettered (``unprocessable``), nothing else changes."""
        result = BatchResult()
        cause = exc if exc is not None else RuntimeError("unknown")
        result.dead_letters.append((msg, self._dead_letter(msg, _poison_reason(cause), "unprocessable", self.clock())))
        return result

    def process(self, batch: Sequence[Inbound]) -> BatchResult:
        """Process a batch in one transaction. Database errors propagate (nothing is committed)."""
        result = BatchResult()
        now = self.clock()
        events: list[tuple[Inbound, CanonicalEvent]] = []
        decisions: list[tuple[Inbound, OperatorDecision]] = []
        for msg in batch:
            try:
                parsed = self.parse(msg)
            except BadInput as exc:
                result.dead_letters.append((msg, self._dead_letter(msg, exc.reason, exc.code, now)))
                continue
            except Exception as exc:  # noqa: BLE001 - an adapter bug must not stall the partition
                log.exception(
                    "message failed in parsing; dead-lettered",
                    extra={"topic": msg.topic, "partition": msg.partition, "offset": msg.offset},
                )
                result.dead_letters.append((msg, self._dead_letter(msg, _internal_reason(exc), "processing_error", now)))
                continue
            if isinstance(parsed, OperatorDecision):
                decisions.append((msg, parsed))
            else:
                events.append((msg, parsed))

        with self._writer.begin() as conn:
            registry = Registry(conn)
            touched = _Touched()
            writes = _Writes()
            prepared: list[_Prepared] = []
            for msg, event in events:
                try:
                    prepared.append(self._prepare_event(msg, event))
                except Exception as exc:  # noqa: BLE001 - a poison event must not stall the partition
                    log.exception(
                        "event failed in processing; dead-lettered",
                        extra={"platform": event.platform.value, "event_id": event.event_id, "topic": msg.topic,
                               "partition": msg.partition, "offset": msg.offset},
                    )
                    result.dead_letters.append((msg, self._dead_letter(msg, _internal_reason(exc), "processing_error", now)))
            plan = self._settle_contents(registry, prepared, now, result)
            for index, item in enumerate(prepared):
                kept = plan.apply.get(index)
                if kept is None:
                    continue
                problem = self._record_event(item, kept, touched, writes)
                result.processed[(item.event.platform.value, item.event.kind.value)] += 1
                result.event_times.append(item.event.occurred_at)
                if problem:
                    result.data_quality[problem] += 1
            # A retracted content goes before the content that replaces it is stored (same key).
            retraction = registry.retract_facts(plan.retract, writes.accounts, self.max_shared_evidence)
            touched.crowds = writes.apply(registry, self.max_shared_evidence)
            plan.apply_to(registry, touched, retraction)
            for msg, decision in decisions:
                self._record_decision(registry, msg, decision, touched, result, now)
            self._resolve_identities(registry, touched, result)
            self._retire_vanished(registry, touched, retraction, plan.winner_of)
            self._refresh(registry, touched, result)
        return result

    def _prepare_event(self, msg: Inbound, event: CanonicalEvent) -> _Prepared:
        """Work out an event's content digest (no I/O): all a redelivery needs."""
        return _Prepared(msg=msg, event=event, content=NewContent.of(event, self.pseudonymiser))

    def _complete_event(self, item: _Prepared, now: datetime, result: BatchResult) -> bool:
        """Work out what an event that is not a redelivery would store (no I/O). Everything that can
        fail for one event fails here, before anything of it is recorded: it is all or nothing. A
        failure dead-letters the event (and returns False)."""
        event = item.event
        try:
            item.fact = item.content.fact = CreditFact.from_event(event)
            item.evidence = Evidence.of(event, self.pseudonymiser)
            item.course_key = self.course_keys.key_for(event.platform, event.course_id)
        except Exception as exc:  # noqa: BLE001 - a poison event must not stall the partition
            msg = item.msg
            log.exception(
                "event failed in processing; dead-lettered",
                extra={"platform": event.platform.value, "event_id": event.event_id, "topic": msg.topic,
                       "partition": msg.partition, "offset": msg.offset},
            )
            result.dead_letters.append((msg, self._dead_letter(msg, _internal_reason(exc), "processing_error", now)))
            return False
        return True

    def _record_event(self, item: _Prepared, kept: _Kept, touched: _Touched, writes: _Writes) -> str | None:
        """Record a prepared event whose content is kept; returns its data-quality problem, if any."""
        msg, event, evidence = item.msg, item.event, item.evidence
        account = AccountKey(event.platform.value, event.account)
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

    def _settle_contents(
        self, registry: Registry, prepared: Sequence[_Prepared], now: datetime, result: BatchResult
    ) -> _ContentPlan:
        """CONTRACT §1: one content per event id, whatever the order (see bridge/core/contents.py).

        Redeliveries are counted as duplicates; a content that loses is dead-lettered now, and a
        stored content that loses to one in this batch is retracted and dead-lettered after the
        fact (from its stored coordinates: the bridge no longer holds its bytes). A new event id
        seen once costs one look-up, shared with the batch, and its digest.
        """
        plan = _ContentPlan()
        arrivals: dict[tuple[str, str], list[int]] = {}
        for index, item in enumerate(prepared):
            arrivals.setdefault(item.key, []).append(index)
        digests = registry.stored_digests(arrivals)
        current = self.pseudonymiser.key_id
        unsettled = []
        for key, indices in arrivals.items():
            digest = digests.get(key)
            if digest is None and len(indices) == 1:
                if self._complete_event(prepared[indices[0]], now, result):
                    content = prepared[indices[0]].content
                    plan.apply[indices[0]] = _Kept(1, content.digest(current), current)
            elif digest is not None and digest[0] is not None and all(
                prepared[i].content.digest(digest[1]) == digest[0] for i in indices
            ):
                result.duplicates += len(indices)  # redeliveries of the stored content
            else:
                unsettled.append(key)
        stored = registry.stored_contents(unsettled) if unsettled else {}
        for key in unsettled:
            indices = [i for i in arrivals[key] if self._complete_event(prepared[i], now, result)]
            known = stored.get(key)
            if not indices:
                continue
            out = settle([prepared[i].content for i in indices], known.content if known else None,
                         known.contents if known else 0, known.rejected if known else {}, self.pseudonymiser)
            result.duplicates += len(out.duplicates)
            for lost in out.rejected:
                item = prepared[indices[lost]]
                plan.reject(item.msg, key, item.content.digest(out.key_id), out.key_id, now)
                legacy = known is not None and known.content.content_digest is None
                reason = _LEGACY_KEPT_REASON if legacy and out.kept is None else _LOST_REASON
                result.dead_letters.append((item.msg, self._dead_letter(item.msg, reason, DUPLICATE_EVENT_ID, now)))
            if out.kept is not None:
                winner = prepared[indices[out.kept]]
                plan.apply[indices[out.kept]] = _Kept(out.contents, winner.content.digest(out.key_id), out.key_id)
            elif known is not None and out.contents != known.contents:
                plan.bumps[key] = out.contents
                plan.bumped.append(known)
            if out.retract_stored and known is not None:
                plan.retract.append(known)
                plan.winner_of.setdefault(known.account, AccountKey(key[0], winner.event.account))
                gone = Inbound(known.topic, known.partition, known.offset, known.account.account.encode(), None)
                plan.reject(gone, key, known.content.content_digest, known.content.key_id, now)
                result.dead_letters.append((gone, self._dead_letter(gone, _RETRACTED_REASON, DUPLICATE_EVENT_ID, now)))
        return plan

    def _retire_vanished(
        self, registry: Registry, touched: _Touched, retraction: Retraction, winner_of: Mapping[AccountKey, AccountKey]
    ) -> None:
        """Retire a learner whose every account vanished with a retracted content: it is merged into
        the learner of the account that holds that event id now, so it is no longer published as a
        live learner (a learner that lost only some of its accounts was re-resolved as any other)."""
        placed = {p.learner_id for p in touched.placements.values()}
        orphans: dict[str, AccountKey] = {}
        for account, learner_id in sorted(retraction.vanished.items()):
            if learner_id is not None and learner_id not in placed:
                orphans.setdefault(learner_id, account)
        if not orphans:
            return
        empty = registry.learners_without_accounts(orphans) & registry.live(orphans)
        for learner_id in sorted(empty):
            survivor = touched.placements.get(winner_of.get(orphans[learner_id]))
            if survivor is None:
                continue
            touched.learners.update(registry.retire_learner(learner_id, survivor.learner_id))

    def _record_decision(
        self, registry: Registry, msg: Inbound, decision: OperatorDecision, touched: _Touched, result: BatchResult,
        now: datetime,
    ) -> None:
        # The signature first: a forged decision is a security event even when it copies the id
        # of one already applied, and it must reach the dead letters to be seen.
        forged = self.trusted_keys.fault(decision.signed_fields(), decision.decided_by, decision.decided_at)
        if forged is not None:
            result.dead_letters.append((msg, self._dead_letter(msg, forged, DECISION_UNVERIFIED, now)))
            return
        if registry.decision_known(decision.decision_id):
            result.duplicates += 1
            return
        item = registry.find_review_item(decision.review_id)
        anchor_learner, candidates = None, set()
        if item is not None and decision.anchor is not None:
            learner = registry.learner_of(AccountKey(decision.anchor.platform.value, decision.anchor.account))
            anchor_learner = registry.live_learner(learner) if learner else None
            candidates = {registry.live_learner(c) for c in item.candidates}
        fault = decision_fault(decision, item, anchor_learner, candidates)
        if fault is not None:
            result.dead_letters.append((msg, self._dead_letter(msg, fault, DECISION_REJECTED, now)))
            return
        registry.record_decision(decision)
        result.decisions += 1
        status = "linked" if decision.action is DecisionAction.LINK else "rejected"
        registry.settle_review(decision.review_id, status, decision.decision_id, decision.decided_by, decision.decided_at)
        touched.accounts.add(AccountKey(decision.account.platform.value, decision.account.account))
        if decision.anchor is not None:
            touched.accounts.add(AccountKey(decision.anchor.platform.value, decision.anchor.account))

    def _resolve_identities(self, registry: Registry, touched: _Touched, result: BatchResult) -> None:
        """Re-partition every account connected to what the batch touched (CONTRACT §3)."""
        if not touched.accounts:
            return
        # A name+mobile that just became crowded (rule 8) stops linking: every account holding
        # it is re-resolved once, now (a bounded number: the bound plus this batch's new holders);
        # from then on it is no evidence and costs nothing.
        crowds = registry.holders(touched.crowds) if touched.crowds else {}
        seeds = set(touched.accounts).union(*crowds.values())
        group = registry.group(seeds, self.max_shared_evidence)
        evidence, links, rejected, before = group.evidence, group.links, group.rejected, group.placements
        outcome = cluster(evidence, links, rejected, self.max_shared_evidence)
        # The group holds every account of every learner it touches: one count serves the record
        # keys to refresh and the identity versions; facts are read only for the records that change.
        touched.courses = registry.course_counts(group.keys)
        touched.placements = outcome.placements

        new_ids = {p.learner_id for p in outcome.placements.values()}
        registry.ensure_live_learners(new_ids)
        moved = {k: p for k, p in outcome.placements.items() if before.get(k) != p}
        registry.place(moved)
        for key, placement in sorted(moved.items()):
            old = before.get(key)
            if old is None or old.learner_id != placement.learner_id:
                result.identity[placement.method.value] += 1
            touched.learners.add(placement.learner_id)
            for course_key in touched.courses.get(key, ()):
                touched.records.add((placement.learner_id, course_key))
                if old is not None:
                    touched.records.add((old.learner_id, course_key))
            if old is not None:
                touched.learners.add(old.learner_id)
        # An account that stays where it was changes only the records of its new facts' courses.
        for key, courses in touched.new_courses.items():
            placement = outcome.placements.get(key)
            if placement is not None:
                touched.records.update((placement.learner_id, course_key) for course_key in courses)
        # Every live learner of a component that grew gets its new version.
        touched.learners.update(new_ids)

        # Learners that lost every account are merged into where their founding account went.
        old_ids = {p.learner_id for p in before.values() if p is not None}
        for gone in sorted(old_ids - new_ids):
            founder = next((k for k in sorted(before) if k.learner_id == gone), None)
            former = [k for k, p in sorted(before.items()) if p is not None and p.learner_id == gone]
            survivor_key = founder if founder in outcome.placements else former[0]
            for changed in registry.retire_learner(gone, outcome.placements[survivor_key].learner_id):
                touched.learners.add(changed)
            result.identity["merge"] += 1

        touched.identity_versions.update(self._identity_versions(touched.courses, links, rejected, outcome, before))

        crowd_reviews = [_crowd_review(digest, holders, outcome.placements) for digest, holders in crowds.items()]
        for review in [*outcome.reviews, *crowd_reviews]:
            seen = touched.sightings.get(review.account) or evidence[review.account].first
            if registry.raise_review(review, seen.at, seen.event_id):
                result.reviews += 1

    @staticmethod
    def _identity_versions(courses, links, rejected, outcome, before) -> dict[str, int]:
        """Each learner's identity version: how many events and operator decisions its evidence
        component holds. Components only grow, and only a new event or decision can change an
        identity, so this rises with every change and does not depend on order or batching."""
        size: dict[AccountKey, int] = {}
        for key, root in outcome.components.items():
            size[root] = size.get(root, 0) + sum(courses.get(key, {}).values()) + (key in rejected)
        for link in links:
            if link.account in outcome.components:
                size[outcome.components[link.account]] += 1
        versions = {}
        for key, placement in outcome.placements.items():
            versions[placement.learner_id] = size[outcome.components[key]]
        for key in before:
            # A learner merged away keeps following its founding account's component.
            if key in outcome.components:
                versions.setdefault(key.learner_id, size[outcome.components[key]])
        return versions

    def _refresh(self, registry: Registry, touched: _Touched, result: BatchResult) -> None:
        live = registry.live({learner for learner, _ in touched.records})
        # Each changed record of a live learner needs the facts of that learner's accounts for its course.
        need: dict[AccountKey, set[str]] = {}
        for key, placement in touched.placements.items():
            if placement.learner_id in live:
                wanted = {c for c in touched.courses.get(key, ()) if (placement.learner_id, c) in touched.records}
                if wanted:
                    need[key] = wanted
        facts: dict[tuple[str, str], list] = {}
        for key, found in registry.facts_of(need).items():
            learner_id = touched.placements[key].learner_id
            for course_key, fact in found:
                facts.setdefault((learner_id, course_key), []).append(fact)
        states = [
            derive_record(learner_id, course_key, facts[(learner_id, course_key)], self.hours_per_credit)
            for learner_id, course_key in sorted(facts)
        ]
        result.records_changed += registry.save_records(states)
        retired = [record_id_for(l, c) for l, c in sorted(touched.records) if (l, c) not in facts]
        result.records_changed += registry.retire_records(retired)
        result.identities_changed += registry.refresh_identities(
            {learner_id: touched.identity_versions.get(learner_id) for learner_id in touched.learners}
        )
