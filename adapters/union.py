"""Adapter for ``union.training.events.v1``, the trade-union training platform (CONTRACT §1)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from adapters._fields import Message, json_type
from adapters._platform import PlatformAdapter
from adapters._union_sim import SIMULATOR
from bridge.core.credits import hours_rule
from bridge.core.events import CanonicalEvent, DocumentType, EventKind, Outcome
from bridge.core.normalise import person_evidence
from topics import catalogue

PLATFORM = "union"

_KINDS = {
    "COURSE_ENROLL": EventKind.ENROLLED,
    "COURSE_COMPLETE": EventKind.COMPLETED,
    "COURSE_WITHDRAW": EventKind.WITHDRAWN,
}
_BEIJING = timezone(timedelta(hours=8))
_OCCUR_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")


def parse(value: bytes) -> CanonicalEvent:
    """Parse one raw message value into a canonical event; raises ``BadInput`` when it is unusable."""
    msg = Message.decode(value, PLATFORM)
    event_id = msg.required_id("msgId", "the message id")
    kind = msg.choice("eventType", "the event type", _KINDS, code="unknown_event_type")
    occurred_at = _occur_time(msg)
    account = msg.required_id("member.memberNo", "the member's account number")
    course_id = msg.required_id("course.courseCode", "the course code")
    hours = msg.required_number("course.studyHours", "the course's study hours")
    outcome = None
    # ``result`` belongs to completions only; on other event types it is ignored.
    if kind is EventKind.COMPLETED:
        outcome = Outcome(
            passed=msg.required_bool("result.passed", "whether the member passed"),
            score=msg.optional_number("result.score", "the score", minimum=None),
        )
    person = person_evidence(
        doc_type=DocumentType.RESIDENT_ID,
        number=msg.optional_text("member.idCardNo", "the resident ID number"),
        name=msg.optional_name("member.name", "the member's name"),
        mobile=msg.optional_text("member.mobile", "the member's mobile number"),
    )
    return CanonicalEvent(
        platform=PLATFORM,
        event_id=event_id,
        kind=kind,
        occurred_at=occurred_at,
        account=account,
        course_id=course_id,
        hours=hours,
        outcome=outcome,
        person=person,
    )


def _occur_time(msg: Message) -> datetime:
    """``occurTime``: Beijing wall-clock time without offset, returned as aware UTC."""
    path = "occurTime"
    expected = "expected Beijing time as 'yyyy-MM-dd HH:mm:ss'."
    raw = msg.get(path)
    if not msg.present(path):
        msg.fail("missing_field", f"field {path} is missing or empty; {expected}")
    if not isinstance(raw, str):
        msg.fail("invalid_time", f"field {path} is {json_type(raw)}; {expected}")
    match = _OCCUR_TIME.fullmatch(raw.strip())
    if match is None:
        msg.fail("invalid_time", f"field {path} has the wrong format; {expected}")
    try:
        year, month, day, hour, minute, second = map(int, match.groups())
        local = datetime(year, month, day, hour, minute, second, tzinfo=_BEIJING)
    except ValueError:
        msg.fail("invalid_time", f"field {path} is not a real calendar date and time; {expected}")
    return msg.in_window(path, local).astimezone(UTC)


ADAPTER = PlatformAdapter(
    name=PLATFORM,
    label="union",
    topic=catalogue.UNION_EVENTS,
    parse=parse,
    credit_rule=hours_rule,
    signature="msgId",
    simulator=SIMULATOR,
)
TOPIC = ADAPTER.topic.name
