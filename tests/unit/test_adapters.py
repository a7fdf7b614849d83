"""Platform adapters: raw Kafka message values to canonical events, or BadInput (CONTRACT §1)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import adapters
from adapters import ou, union, vocational
from bridge.core.events import (
    CanonicalEvent,
    DocumentProblem,
    DocumentType,
    EventKind,
    IdentityDocument,
    Outcome,
    Platform,
)
from bridge.errors import BadInput

UNION_EXAMPLE: dict[str, Any] = {
    "msgId": "u-7f3c2a10-0001",
    "eventType": "COURSE_COMPLETE",
    "occurTime": "2024-04-26 09:30:00",
    "member": {
        "memberNo": "GH2101000123",
        "idCardNo": "11010519491231002x",
        "name": "张　伟",
        "mobile": "138 0013 8000",
        "orgName": "沈阳市总工会",
    },
    "course": {"courseCode": "ACFTU-SK-0012", "courseName": "数字技能入门", "studyHours": 24},
    "result": {"passed": True, "score": 86.5, "certificateNo": "CERT-2024-000123"},
}

OU_EXAMPLE: dict[str, Any] = {
    "event_id": "01HW3K9Q2M4T8V6X0Y1Z2A3B4C",
    "event_type": "course.completed",
    "occurred_at": 1714095000000,
    "learner": {
        "student_no": "2421101400123",
        "identity_document": {"type": "RESIDENT_ID", "number": "11010519491231002X"},
        "full_name": "张伟",
        "phone": "+8613800138000",
    },
    "course": {"course_id": "NOU-08123", "title": "数字技能基础", "credits": 2.0, "contact_hours": 36},
    "outcome": {"status": "PASSED", "score": 78, "grade": "B", "completed_on": "2024-04-20"},
}

# Every personal value either example carries, raw and normalised: none may reach a reason.
PERSONAL = [
    "11010519491231002x", "11010519491231002X", "110105194912310021", "110105491231002",
    "张　伟", "张伟", "138 0013 8000", "13800138000", "+8613800138000", "E12345678",
]

Parser = Callable[[bytes], CanonicalEvent]

RESIDENT_DOCUMENT = IdentityDocument(type=DocumentType.RESIDENT_ID, number="11010519491231002X")

_DELETE = object()


def _with(example: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy of ``example`` with dotted-path changes (``_DELETE`` removes the key)."""
    message = copy.deepcopy(example)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = message
        for key in parents:
            node = node[key]
        if value is _DELETE:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return message


def _encode(message: Any) -> bytes:
    return json.dumps(message, ensure_ascii=False).encode()


def _union(**changes: Any) -> CanonicalEvent:
    return union.parse(_encode(_with(UNION_EXAMPLE, **changes)))


def _ou(**changes: Any) -> CanonicalEvent:
    return ou.parse(_encode(_with(OU_EXAMPLE, **changes)))


# --- the registry --------------------------------------------------------------------------------


def test_parsers_are_keyed_by_the_catalogue_topic_each_module_declares() -> None:
    assert adapters.parsers() == {
        "union.training.events.v1": union.parse,
        "ou.lifelong.events.v1": ou.parse,
        "vocational.learning.events.v1": vocational.parse,
    }
    assert [(a.name, a.topic.name) for a in adapters.registered()] == [
        ("union", "union.training.events.v1"),
        ("ou", "ou.lifelong.events.v1"),
        ("vocational", "vocational.learning.events.v1"),
    ]
    assert (union.TOPIC, union.PLATFORM, ou.TOPIC, ou.PLATFORM) == (
        "union.training.events.v1", "union", "ou.lifelong.events.v1", "ou")


# --- the contract's examples ---------------------------------------------------------------------


def test_union_example() -> None:
    event = union.parse(_encode(UNION_EXAMPLE))
    assert event == CanonicalEvent(
        platform="union",
        event_id="u-7f3c2a10-0001",
        kind=EventKind.COMPLETED,
        occurred_at=datetime(2024, 4, 26, 1, 30, tzinfo=UTC),
        account="GH2101000123",
        course_id="ACFTU-SK-0012",
        hours=24.0,
        platform_credits=None,
        outcome=Outcome(passed=True, score=86.5),
        person=event.person,
    )
    assert event.person.document == RESIDENT_DOCUMENT
    assert event.person.document_problem is None
    assert event.person.name_key == "张伟"
    assert event.person.mobile_key == "13800138000"


def test_ou_example() -> None:
    event = ou.parse(_encode(OU_EXAMPLE))
    assert event == CanonicalEvent(
        platform="ou",
        event_id="01HW3K9Q2M4T8V6X0Y1Z2A3B4C",
        kind=EventKind.COMPLETED,
        occurred_at=datetime(2024, 4, 26, 1, 30, tzinfo=UTC),
        account="2421101400123",
        course_id="NOU-08123",
        hours=36.0,
        platform_credits=2.0,
        outcome=Outcome(passed=True, score=78.0),
        person=event.person,
    )
    assert event.person.document == RESIDENT_DOCUMENT
    assert (event.person.name_key, event.person.mobile_key) == ("张伟", "13800138000")


def test_the_two_examples_describe_the_same_person_and_instant() -> None:
    a, b = union.parse(_encode(UNION_EXAMPLE)), ou.parse(_encode(OU_EXAMPLE))
    assert a.person == b.person
    assert a.occurred_at == b.occurred_at


# --- union specifics -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("occur_time", "utc"),
    [
        ("2024-04-26 09:30:00", datetime(2024, 4, 26, 1, 30, tzinfo=UTC)),
        ("2024-01-01 03:00:00", datetime(2023, 12, 31, 19, 0, tzinfo=UTC)),  # crosses a year in UTC
        (" 2024-02-29 23:59:59 ", datetime(2024, 2, 29, 15, 59, 59, tzinfo=UTC)),
    ],
)
def test_union_time_is_beijing_converted_to_utc(occur_time: str, utc: datetime) -> None:
    event = _union(occurTime=occur_time)
    assert event.occurred_at == utc
    assert event.occurred_at.utcoffset().total_seconds() == 0
    assert event.occurred_at.isoformat().replace("+00:00", "Z") == utc.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("event_type", "kind"),
    [("COURSE_ENROLL", EventKind.ENROLLED), ("COURSE_COMPLETE", EventKind.COMPLETED),
     ("COURSE_WITHDRAW", EventKind.WITHDRAWN)],
)
def test_union_event_types(event_type: str, kind: EventKind) -> None:
    assert _union(eventType=event_type).kind is kind


def test_union_result_is_ignored_on_other_event_types() -> None:
    assert _union(eventType="COURSE_ENROLL").outcome is None
    assert _union(eventType="COURSE_WITHDRAW", result="garbage").outcome is None
    assert _union(eventType="COURSE_ENROLL", result=_DELETE).outcome is None


def test_union_failed_result_and_optional_score() -> None:
    assert _union(result={"passed": False}).outcome == Outcome(passed=False, score=None)
    assert _union(result__score=None).outcome == Outcome(passed=True)
    assert _union(result__score="").outcome == Outcome(passed=True)


def test_union_zero_and_fractional_hours() -> None:
    assert _union(course__studyHours=0).hours == 0.0
    assert _union(course__studyHours=7.5).hours == 7.5


def test_union_invalid_id_card_is_a_data_quality_problem_not_bad_input() -> None:
    event = _union(member__idCardNo="110105194912310021")
    assert event.person.document is None
    assert event.person.document_problem is DocumentProblem.BAD_CHECKSUM
    assert event.account == "GH2101000123"


@pytest.mark.parametrize("missing", [{"member__idCardNo": _DELETE}, {"member__idCardNo": ""},
                                     {"member__idCardNo": None}, {"member__idCardNo": "   "}])
def test_union_missing_id_card_gives_neither_document_nor_problem(missing: dict[str, Any]) -> None:
    event = _union(**missing)
    assert event.person.document is None and event.person.document_problem is None


def test_union_legacy_and_full_width_id_cards_are_normalised() -> None:
    assert _union(member__idCardNo="110105491231002").person.document == RESIDENT_DOCUMENT
    assert _union(member__idCardNo="１１０１０５ １９４９１２３１ ００２ｘ").person.document == RESIDENT_DOCUMENT


def test_union_optional_personal_fields_may_be_missing_or_empty() -> None:
    event = _union(member={"memberNo": " GH2101000123 ", "name": "", "mobile": None})
    assert event.account == "GH2101000123"
    assert (event.person.name_key, event.person.mobile_key, event.person.document) == (None, None, None)


def test_union_unusable_mobile_is_dropped() -> None:
    assert _union(member__mobile="010-12345678").person.mobile_key is None


def test_extra_fields_are_allowed() -> None:
    assert _union(extra={"anything": [1, 2]}, member__vip=True).event_id == "u-7f3c2a10-0001"
    assert _ou(extra="x", learner__nickname="z").event_id == "01HW3K9Q2M4T8V6X0Y1Z2A3B4C"


# --- OU specifics --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "kind"),
    [("enrolment.created", EventKind.ENROLLED), ("course.completed", EventKind.COMPLETED),
     ("enrolment.cancelled", EventKind.WITHDRAWN)],
)
def test_ou_event_types(event_type: str, kind: EventKind) -> None:
    event = _ou(event_type=event_type)
    assert event.kind is kind
    assert (event.outcome is not None) == (kind is EventKind.COMPLETED)


def test_ou_failed_outcome() -> None:
    assert _ou(outcome={"status": "FAILED"}).outcome == Outcome(passed=False, score=None)


def test_ou_time_is_epoch_milliseconds_utc() -> None:
    assert _ou(occurred_at=1714095000123).occurred_at == datetime(2024, 4, 26, 1, 30, 0, 123000, tzinfo=UTC)


@pytest.mark.parametrize("contact_hours", [_DELETE, None, ""])
def test_ou_contact_hours_are_optional(contact_hours: Any) -> None:
    event = _ou(course__contact_hours=contact_hours)
    assert event.hours is None
    assert event.platform_credits == 2.0


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"type": "PASSPORT", "number": "e1234 5678"},
         IdentityDocument(type=DocumentType.PASSPORT, number="E12345678")),
        ({"type": "HK_MACAO_TAIWAN_PERMIT", "number": "C01234567"},
         IdentityDocument(type=DocumentType.HK_MACAO_TAIWAN_PERMIT, number="C01234567")),
        ({"type": "RESIDENT_ID", "number": "110105491231002"}, RESIDENT_DOCUMENT),
    ],
)
def test_ou_identity_documents(document: dict[str, str], expected: IdentityDocument) -> None:
    assert _ou(learner__identity_document=document).person.document == expected


@pytest.mark.parametrize(
    "document",
    [_DELETE, None, {}, "", {"type": "PASSPORT"}, {"type": "PASSPORT", "number": ""},
     {"type": None, "number": None}],
)
def test_ou_absent_identity_document(document: Any) -> None:
    event = _ou(learner__identity_document=document)
    assert event.person.document is None and event.person.document_problem is None


@pytest.mark.parametrize(
    ("document", "problem"),
    [({"type": "RESIDENT_ID", "number": "110105194912310021"}, DocumentProblem.BAD_CHECKSUM),
     ({"type": "PASSPORT", "number": "E-1"}, DocumentProblem.BAD_CHARACTERS),
     ({"type": "PASSPORT", "number": "E1"}, DocumentProblem.BAD_LENGTH),
     ({"type": "PASSPORT", "number": "\u200b"}, DocumentProblem.EMPTY_NUMBER)],
)
def test_ou_invalid_document_is_a_data_quality_problem(
    document: dict[str, str], problem: DocumentProblem
) -> None:
    event = _ou(learner__identity_document=document)
    assert event.person.document is None
    assert event.person.document_problem is problem


# --- bad input: every code ----------------------------------------------------------------------

RAW_CASES = [
    (b"\xff\xfe{}", "not_utf8"),
    (b'{"msgId": "\xc3\x28"}', "not_utf8"),
    (b"", "not_json"),
    (b"{", "not_json"),
    (b"{'msgId': 'x'}", "not_json"),
    (b'{"a": NaN}', "not_json"),
    (b"[" * 100_000 + b"]" * 100_000, "not_json"),
    (b"[]", "not_object"),
    (b'"a string"', "not_object"),
    (b"42", "not_object"),
    (b"null", "not_object"),
]


@pytest.mark.parametrize("parse", [union.parse, ou.parse])
@pytest.mark.parametrize(("value", "code"), RAW_CASES)
def test_undecodable_messages(parse: Parser, value: bytes, code: str) -> None:
    with pytest.raises(BadInput) as caught:
        parse(value)
    assert caught.value.code == code
    assert caught.value.reason.endswith(".")


@pytest.mark.parametrize("parse", [union.parse, ou.parse])
def test_a_null_value_is_bad_input(parse: Parser) -> None:
    with pytest.raises(BadInput) as caught:
        parse(None)  # type: ignore[arg-type]
    assert caught.value.code == "not_json"


UNION_CASES = [
    ({"msgId": _DELETE}, "missing_field", "msgId"),
    ({"msgId": ""}, "missing_field", "msgId"),
    ({"msgId": 17}, "invalid_field", "msgId"),
    ({"eventType": _DELETE}, "missing_field", "eventType"),
    ({"eventType": ["COURSE_ENROLL"]}, "invalid_field", "eventType"),
    ({"eventType": "COURSE_PAUSE"}, "unknown_event_type", "eventType"),
    ({"eventType": "course_complete"}, "unknown_event_type", "eventType"),
    ({"occurTime": _DELETE}, "missing_field", "occurTime"),
    ({"occurTime": "2024-04-26T09:30:00"}, "invalid_time", "occurTime"),
    ({"occurTime": "2024-04-26 09:30:00+08:00"}, "invalid_time", "occurTime"),
    ({"occurTime": "2024-4-26 9:30:00"}, "invalid_time", "occurTime"),
    ({"occurTime": "２０２４-04-26 09:30:00"}, "invalid_time", "occurTime"),
    ({"occurTime": "2024-02-30 09:30:00"}, "invalid_time", "occurTime"),
    ({"occurTime": "2024-04-26 24:00:00"}, "invalid_time", "occurTime"),
    ({"occurTime": "0001-01-01 00:00:00"}, "invalid_time", "occurTime"),
    ({"occurTime": "9999-12-31 23:59:59"}, "invalid_time", "occurTime"),
    ({"occurTime": 1714095000000}, "invalid_time", "occurTime"),
    ({"member": _DELETE}, "missing_field", "member.memberNo"),
    ({"member": "GH2101000123"}, "invalid_field", "member"),
    ({"member__memberNo": _DELETE}, "missing_field", "member.memberNo"),
    ({"member__memberNo": "  "}, "missing_field", "member.memberNo"),
    ({"member__memberNo": 2101000123}, "invalid_field", "member.memberNo"),
    ({"course": _DELETE}, "missing_field", "course.courseCode"),
    ({"course__courseCode": None}, "missing_field", "course.courseCode"),
    ({"course__studyHours": _DELETE}, "missing_field", "course.studyHours"),
    ({"course__studyHours": -1}, "invalid_field", "course.studyHours"),
    ({"course__studyHours": True}, "invalid_field", "course.studyHours"),
    ({"course__studyHours": "24"}, "invalid_field", "course.studyHours"),
    ({"course__studyHours": 10**400}, "invalid_field", "course.studyHours"),
    ({"result": _DELETE}, "missing_field", "result.passed"),
    ({"result__passed": _DELETE}, "missing_field", "result.passed"),
    ({"result__passed": "true"}, "invalid_field", "result.passed"),
    ({"result__passed": 1}, "invalid_field", "result.passed"),
    ({"result__score": "86.5"}, "invalid_field", "result.score"),
    ({"member__idCardNo": 110105194912310021}, "invalid_field", "member.idCardNo"),
    ({"member__idCardNo": ["11010519491231002x"]}, "invalid_field", "member.idCardNo"),
    ({"member__name": {"given": "伟", "family": "张"}}, "invalid_field", "member.name"),
    ({"member__mobile": 13800138000}, "invalid_field", "member.mobile"),
]

OU_CASES = [
    ({"event_id": _DELETE}, "missing_field", "event_id"),
    ({"event_id": True}, "invalid_field", "event_id"),
    ({"event_type": "enrolment.updated"}, "unknown_event_type", "event_type"),
    ({"event_type": None}, "missing_field", "event_type"),
    ({"occurred_at": _DELETE}, "missing_field", "occurred_at"),
    ({"occurred_at": 1714095000}, "invalid_time", "occurred_at"),  # seconds, not milliseconds
    ({"occurred_at": 1714095000000 * 1000}, "invalid_time", "occurred_at"),  # microseconds
    ({"occurred_at": -1}, "invalid_time", "occurred_at"),
    ({"occurred_at": 10**30}, "invalid_time", "occurred_at"),
    ({"occurred_at": 1714095000000.5}, "invalid_time", "occurred_at"),
    ({"occurred_at": True}, "invalid_time", "occurred_at"),
    ({"occurred_at": "1714095000000"}, "invalid_time", "occurred_at"),
    ({"learner": _DELETE}, "missing_field", "learner.student_no"),
    ({"learner": []}, "invalid_field", "learner"),
    ({"learner__student_no": ""}, "missing_field", "learner.student_no"),
    ({"learner__student_no": 2421101400123}, "invalid_field", "learner.student_no"),
    ({"course__course_id": _DELETE}, "missing_field", "course.course_id"),
    ({"course__credits": _DELETE}, "missing_field", "course.credits"),
    ({"course__credits": -0.5}, "invalid_field", "course.credits"),
    ({"course__credits": False}, "invalid_field", "course.credits"),
    ({"course__contact_hours": "36"}, "invalid_field", "course.contact_hours"),
    ({"outcome": _DELETE}, "missing_field", "outcome.status"),
    ({"outcome__status": _DELETE}, "missing_field", "outcome.status"),
    ({"outcome__status": "passed"}, "invalid_field", "outcome.status"),
    ({"outcome__status": True}, "invalid_field", "outcome.status"),
    ({"outcome__score": [78]}, "invalid_field", "outcome.score"),
    ({"learner__identity_document": "11010519491231002X"}, "invalid_field", "learner.identity_document"),
    ({"learner__identity_document__type": "ID_CARD"}, "invalid_field", "learner.identity_document.type"),
    ({"learner__identity_document__type": "110105194912310021"}, "invalid_field",
     "learner.identity_document.type"),
    ({"learner__identity_document__type": _DELETE}, "invalid_field", "learner.identity_document.type"),
    ({"learner__identity_document__number": 110105194912310021}, "invalid_field",
     "learner.identity_document.number"),
    ({"learner__full_name": ["张伟"]}, "invalid_field", "learner.full_name"),
    ({"learner__phone": 8613800138000}, "invalid_field", "learner.phone"),
]


def _bad(parse: Parser, example: dict[str, Any], changes: dict[str, Any]) -> BadInput:
    value = json.dumps(_with(example, **changes), ensure_ascii=False).encode()
    with pytest.raises(BadInput) as caught:
        parse(value)
    return caught.value


@pytest.mark.parametrize(("changes", "code", "path"), UNION_CASES)
def test_union_bad_input(changes: dict[str, Any], code: str, path: str) -> None:
    error = _bad(union.parse, UNION_EXAMPLE, changes)
    assert (error.code, str(error)) == (code, error.reason)
    assert f"field {path} " in error.reason or f"{path} is " in error.reason
    _assert_no_personal_value(error.reason)


@pytest.mark.parametrize(("changes", "code", "path"), OU_CASES)
def test_ou_bad_input(changes: dict[str, Any], code: str, path: str) -> None:
    error = _bad(ou.parse, OU_EXAMPLE, changes)
    assert error.code == code
    assert f"field {path} " in error.reason or f"{path} is " in error.reason
    _assert_no_personal_value(error.reason)


def test_reasons_name_the_platform_field_and_what_was_expected_but_no_value() -> None:
    # CONTRACT §2: a reason never repeats a value from the message, not even the event id; the dead
    # letter's topic, partition and offset say which message it was.
    error = _bad(union.parse, UNION_EXAMPLE, {"member__memberNo": _DELETE})
    assert error.reason == (
        "union message: field member.memberNo is missing or empty; "
        "expected the member's account number (a non-empty string)."
    )
    error = _bad(ou.parse, OU_EXAMPLE, {"event_type": "enrolment.updated"})
    assert error.reason == (
        "ou message: field event_type has an unknown value; "
        "expected one of enrolment.created, enrolment.cancelled, course.completed."
    )


@pytest.mark.parametrize(
    "event_type", ["COURSE_PAUSE", "course_complete", "11010519491231002X", "E12345678", "13800138000", "张伟"]
)
def test_an_unknown_value_is_never_echoed(event_type: str) -> None:
    error = _bad(union.parse, UNION_EXAMPLE, {"eventType": event_type})
    assert error.code == "unknown_event_type"
    assert event_type not in error.reason
    assert "field eventType has an unknown value; expected one of COURSE_ENROLL" in error.reason


@pytest.mark.parametrize(
    "event_id", ["u-7f3c2a10-0001", "110105194912310021", "11010519491231002x", "13800138000", "0086138001380"]
)
def test_the_event_id_is_never_echoed(event_id: str) -> None:
    error = _bad(union.parse, UNION_EXAMPLE, {"msgId": event_id, "course": _DELETE})
    assert error.reason.startswith("union message: field course.courseCode is missing")
    assert event_id not in error.reason
    error = _bad(ou.parse, OU_EXAMPLE, {"event_id": event_id, "event_type": "enrolment.updated"})
    assert error.reason.startswith("ou message: field event_type has an unknown value")
    assert event_id not in error.reason


def _assert_no_personal_value(reason: str) -> None:
    for value in PERSONAL:
        assert value not in reason, f"reason leaks a personal value: {reason}"


# --- properties ----------------------------------------------------------------------------------

_PARSERS = st.sampled_from([union.parse, ou.parse])

_json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), st.sampled_from(PERSONAL),
)
_json = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
_PATHS = sorted({
    *("msgId eventType occurTime member member__memberNo member__idCardNo member__name member__mobile course "
      "course__courseCode course__studyHours result result__passed result__score").split(),
    *("event_id event_type occurred_at learner learner__student_no learner__identity_document "
      "learner__identity_document__type learner__identity_document__number learner__full_name "
      "learner__phone course__course_id course__credits course__contact_hours outcome outcome__status "
      "outcome__score").split(),
})
_TOP_KEYS = st.sampled_from(sorted({p.split("__")[0] for p in _PATHS}))
_VALID_VALUES = st.sampled_from(
    ["COURSE_ENROLL", "COURSE_WITHDRAW", "enrolment.created", "course.completed", "2024-04-26 09:30:00",
     1714095000000, 24, 0, "FAILED", "PASSPORT", "E12345678", "110105491231002", "+86 138-0013-8000", ""]
)


def _mutate(example: dict[str, Any], changes: list[tuple[str, Any]]) -> dict[str, Any]:
    message = copy.deepcopy(example)
    for dotted, value in changes:
        *parents, leaf = dotted.split("__")
        node: Any = message
        for key in parents:
            if not isinstance(node, dict) or not isinstance(node.get(key), dict):
                break
            node = node[key]
        else:
            if value is _DELETE:
                node.pop(leaf, None)
            else:
                node[leaf] = value
    return message


_mutations = st.lists(
    st.tuples(st.sampled_from(_PATHS), st.one_of(st.just(_DELETE), _VALID_VALUES, _json)), max_size=4
)


def _parse_or_bad_input(parse: Parser, value: bytes) -> CanonicalEvent | BadInput:
    try:
        event = parse(value)
    except BadInput as error:
        assert error.code in {"not_utf8", "not_json", "not_object", "missing_field", "invalid_field",
                              "unknown_event_type", "invalid_time", "invalid_text", "field_too_long"}
        _assert_no_personal_value(error.reason)
        return error
    assert isinstance(event, CanonicalEvent)
    assert event.occurred_at.utcoffset().total_seconds() == 0
    assert (event.outcome is not None) == (event.kind is EventKind.COMPLETED)
    return event


@settings(max_examples=300, deadline=None)
@given(parse=_PARSERS, value=st.binary(max_size=200))
def test_arbitrary_bytes_give_an_event_or_bad_input(parse: Parser, value: bytes) -> None:
    _parse_or_bad_input(parse, value)


@settings(max_examples=300, deadline=None)
@given(parse=_PARSERS, message=st.dictionaries(_TOP_KEYS | st.text(), _json, max_size=8))
def test_arbitrary_json_objects_give_an_event_or_bad_input(parse: Parser, message: dict[str, Any]) -> None:
    _parse_or_bad_input(parse, json.dumps(message).encode())


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(example=st.sampled_from([(union.parse, UNION_EXAMPLE), (ou.parse, OU_EXAMPLE)]), changes=_mutations)
def test_mutated_examples_give_an_event_or_bad_input(
    example: tuple[Parser, dict[str, Any]], changes: list[tuple[str, Any]]
) -> None:
    parse, base = example
    _parse_or_bad_input(parse, json.dumps(_mutate(base, changes), ensure_ascii=False).encode())
