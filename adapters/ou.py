"""Adapter for ``ou.lifelong.events.v1``, the open university's lifelong-education platform (CONTRACT §1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from adapters._fields import EARLIEST, LATEST, Message, json_type
from adapters._ou_sim import SIMULATOR
from adapters._platform import PlatformAdapter
from bridge.core.credits import course_credits_rule
from bridge.core.events import CanonicalEvent, DocumentType, EventKind, Outcome
from bridge.core.normalise import person_evidence
from topics import catalogue

PLATFORM = "ou"

_KINDS = {
    "enrolment.created": EventKind.ENROLLED,
    "enrolment.cancelled": EventKind.WITHDRAWN,
    "course.completed": EventKind.COMPLETED,
}
_STATUSES = {"PASSED": True, "FAILED": False}
_DOCUMENT_TYPES = {t.value: t for t in DocumentType}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EARLIEST_MS = (EARLIEST - _EPOCH) // timedelta(milliseconds=1)
_LATEST_MS = (LATEST - _EPOCH) // timedelta(milliseconds=1)


def parse(value: bytes) -> CanonicalEvent:
    """Parse one raw message value into a canonical event; raises ``BadInput`` when it is unusable."""
    msg = Message.decode(value, PLATFORM)
    event_id = msg.required_id("event_id", "the event id")
    kind = msg.choice("event_type", "the event type", _KINDS, code="unknown_event_type")
    occurred_at = _occurred_at(msg)
    account = msg.required_id("learner.student_no", "the learner's student number")
    course_id = msg.required_id("course.course_id", "the course id")
    credits = msg.required_number("course.credits", "the course's credits")
    hours = msg.optional_number("course.contact_hours", "the course's contact hours")
    outcome = None
    # ``outcome`` belongs to completions only; on other event types it is ignored.
    if kind is EventKind.COMPLETED:
        outcome = Outcome(
            passed=msg.choice("outcome.status", "the outcome status", _STATUSES),
            score=msg.optional_number("outcome.score", "the score", minimum=None),
        )
    doc_type, number = _identity_document(msg)
    person = person_evidence(
        doc_type=doc_type,
        number=number,
        name=msg.optional_name("learner.full_name", "the learner's full name"),
        mobile=msg.optional_text("learner.phone", "the learner's phone number"),
    )
    return CanonicalEvent(
        platform=PLATFORM,
        event_id=event_id,
        kind=kind,
        occurred_at=occurred_at,
        account=account,
        course_id=course_id,
        hours=hours,
        platform_credits=credits,
        outcome=outcome,
        person=person,
    )


def _occurred_at(msg: Message) -> datetime:
    """``occurred_at``: integer epoch milliseconds, UTC."""
    path = "occurred_at"
    expected = "expected epoch milliseconds (UTC) as an integer."
    raw = msg.get(path)
    if not msg.present(path):
        msg.fail("missing_field", f"field {path} is missing or empty; {expected}")
    if isinstance(raw, bool) or not isinstance(raw, int):
        msg.fail("invalid_time", f"field {path} is {json_type(raw)} but not an integer; {expected}")
    # Checked on the integer, before any datetime arithmetic can overflow.
    if not _EARLIEST_MS <= raw < _LATEST_MS:
        years = f"{EARLIEST.year}-{LATEST.year - 1}"
        msg.fail("invalid_time", f"field {path} is outside {years}; check the sender's clock and that "
                                 "the unit is milliseconds, not seconds.")
    return _EPOCH + timedelta(milliseconds=raw)


def _identity_document(msg: Message) -> tuple[DocumentType | None, str | None]:
    """The optional ``identity_document``: its type and raw number, or ``(None, None)``."""
    path = "learner.identity_document"
    if not msg.present(path):
        return None, None
    number = msg.optional_text(f"{path}.number", "the document number")
    if not msg.present(f"{path}.type"):
        if number is None:
            return None, None
        msg.fail("invalid_field", f"field {path}.type is missing while a number is given; "
                                  f"expected one of {', '.join(_DOCUMENT_TYPES)}.")
    return msg.choice(f"{path}.type", "the document type", _DOCUMENT_TYPES), number


ADAPTER = PlatformAdapter(
    name=PLATFORM,
    label="open university",
    topic=catalogue.OU_EVENTS,
    parse=parse,
    credit_rule=course_credits_rule,
    signature="event_id",
    simulator=SIMULATOR,
)
TOPIC = ADAPTER.topic.name
