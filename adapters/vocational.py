"""Adapter for ``vocational.learning.events.v1``, the vocational platform's xAPI statements (CONTRACT §1).

One statement per message. What the bridge reads of it:

- ``id`` (the event id), ``actor.account.name`` (the account), ``verb.id`` (the event kind: see
  ``_VERBS``), ``timestamp`` (ISO 8601 with an offset, to UTC);
- the course id: the last path segment of the activity IRI ``object.id``, taken as written (no
  percent-decoding); the hours: the study-hours extension of ``object.definition.extensions``;
- on a completion: ``result.success`` (required for ``completed``; for ``passed`` and ``failed``
  optional, and bad input when it contradicts the verb) and ``result.score.scaled`` (0-1) x 100;
- the identity evidence: ``actor.name`` and the resident-id and mobile context extensions.

Extension keys are IRIs and hold dots, so their paths are :class:`adapters._fields.KeyPath` s.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Final

from adapters._fields import KeyPath, Message, json_type
from adapters._platform import PlatformAdapter
from adapters._vocational_sim import SIMULATOR
from bridge.core.credits import hours_rule
from bridge.core.events import CanonicalEvent, DocumentType, EventKind, Outcome
from bridge.core.normalise import MAX_ID_LENGTH, is_printable, person_evidence
from topics import catalogue

PLATFORM: Final = "vocational"

_XAPI: Final = "https://vocational.example.cn/xapi/"
STUDY_HOURS: Final = KeyPath("object", "definition", "extensions", _XAPI + "study-hours")
RESIDENT_ID: Final = KeyPath("context", "extensions", _XAPI + "resident-id")
MOBILE: Final = KeyPath("context", "extensions", _XAPI + "mobile")

_ADL: Final = "http://adlnet.gov/expapi/verbs/"
_COMPLETED: Final = _ADL + "completed"
#: Verb IRI -> (event kind, whether the learner passed: ``None`` when the verb does not say).
_VERBS: Final[dict[str, tuple[EventKind, bool | None]]] = {
    _ADL + "registered": (EventKind.ENROLLED, None),
    _ADL + "passed": (EventKind.COMPLETED, True),
    _ADL + "failed": (EventKind.COMPLETED, False),
    _COMPLETED: (EventKind.COMPLETED, None),
    "http://id.tincanapi.com/verb/unregistered": (EventKind.WITHDRAWN, None),
}

# ISO 8601 extended date and time (the form xAPI and RFC 3339 use), ASCII digits only: seconds and
# fraction optional, the offset required (Z, +hh:mm, +hhmm or +hh). A fraction is cut to microseconds.
_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:[.,]([0-9]{1,9}))?)?"
    r"(?:(Z)|([+-])([0-9]{2})(?::?([0-9]{2}))?)"
)
_NAIVE_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?")
# RFC 3986 appendix B, with the scheme an absolute IRI must have (xAPI: activity ids are IRIs).
_IRI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:(?://[^/?#]*)?([^?#]*)(?:\?[^#]*)?(?:#.*)?", re.DOTALL)


def parse(value: bytes) -> CanonicalEvent:
    """Parse one raw message value into a canonical event; raises ``BadInput`` when it is unusable."""
    msg = Message.decode(value, PLATFORM)
    event_id = msg.required_id("id", "the statement id")
    kind, verdict = msg.choice("verb.id", "the verb IRI", _VERBS, code="unknown_event_type")
    occurred_at = _timestamp(msg)
    account = msg.required_id("actor.account.name", "the learner's account name")
    course_id = _course_id(msg)
    hours = msg.required_number(STUDY_HOURS, "the course's study hours")
    outcome = None
    # ``result`` belongs to completions only; on other verbs it is ignored.
    if kind is EventKind.COMPLETED:
        outcome = Outcome(passed=_passed(msg, verdict), score=_score(msg))
    person = person_evidence(
        doc_type=DocumentType.RESIDENT_ID,
        number=msg.optional_text(RESIDENT_ID, "the resident ID number"),
        name=msg.optional_name("actor.name", "the learner's name"),
        mobile=msg.optional_text(MOBILE, "the learner's mobile number"),
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


def _timestamp(msg: Message) -> datetime:
    """``timestamp``: ISO 8601 date and time with a UTC offset, returned as aware UTC."""
    path = "timestamp"
    expected = "expected ISO 8601 date and time with a UTC offset, as 'yyyy-MM-ddTHH:mm:ss+08:00' or '...Z'."
    raw = msg.get(path)
    if not msg.present(path):
        msg.fail("missing_field", f"field {path} is missing or empty; {expected}")
    if not isinstance(raw, str):
        msg.fail("invalid_time", f"field {path} is {json_type(raw)}; {expected}")
    text = raw.strip()
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        if _NAIVE_TIMESTAMP.fullmatch(text):
            msg.fail("invalid_time", f"field {path} has no UTC offset, so its instant is unknown; {expected}")
        msg.fail("invalid_time", f"field {path} has the wrong format; {expected}")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_hours, off_minutes = match.groups()
    if zulu:
        zone = UTC
    else:
        offset = timedelta(hours=int(off_hours), minutes=int(off_minutes or 0))
        if offset >= timedelta(hours=24) or int(off_minutes or 0) >= 60:
            msg.fail("invalid_time", f"field {path} has a UTC offset out of range; {expected}")
        zone = timezone(-offset if sign == "-" else offset)
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second or 0),
            int((fraction or "").ljust(6, "0")[:6]), tzinfo=zone,
        )
    except ValueError:
        msg.fail("invalid_time", f"field {path} is not a real calendar date and time; {expected}")
    # Checked before the conversion, which could leave the calendar (year 9999 at -05:00).
    return msg.in_window(path, moment).astimezone(UTC)


def _course_id(msg: Message) -> str:
    """The last path segment of the activity IRI ``object.id``: the platform's course id."""
    path = "object.id"
    what = "the course's activity IRI"
    iri = msg.required_text(path, what)
    if not is_printable(iri):
        msg.fail("invalid_text", f"field {path} holds a character that is not printable text (a control, "
                 f"format, private-use or unassigned character); expected {what} as printable text.")
    match = _IRI.fullmatch(iri)
    if match is None:
        msg.fail("invalid_field", f"field {path} is not an absolute IRI (no scheme); expected {what}, "
                 "as 'https://host/courses/COURSE-ID'.")
    course_id = match.group(1).rpartition("/")[2]
    if course_id in ("", ".", ".."):
        msg.fail("invalid_field", f"field {path} has no usable last path segment (it is empty, '.' or '..'); "
                 f"expected {what} ending in the course id, as 'https://host/courses/COURSE-ID'.")
    if len(course_id) > MAX_ID_LENGTH:
        msg.fail("field_too_long", f"field {path} ends in a course id (its last path segment) longer than "
                 f"{MAX_ID_LENGTH} characters; expected a course id of at most {MAX_ID_LENGTH} characters.")
    return course_id


def _passed(msg: Message, verdict: bool | None) -> bool:
    """Whether a completion passed: the verb's verdict, or ``result.success`` for ``completed``."""
    path = "result.success"
    if verdict is None:
        return msg.required_bool(path, "whether the learner passed, required with the verb completed")
    if msg.present(path):
        success = msg.required_bool(path, "whether the learner passed")
        if success is not verdict:
            verb = "passed" if verdict else "failed"
            msg.fail("contradictory_result", f"field {path} contradicts the verb {verb} (verb.id); "
                     f"expected {str(verdict).lower()} or no {path} with that verb.")
    return verdict


def _score(msg: Message) -> float | None:
    """``result.score.scaled`` (0 to 1) as a score out of 100, or ``None`` when it is absent.

    The shift is done on the decimal the platform wrote (0.92 gives 92.0, not 92.00000000000001).
    """
    path = "result.score.scaled"
    what = "the scaled score"
    scaled = msg.optional_number(path, what, minimum=0)
    if scaled is None:
        return None
    if scaled > 1:
        msg.fail("invalid_field", f"field {path} is out of range; expected {what} as a number from 0 to 1.")
    return float(Decimal(repr(scaled)).scaleb(2)) or 0.0  # never -0.0


ADAPTER = PlatformAdapter(
    name=PLATFORM,
    label="vocational",
    topic=catalogue.VOCATIONAL_EVENTS,
    parse=parse,
    credit_rule=hours_rule,
    signature="verb",
    simulator=SIMULATOR,
)
TOPIC = ADAPTER.topic.name
