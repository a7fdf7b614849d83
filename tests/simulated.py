"""This test suite's own reading of the platforms' formats (CONTRACT §1), for the simulator's tests.

It does not share code (or mistakes) with the generator: :data:`READERS` reads each platform's raw
events, :func:`contract_event` tells what the contract accepts, and the rest re-derive resident
IDs and mobiles the way CONTRACT §3 describes.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from bridge.core.normalise import resident_id_check_character
from bridge.tools.simulate import SimMessage
from tests.factories import OU, UNION, VOCATIONAL

BEIJING = timezone(timedelta(hours=8))
XAPI = "https://vocational.example.cn/xapi/"
ADL = "http://adlnet.gov/expapi/verbs/"
VERBS = {ADL + "registered": "enrol", ADL + "passed": "complete", ADL + "failed": "complete",
         ADL + "completed": "complete", "http://id.tincanapi.com/verb/unregistered": "withdraw"}
STUDY_HOURS = ("object", "definition", "extensions", XAPI + "study-hours")
RESIDENT_ID = ("context", "extensions", XAPI + "resident-id")
MOBILE = ("context", "extensions", XAPI + "mobile")
XAPI_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?(Z|[+-]\d\d:?\d\d)")


def at(event: dict, path: tuple[str, ...]) -> Any:
    node: Any = event
    for part in path:
        if not isinstance(node, dict) or node.get(part) is None:
            return None
        node = node[part]
    return node


def _ou_document(event: dict) -> str | None:
    document = event["learner"].get("identity_document")
    return (document["number"] or None) if document and document["type"] == "RESIDENT_ID" else None


def _xapi_passed(event: dict) -> bool | None:
    verb = event["verb"]["id"]
    return {ADL + "passed": True, ADL + "failed": False}.get(verb, at(event, ("result", "success")))


def _xapi_time(event: dict) -> datetime:
    assert XAPI_TIME.fullmatch(event["timestamp"]), event["timestamp"]
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))


@dataclass(frozen=True)
class Reader:
    """This test's own reading of one platform's format (CONTRACT §1)."""

    platform: str
    kind: Callable[[dict], str | None]
    """enrol / complete / withdraw, ``None`` for an unknown type."""
    required: tuple[tuple[str, ...], ...]
    required_on_completion: tuple[str, ...] | Callable[[dict], bool]
    account: tuple[str, ...]
    event_id: tuple[str, ...]
    course: Callable[[dict], str]
    resident_id: Callable[[dict], str | None]
    mobile: Callable[[dict], str | None]
    moment: Callable[[dict], datetime]
    passed: Callable[[dict], bool | None]


READERS = {
    UNION: Reader(
        "union",
        lambda e: {"COURSE_ENROLL": "enrol", "COURSE_COMPLETE": "complete", "COURSE_WITHDRAW": "withdraw"}.get(
            e.get("eventType")),
        (("msgId",), ("eventType",), ("occurTime",), ("member", "memberNo"), ("course", "courseCode"),
         ("course", "studyHours")),
        ("result", "passed"),
        ("member", "memberNo"), ("msgId",),
        lambda e: e["course"]["courseCode"],
        lambda e: e["member"].get("idCardNo") or None,
        lambda e: e["member"].get("mobile"),
        lambda e: datetime.strptime(e["occurTime"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING),
        lambda e: at(e, ("result", "passed")),
    ),
    OU: Reader(
        "ou",
        lambda e: {"enrolment.created": "enrol", "course.completed": "complete", "enrolment.cancelled": "withdraw"}.get(
            e.get("event_type")),
        (("event_id",), ("event_type",), ("occurred_at",), ("learner", "student_no"), ("course", "course_id"),
         ("course", "credits")),
        ("outcome", "status"),
        ("learner", "student_no"), ("event_id",),
        lambda e: e["course"]["course_id"],
        _ou_document,
        lambda e: e["learner"].get("phone"),
        lambda e: datetime.fromtimestamp(e["occurred_at"] / 1000, UTC),
        lambda e: {"PASSED": True, "FAILED": False}.get(at(e, ("outcome", "status"))),
    ),
    VOCATIONAL: Reader(
        "vocational",
        lambda e: VERBS.get(at(e, ("verb", "id"))),
        (("id",), ("timestamp",), ("actor", "account", "name"), ("verb", "id"), ("object", "id"), STUDY_HOURS),
        lambda e: e["verb"]["id"] != ADL + "completed" or isinstance(at(e, ("result", "success")), bool),
        ("actor", "account", "name"), ("id",),
        lambda e: re.sub(r"[?#].*", "", e["object"]["id"]).rpartition("/")[2],
        lambda e: at(e, RESIDENT_ID) or None,
        lambda e: at(e, MOBILE),
        _xapi_time,
        _xapi_passed,
    ),
}
TOPIC_OF = {reader.platform: topic for topic, reader in READERS.items()}


def contract_event(message: SimMessage) -> dict | None:
    """The event if the contract accepts the message, else ``None`` (it would be dead-lettered)."""
    try:
        value = json.loads(message.value.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(value, dict):
        return None
    reader = READERS[message.topic]
    kind = reader.kind(value)
    if kind is None or any(at(value, path) is None for path in reader.required):
        return None
    if kind == "complete":
        extra = reader.required_on_completion
        if not (extra(value) if callable(extra) else at(value, extra) is not None):
            return None
    return value


def account(message: SimMessage, event: dict) -> str:
    return at(event, READERS[message.topic].account)


def event_id(message: SimMessage, event: dict) -> str:
    return at(event, READERS[message.topic].event_id)


def shape(raw: str) -> str:
    """NFKC, no spaces, upper case; a 15-digit legacy number upgraded (CONTRACT §3.2)."""
    number = unicodedata.normalize("NFKC", raw).replace(" ", "").upper()
    if re.fullmatch(r"\d{15}", number):
        first17 = number[:6] + "19" + number[6:]
        number = first17 + resident_id_check_character(first17)
    return number


def real_date(number: str) -> bool:
    try:
        date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    return True


def valid_resident_id(raw: str) -> str | None:
    number = shape(raw)
    if not re.fullmatch(r"\d{17}[\dX]", number) or not real_date(number):
        return None
    return number if resident_id_check_character(number[:17]) == number[17] else None


def mobile_digits(raw: str) -> str:
    return re.sub(r"\D", "", raw)[-11:]


def of(good: list, topic: str) -> list[dict]:
    return [e for _, m, e in good if m.topic == topic]
