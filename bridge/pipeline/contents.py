"""The contents stage: one content per event id (CONTRACT §1), whatever the order.

Each event is first worked out without I/O: its content digest (all a redelivery needs), then,
for an event that is not a redelivery, the fact, evidence and course key it would store. The
batch's contents are then settled against the stored ones (see :mod:`bridge.core.contents`):
redeliveries count as duplicates, a content that loses is dead-lettered, and a stored content
that loses to one of the batch is retracted. The plan says what the batch stores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bridge.core.contents import NewContent, settle
from bridge.core.courses import CourseKeys
from bridge.core.credits import CreditFact
from bridge.core.events import CanonicalEvent
from bridge.core.evidence import AccountKey, Evidence
from bridge.core.pseudonym import Pseudonymiser
from bridge.core.sealing import Sealer
from bridge.pipeline.batch import BatchResult, Touched
from bridge.pipeline.messages import Inbound, dead_letter, internal_reason, log
from bridge.store.contents import Retraction, StoredFact
from bridge.store.uow import UnitOfWork

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
class Prepared:
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
        return (str(self.event.platform), self.event.event_id)


@dataclass(frozen=True)
class Kept:
    """What a kept content's fact stores beside it: its event id's contents count and its digest."""

    contents: int
    digest: str | None
    key_id: str


@dataclass
class ContentPlan:
    """How a batch settles one content per event id, applied once every event is prepared."""

    #: Prepared events (by index) whose content is kept, with what their fact stores beside it.
    apply: dict[int, Kept] = field(default_factory=dict)
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

    def apply_to(self, uow: UnitOfWork, touched: Touched, retraction: Retraction) -> None:
        """Store the rejected contents and the new counts, and mark what they touched: a kept
        content's record counts one more event (its identity evidence is the same); a retraction's
        accounts are re-resolved and its records re-derived (or retired)."""
        uow.contents.reject_contents(self.rejected)
        uow.contents.set_contents(self.bumps)
        for known in self.bumped:
            touched.accounts.add(known.account)
            touched.new_courses.setdefault(known.account, set()).add(known.course_key)
        touched.accounts |= retraction.accounts
        touched.changed |= retraction.accounts
        touched.records |= retraction.records


def prepare_events(
    events: Sequence[tuple[Inbound, CanonicalEvent]],
    pseudonymiser: Pseudonymiser,
    sealer: Sealer,
    now: datetime,
    result: BatchResult,
) -> list[Prepared]:
    """Work out each event's content digest (no I/O): all a redelivery needs. An event that fails
    here is dead-lettered."""
    prepared: list[Prepared] = []
    for msg, event in events:
        try:
            prepared.append(Prepared(msg=msg, event=event, content=NewContent.of(event, pseudonymiser)))
        except Exception as exc:  # noqa: BLE001 - a poison event must not stall the partition
            _processing_failed(msg, event, exc, sealer, now, result)
    return prepared


def _complete_event(
    item: Prepared, pseudonymiser: Pseudonymiser, course_keys: CourseKeys, sealer: Sealer, now: datetime,
    result: BatchResult,
) -> bool:
    """Work out what an event that is not a redelivery would store (no I/O). Everything that can
    fail for one event fails here, before anything of it is recorded: it is all or nothing. A
    failure dead-letters the event (and returns False)."""
    event = item.event
    try:
        item.fact = item.content.fact = CreditFact.from_event(event)
        item.evidence = Evidence.of(event, pseudonymiser)
        item.course_key = course_keys.key_for(event.platform, event.course_id)
    except Exception as exc:  # noqa: BLE001 - a poison event must not stall the partition
        _processing_failed(item.msg, event, exc, sealer, now, result)
        return False
    return True


def _processing_failed(
    msg: Inbound, event: CanonicalEvent, exc: Exception, sealer: Sealer, now: datetime, result: BatchResult
) -> None:
    log.exception(
        "event failed in processing; dead-lettered",
        extra={"platform": str(event.platform), "event_id": event.event_id, "topic": msg.topic,
               "partition": msg.partition, "offset": msg.offset},
    )
    result.dead_letters.append((msg, dead_letter(msg, internal_reason(exc), "processing_error", now, sealer)))


def settle_contents(
    uow: UnitOfWork,
    prepared: Sequence[Prepared],
    pseudonymiser: Pseudonymiser,
    course_keys: CourseKeys,
    sealer: Sealer,
    now: datetime,
    result: BatchResult,
) -> ContentPlan:
    """CONTRACT §1: one content per event id, whatever the order (see bridge/core/contents.py).

    Redeliveries are counted as duplicates; a content that loses is dead-lettered now, and a
    stored content that loses to one in this batch is retracted and dead-lettered after the
    fact (from its stored coordinates: the bridge no longer holds its bytes). A new event id
    seen once costs one look-up, shared with the batch, and its digest.
    """

    def complete(item: Prepared) -> bool:
        return _complete_event(item, pseudonymiser, course_keys, sealer, now, result)

    plan = ContentPlan()
    arrivals: dict[tuple[str, str], list[int]] = {}
    for index, item in enumerate(prepared):
        arrivals.setdefault(item.key, []).append(index)
    digests = uow.contents.stored_digests(arrivals)
    current = pseudonymiser.key_id
    unsettled = []
    for key, indices in arrivals.items():
        digest = digests.get(key)
        if digest is None and len(indices) == 1:
            if complete(prepared[indices[0]]):
                content = prepared[indices[0]].content
                plan.apply[indices[0]] = Kept(1, content.digest(current), current)
        elif digest is not None and digest[0] is not None and all(
            prepared[i].content.digest(digest[1]) == digest[0] for i in indices
        ):
            result.duplicates += len(indices)  # redeliveries of the stored content
        else:
            unsettled.append(key)
    stored = uow.contents.stored_contents(unsettled) if unsettled else {}
    for key in unsettled:
        indices = [i for i in arrivals[key] if complete(prepared[i])]
        known = stored.get(key)
        if not indices:
            continue
        out = settle([prepared[i].content for i in indices], known.content if known else None,
                     known.contents if known else 0, known.rejected if known else {}, pseudonymiser)
        result.duplicates += len(out.duplicates)
        for lost in out.rejected:
            item = prepared[indices[lost]]
            plan.reject(item.msg, key, item.content.digest(out.key_id), out.key_id, now)
            legacy = known is not None and known.content.content_digest is None
            reason = _LEGACY_KEPT_REASON if legacy and out.kept is None else _LOST_REASON
            result.dead_letters.append((item.msg, dead_letter(item.msg, reason, DUPLICATE_EVENT_ID, now, sealer)))
        if out.kept is not None:
            winner = prepared[indices[out.kept]]
            plan.apply[indices[out.kept]] = Kept(out.contents, winner.content.digest(out.key_id), out.key_id)
        elif known is not None and out.contents != known.contents:
            plan.bumps[key] = out.contents
            plan.bumped.append(known)
        if out.retract_stored and known is not None:
            plan.retract.append(known)
            plan.winner_of.setdefault(known.account, AccountKey(key[0], winner.event.account))
            gone = Inbound(known.topic, known.partition, known.offset, known.account.account.encode(), None)
            plan.reject(gone, key, known.content.content_digest, known.content.key_id, now)
            result.dead_letters.append((gone, dead_letter(gone, _RETRACTED_REASON, DUPLICATE_EVENT_ID, now, sealer)))
    return plan
