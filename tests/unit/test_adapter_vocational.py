"""The vocational platform's adapter: xAPI statements to canonical events, or BadInput (CONTRACT §1)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import union, vocational
from adapters._fields import KeyPath
from bridge.core.events import CanonicalEvent, DocumentProblem, DocumentType, EventKind, IdentityDocument, Outcome
from bridge.errors import BadInput
from tests.hostile import (
    CONTROL_CHARACTERS,
    DEPTH,
    LONE_SURROGATES,
    OVERLONG_ID_LENGTHS,
    RAW_NUMBERS,
    MiB,
    encode,
    is_printable_sentence,
    long_text,
    repeated_part,
)
from tests.unit.test_adapters import PERSONAL, UNION_EXAMPLE

XAPI = "https://vocational.example.cn/xapi/"
ADL = "http://adlnet.gov/expapi/verbs/"
UNREGISTERED = "http://id.tincanapi.com/verb/unregistered"

Path = tuple[str, ...]
ID: Path = ("id",)
TIMESTAMP: Path = ("timestamp",)
ACCOUNT: Path = ("actor", "account", "name")
NAME: Path = ("actor", "name")
VERB: Path = ("verb", "id")
OBJECT_ID: Path = ("object", "id")
EXTENSIONS: Path = ("object", "definition", "extensions")
HOURS: Path = (*EXTENSIONS, XAPI + "study-hours")
RESIDENT_ID: Path = ("context", "extensions", XAPI + "resident-id")
MOBILE: Path = ("context", "extensions", XAPI + "mobile")
SUCCESS: Path = ("result", "success")
SCALED: Path = ("result", "score", "scaled")

EXAMPLE: dict[str, Any] = {
    "id": "6690e6c9-3ef0-4ed3-8b37-7f3964730bee",
    "timestamp": "2024-04-26T10:15:00+08:00",
    "actor": {
        "objectType": "Agent",
        "name": "张伟",
        "account": {"homePage": "https://vocational.example.cn", "name": "ZJ330100778899"},
    },
    "verb": {"id": "http://adlnet.gov/expapi/verbs/passed", "display": {"zh-CN": "通过"}},
    "object": {
        "objectType": "Activity",
        "id": "https://vocational.example.cn/courses/VOC-EL-3301",
        "definition": {
            "name": {"zh-CN": "电工基础"},
            "extensions": {"https://vocational.example.cn/xapi/study-hours": 32},
        },
    },
    "result": {"score": {"scaled": 0.92}, "success": True, "completion": True},
    "context": {
        "extensions": {
            "https://vocational.example.cn/xapi/resident-id": "11010519491231002X",
            "https://vocational.example.cn/xapi/mobile": "+86 138 0013 8000",
        }
    },
}
# The example's values: none may reach a reason (CONTRACT §2), personal or not.
EXAMPLE_VALUES = [
    *PERSONAL, "+86 138 0013 8000", "6690e6c9-3ef0-4ed3-8b37-7f3964730bee", "ZJ330100778899", "VOC-EL-3301",
    "vocational.example.cn/courses",
]
RESIDENT_DOCUMENT = IdentityDocument(type=DocumentType.RESIDENT_ID, number="11010519491231002X")
CODES = {"too_large", "not_utf8", "not_json", "not_object", "missing_field", "invalid_field", "invalid_time",
         "unknown_event_type", "invalid_text", "field_too_long", "contradictory_result"}

_DELETE = object()


def _statement(changes: dict[Path, Any] | None = None, **kw: Any) -> dict[str, Any]:
    """A deep copy of the example with changes by key path (``_DELETE`` removes; parents are made)."""
    message = copy.deepcopy(EXAMPLE)
    every: dict[Path, Any] = {**(changes or {}), **{(k,): v for k, v in kw.items()}}
    for path, value in every.items():
        node = message
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        if value is _DELETE:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value
    return message


def _parse(changes: dict[Path, Any] | None = None, **kw: Any) -> CanonicalEvent:
    return vocational.parse(encode(_statement(changes, **kw)))


def _bad_value(value: bytes, needles: tuple[str, ...] = ()) -> BadInput:
    with pytest.raises(BadInput) as caught:
        vocational.parse(value)
    error = caught.value
    assert error.code in CODES
    assert str(error) == error.reason
    assert error.reason.startswith("vocational message")
    assert error.reason.endswith(".")
    assert is_printable_sentence(error.reason)
    for value_ in EXAMPLE_VALUES:
        assert value_ not in error.reason, f"reason repeats a value of the message: {error.reason}"
    assert repeated_part(error.reason, needles) is None, error.reason
    return error


def _bad(changes: dict[Path, Any] | None = None, **kw: Any) -> BadInput:
    statement = _statement(changes, **kw)
    needles = tuple(v for v in (changes or {}).values() if isinstance(v, str))
    return _bad_value(encode(statement), needles)


# --- the contract's example ----------------------------------------------------------------------


def test_the_contract_example() -> None:
    event = vocational.parse(encode(EXAMPLE))
    assert event == CanonicalEvent(
        platform="vocational",
        event_id="6690e6c9-3ef0-4ed3-8b37-7f3964730bee",
        kind=EventKind.COMPLETED,
        occurred_at=datetime(2024, 4, 26, 2, 15, tzinfo=UTC),
        account="ZJ330100778899",
        course_id="VOC-EL-3301",
        hours=32.0,
        platform_credits=None,
        outcome=Outcome(passed=True, score=92.0),
        person=event.person,
    )
    assert event.person.document == RESIDENT_DOCUMENT
    assert event.person.document_problem is None
    assert (event.person.name_key, event.person.mobile_key) == ("张伟", "13800138000")
    # Normalised exactly as for the other platforms: the union example is the same person.
    assert event.person == union.parse(encode(UNION_EXAMPLE)).person


def test_platform_is_a_plain_string() -> None:
    assert vocational.PLATFORM == "vocational" and type(vocational.PLATFORM) is str


def test_account_home_page_and_decorations_are_not_required() -> None:
    statement = _statement({("actor", "account", "homePage"): _DELETE, ("actor", "objectType"): _DELETE,
                            ("verb", "display"): _DELETE, ("object", "objectType"): _DELETE,
                            ("object", "definition", "name"): _DELETE})
    assert vocational.parse(encode(statement)).account == "ZJ330100778899"


# --- verbs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("verb", "kind", "outcome"),
    [
        (ADL + "registered", EventKind.ENROLLED, None),
        (ADL + "passed", EventKind.COMPLETED, Outcome(passed=True, score=92.0)),
        (ADL + "failed", EventKind.COMPLETED, Outcome(passed=False, score=92.0)),
        (ADL + "completed", EventKind.COMPLETED, Outcome(passed=True, score=92.0)),
        (UNREGISTERED, EventKind.WITHDRAWN, None),
    ],
)
def test_verbs(verb: str, kind: EventKind, outcome: Outcome | None) -> None:
    success = _DELETE if verb.endswith("failed") else True
    event = _parse({VERB: verb, SUCCESS: success})
    assert (event.kind, event.outcome) == (kind, outcome)


@pytest.mark.parametrize("success", [True, False])
def test_completed_takes_pass_or_fail_from_result_success(success: bool) -> None:
    assert _parse({VERB: ADL + "completed", SUCCESS: success}).outcome == Outcome(passed=success, score=92.0)


@pytest.mark.parametrize(("verb", "passed"), [(ADL + "passed", True), (ADL + "failed", False)])
@pytest.mark.parametrize("result", [_DELETE, None, {}, {"success": None}, {"completion": True}])
def test_passed_and_failed_need_no_result(verb: str, passed: bool, result: Any) -> None:
    assert _parse({VERB: verb}, result=result).outcome == Outcome(passed=passed)


@pytest.mark.parametrize("verb", [ADL + "registered", UNREGISTERED])
@pytest.mark.parametrize("result", [_DELETE, "garbage", {"success": "yes", "score": {"scaled": 7}}])
def test_result_is_ignored_on_enrolment_and_withdrawal(verb: str, result: Any) -> None:
    assert _parse({VERB: verb}, result=result).outcome is None


@pytest.mark.parametrize(("verb", "success"), [(ADL + "passed", False), (ADL + "failed", True)])
def test_a_result_that_contradicts_the_verb_is_bad_input(verb: str, success: bool) -> None:
    error = _bad({VERB: verb, SUCCESS: success})
    assert error.code == "contradictory_result"
    assert "field result.success contradicts the verb" in error.reason


@pytest.mark.parametrize(
    "verb",
    [ADL + "attempted", ADL + "experienced", "https://adlnet.gov/expapi/verbs/passed", ADL + "Passed",
     ADL + "passed/", "passed", "http://id.tincanapi.com/verb/registered", "11010519491231002X", "张伟"],
)
def test_an_unknown_verb_is_bad_input_and_never_echoed(verb: str) -> None:
    # The reason lists the contract's verbs (which share long runs with some unknown ones) and nothing else.
    error = _bad_value(encode(_statement({VERB: verb})))
    assert error.code == "unknown_event_type"
    known = [ADL + v for v in ("registered", "passed", "failed", "completed")] + [UNREGISTERED]
    expected = f"expected one of {', '.join(known)}."
    assert error.reason == f"vocational message: field verb.id has an unknown value; {expected}"


# --- timestamps ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "utc"),
    [
        ("2024-04-26T10:15:00+08:00", datetime(2024, 4, 26, 2, 15, tzinfo=UTC)),
        ("2024-04-26T02:15:00Z", datetime(2024, 4, 26, 2, 15, tzinfo=UTC)),
        ("2024-04-25T21:15:00-05:00", datetime(2024, 4, 26, 2, 15, tzinfo=UTC)),
        ("2024-01-01T03:00:00+08:00", datetime(2023, 12, 31, 19, 0, tzinfo=UTC)),  # crosses a year
        ("2024-04-26T10:15:00.123+08:00", datetime(2024, 4, 26, 2, 15, 0, 123000, tzinfo=UTC)),
        ("2024-04-26T10:15:00.123456789Z", datetime(2024, 4, 26, 10, 15, 0, 123456, tzinfo=UTC)),
        ("2024-04-26T10:15+0800", datetime(2024, 4, 26, 2, 15, tzinfo=UTC)),
        ("2024-04-26T10:15:00+08", datetime(2024, 4, 26, 2, 15, tzinfo=UTC)),
        ("2024-04-26T10:15:00+05:45", datetime(2024, 4, 26, 4, 30, tzinfo=UTC)),
        (" 2024-04-26T02:15:00-00:00 ", datetime(2024, 4, 26, 2, 15, tzinfo=UTC)),
    ],
)
def test_timestamps_are_converted_to_utc(timestamp: str, utc: datetime) -> None:
    occurred_at = _parse(timestamp=timestamp).occurred_at
    assert occurred_at == utc
    assert occurred_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("timestamp", ["2024-04-26T10:15:00", "2024-04-26T10:15:00.500", "2024-04-26T10:15"])
def test_a_timestamp_without_offset_is_bad_input(timestamp: str) -> None:
    error = _bad(timestamp=timestamp)
    assert error.code == "invalid_time"
    assert "field timestamp has no UTC offset" in error.reason


@pytest.mark.parametrize(
    ("timestamp", "code"),
    [
        (_DELETE, "missing_field"), (None, "missing_field"), ("", "missing_field"), ("  ", "missing_field"),
        (1714097700, "invalid_time"), (1714097700000, "invalid_time"), (["2024-04-26T10:15:00Z"], "invalid_time"),
        ("2024-04-26", "invalid_time"), ("2024-04-26 10:15:00+08:00", "invalid_time"),
        ("2024-4-26T10:15:00+08:00", "invalid_time"), ("２０２４-04-26T10:15:00+08:00", "invalid_time"),
        ("2024-04-26T10:15:00+08:00:00", "invalid_time"), ("2024-04-26T10:15:00 +08:00", "invalid_time"),
        ("2024-W17-5T10:15:00Z", "invalid_time"), ("Fri, 26 Apr 2024 10:15:00 +0800", "invalid_time"),
        ("2024-02-30T10:15:00Z", "invalid_time"), ("2024-04-26T24:00:00Z", "invalid_time"),
        ("2024-04-26T23:59:60Z", "invalid_time"), ("2024-04-26T10:15:00+24:00", "invalid_time"),
        ("2024-04-26T10:15:00+08:60", "invalid_time"), ("1970-01-01T00:00:00Z", "invalid_time"),
        ("2100-01-01T00:00:00Z", "invalid_time"), ("0001-01-01T00:00:00+08:00", "invalid_time"),
        ("9999-12-31T23:59:59-05:00", "invalid_time"), ("2024-04-26T10:15:00.1234567890Z", "invalid_time"),
    ],
)
def test_bad_timestamps(timestamp: Any, code: str) -> None:
    error = _bad(timestamp=timestamp)
    assert error.code == code
    assert "field timestamp " in error.reason


def test_the_plausibility_window_edges() -> None:
    assert _parse(timestamp="2000-01-01T08:00:00+08:00").occurred_at == datetime(2000, 1, 1, tzinfo=UTC)
    assert _bad(timestamp="2000-01-01T07:59:59+08:00").code == "invalid_time"
    assert _parse(timestamp="2099-12-31T18:59:59-05:00").occurred_at == datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC)


# --- course id, hours and score -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("iri", "course_id"),
    [
        ("https://vocational.example.cn/courses/VOC-EL-3301", "VOC-EL-3301"),
        ("https://vocational.example.cn/courses/VOC-EL-3301?lang=zh-CN#unit-2", "VOC-EL-3301"),
        ("http://vocational.example.cn/VOC-EL-3301", "VOC-EL-3301"),
        ("https://vocational.example.cn/课程/电工基础", "电工基础"),
        ("https://vocational.example.cn/courses/VOC%2DEL", "VOC%2DEL"),  # as written, not decoded
        ("urn:vocational:course:VOC-EL-3301", "vocational:course:VOC-EL-3301"),  # one rootless segment
        ("  https://vocational.example.cn/courses/VOC-EL-3301 ", "VOC-EL-3301"),
        ("https://vocational.example.cn/" + "c" * 128, "c" * 128),
    ],
)
def test_course_id_is_the_last_path_segment(iri: str, course_id: str) -> None:
    assert _parse({OBJECT_ID: iri}).course_id == course_id


@pytest.mark.parametrize(
    ("iri", "code"),
    [
        (_DELETE, "missing_field"), ("", "missing_field"), (None, "missing_field"), (3301, "invalid_field"),
        ("https://vocational.example.cn/courses/", "invalid_field"),
        ("https://vocational.example.cn", "invalid_field"),
        ("https://vocational.example.cn?course=VOC-EL-3301", "invalid_field"),
        ("https://vocational.example.cn/courses/..", "invalid_field"),
        ("https://vocational.example.cn/courses/.", "invalid_field"),
        ("VOC-EL-3301", "invalid_field"),
        ("/courses/VOC-EL-3301", "invalid_field"),
        ("https://vocational.example.cn/courses/" + "c" * 129, "field_too_long"),
        ("https://vocational.example.cn/courses/VOC\u200b-EL", "invalid_text"),
        ("https://vocational.example.cn/courses/VOC\x01-EL", "invalid_text"),
        ("https://vocational.example.cn/cour\nses/VOC-EL", "invalid_text"),
    ],
)
def test_bad_activity_ids(iri: Any, code: str) -> None:
    error = _bad({OBJECT_ID: iri})
    assert error.code == code
    assert "field object.id " in error.reason


@pytest.mark.parametrize(("hours", "expected"), [(32, 32.0), (0, 0.0), (7.5, 7.5), (1e6, 1e6)])
def test_study_hours(hours: float, expected: float) -> None:
    assert _parse({HOURS: hours}).hours == expected


@pytest.mark.parametrize(
    ("changes", "code", "path"),
    [
        ({HOURS: _DELETE}, "missing_field", None),
        ({HOURS: None}, "missing_field", None),
        ({HOURS: ""}, "missing_field", None),
        ({EXTENSIONS: _DELETE}, "missing_field", None),
        ({EXTENSIONS: {"study-hours": 32}}, "missing_field", None),  # the key is the full IRI
        ({EXTENSIONS: {"https://vocational.example.cn/xapi/study_hours": 32}}, "missing_field", None),
        ({("object", "definition"): _DELETE}, "missing_field", None),
        ({HOURS: -1}, "invalid_field", None),
        ({HOURS: "32"}, "invalid_field", None),
        ({HOURS: True}, "invalid_field", None),
        ({HOURS: [32]}, "invalid_field", None),
        ({HOURS: {"value": 32}}, "invalid_field", None),
        ({HOURS: 10**400}, "invalid_field", None),
        ({EXTENSIONS: [32]}, "invalid_field", "object.definition.extensions"),
        ({("object", "definition"): "电工基础"}, "invalid_field", "object.definition"),
    ],
)
def test_bad_study_hours(changes: dict[Path, Any], code: str, path: str | None) -> None:
    error = _bad(changes)
    assert error.code == code
    shown = path or 'object.definition.extensions["https://vocational.example.cn/xapi/study-hours"]'
    assert f"field {shown} " in error.reason


@pytest.mark.parametrize(
    ("scaled", "score"),
    [(0.92, 92.0), (0.1, 10.0), (0.29, 29.0), (0.57, 57.0), (0.335, 33.5), (0.865, 86.5), (0.07, 7.0),
     (0.123456, 12.3456), (0, 0.0), (0.0, 0.0), (-0.0, 0.0), (1, 100.0), (1.0, 100.0), (1e-7, 1e-5)],
)
def test_scaled_score_times_100_without_float_noise(scaled: float, score: float) -> None:
    outcome = _parse({SCALED: scaled}).outcome
    assert outcome is not None
    assert outcome.score == score
    assert repr(outcome.score) == repr(score)


@pytest.mark.parametrize("score", [_DELETE, None, {}, {"raw": 92, "min": 0, "max": 100}, {"scaled": None},
                                   {"scaled": ""}])
def test_score_is_optional(score: Any) -> None:
    assert _parse({("result", "score"): score}).outcome == Outcome(passed=True, score=None)


@pytest.mark.parametrize(
    "scaled", [-0.01, 1.01, 92, -1, "0.92", True, [0.92], {"value": 0.92}, 10**400],
)
def test_a_scaled_score_outside_0_to_1_is_bad_input(scaled: Any) -> None:
    error = _bad({SCALED: scaled})
    assert error.code == "invalid_field"
    assert "field result.score.scaled " in error.reason


# --- required fields -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "code", "path"),
    [
        ({ID: _DELETE}, "missing_field", "id"),
        ({ID: ""}, "missing_field", "id"),
        ({ID: 17}, "invalid_field", "id"),
        ({("actor",): _DELETE}, "missing_field", "actor.account.name"),
        ({("actor", "account"): _DELETE}, "missing_field", "actor.account.name"),
        ({ACCOUNT: _DELETE}, "missing_field", "actor.account.name"),
        ({ACCOUNT: "  "}, "missing_field", "actor.account.name"),
        ({ACCOUNT: 330100778899}, "invalid_field", "actor.account.name"),
        ({("actor",): "ZJ330100778899"}, "invalid_field", "actor"),
        ({("actor", "account"): ["ZJ330100778899"]}, "invalid_field", "actor.account"),
        ({("verb",): _DELETE}, "missing_field", "verb.id"),
        ({VERB: _DELETE}, "missing_field", "verb.id"),
        ({VERB: None}, "missing_field", "verb.id"),
        ({VERB: {"id": ADL + "passed"}}, "invalid_field", "verb.id"),
        ({("verb",): ADL + "passed"}, "invalid_field", "verb"),
        ({("object",): _DELETE}, "missing_field", "object.id"),
        ({OBJECT_ID: _DELETE}, "missing_field", "object.id"),
        ({("object",): []}, "invalid_field", "object"),
        ({VERB: ADL + "completed", SUCCESS: _DELETE}, "missing_field", "result.success"),
        ({VERB: ADL + "completed", ("result",): _DELETE}, "missing_field", "result.success"),
        ({VERB: ADL + "completed", SUCCESS: None}, "missing_field", "result.success"),
        ({VERB: ADL + "completed", SUCCESS: "true"}, "invalid_field", "result.success"),
        ({VERB: ADL + "completed", SUCCESS: 1}, "invalid_field", "result.success"),
        ({VERB: ADL + "completed", ("result",): True}, "invalid_field", "result"),
        ({SUCCESS: "true"}, "invalid_field", "result.success"),
        ({SUCCESS: 0}, "invalid_field", "result.success"),
        ({("result",): "passed"}, "invalid_field", "result"),
        ({NAME: {"zh-CN": "张伟"}}, "invalid_field", "actor.name"),
        ({NAME: "王" * 65}, "field_too_long", "actor.name"),
        ({RESIDENT_ID: 110105194912310021}, "invalid_field", 'context.extensions["' + XAPI + 'resident-id"]'),
        ({MOBILE: 13800138000}, "invalid_field", 'context.extensions["' + XAPI + 'mobile"]'),
        ({("context", "extensions"): "11010519491231002X"}, "invalid_field", "context.extensions"),
        ({("context",): []}, "invalid_field", "context"),
    ],
)
def test_bad_input(changes: dict[Path, Any], code: str, path: str) -> None:
    error = _bad(changes)
    assert error.code == code
    assert f"field {path} " in error.reason


def test_reasons_name_the_field_and_what_was_expected_but_no_value() -> None:
    assert _bad({ACCOUNT: _DELETE}).reason == (
        "vocational message: field actor.account.name is missing or empty; "
        "expected the learner's account name (a non-empty string)."
    )
    assert _bad({HOURS: _DELETE}).reason == (
        'vocational message: field object.definition.extensions["https://vocational.example.cn/xapi/study-hours"]'
        " is missing; expected the course's study hours (a number >= 0)."
    )
    assert _bad({VERB: ADL + "failed", SUCCESS: True}).reason == (
        "vocational message: field result.success contradicts the verb failed (verb.id); "
        "expected false or no result.success with that verb."
    )


@pytest.mark.parametrize("event_id", ["6690e6c9-3ef0-4ed3-8b37-7f3964730bee", "11010519491231002X", "13800138000"])
def test_the_event_id_is_never_echoed(event_id: str) -> None:
    for changes in ({ID: event_id, HOURS: _DELETE}, {ID: event_id, VERB: "x"}, {ID: event_id, SCALED: 2}):
        assert event_id not in _bad(changes).reason


# --- identity evidence ---------------------------------------------------------------------------


@pytest.mark.parametrize("context", [_DELETE, None, {}, {"extensions": None}, {"extensions": {}},
                                     {"extensions": {XAPI + "resident-id": "", XAPI + "mobile": " "}}])
def test_identity_evidence_is_optional(context: Any) -> None:
    event = _parse({("context",): context, NAME: _DELETE})
    assert event.person.document is None and event.person.document_problem is None
    assert event.person.name_key is None and event.person.mobile_key is None


def test_identity_evidence_is_normalised_as_for_the_other_platforms() -> None:
    event = _parse({RESIDENT_ID: " 110105491231002 ", MOBILE: "0086 138-0013-8000", NAME: "张　伟"})
    assert event.person.document == RESIDENT_DOCUMENT
    assert (event.person.name_key, event.person.mobile_key) == ("张伟", "13800138000")
    assert _parse({RESIDENT_ID: "11010519491231002x"}).person.document == RESIDENT_DOCUMENT
    assert _parse({NAME: "王" * 64}).person.name_key == "王" * 64


@pytest.mark.parametrize(("number", "problem"), [("110105194912310021", DocumentProblem.BAD_CHECKSUM),
                                                 ("1101051949", DocumentProblem.BAD_LENGTH),
                                                 ("1" * 500, DocumentProblem.BAD_LENGTH)])
def test_an_invalid_resident_id_is_a_data_quality_problem_not_bad_input(number: str, problem: DocumentProblem) -> None:
    event = _parse({RESIDENT_ID: number})
    assert (event.person.document, event.person.document_problem) == (None, problem)


def test_an_unusable_mobile_links_nothing() -> None:
    assert _parse({MOBILE: "+1 415 555 0100"}).person.mobile_key is None


def test_key_paths_are_written_with_brackets_for_keys_that_hold_dots() -> None:
    assert KeyPath("a", "b.c", "d") == 'a["b.c"].d'
    assert KeyPath("context", "extensions").keys == ("context", "extensions")
    assert vocational.STUDY_HOURS.keys == HOURS


# --- hostile input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (b"\xff\xfe{}", "not_utf8"), (b'{"id": "\xc3\x28"}', "not_utf8"), (b"", "not_json"), (b"{", "not_json"),
        (b'{"id": NaN}', "not_json"), (b"[]", "not_object"), (b'"statement"', "not_object"), (b"42", "not_object"),
        (b"null", "not_object"), (b"[" + encode(EXAMPLE) + b"]", "not_object"),
        (encode(EXAMPLE) + b" trailing", "not_json"), (b"[" * DEPTH + b"1" + b"]" * DEPTH, "not_json"),
        (b'{"a":' * DEPTH + b"1" + b"}" * DEPTH, "not_json"),
    ],
)
def test_undecodable_messages(value: bytes, code: str) -> None:
    assert _bad_value(value).code == code


def test_a_null_value_is_bad_input() -> None:
    assert _bad_value(None).code == "not_json"  # type: ignore[arg-type]


@pytest.mark.parametrize("path", [HOURS, SCALED])
@pytest.mark.parametrize("raw", [*RAW_NUMBERS, "[" * DEPTH + "1" + "]" * DEPTH])
def test_hostile_numbers(path: Path, raw: str) -> None:
    value = encode(_statement({path: "@@raw@@"}), {"@@raw@@": raw})
    if path == HOURS and raw == "1" + "0" * 30:  # huge, but a finite number of hours
        assert vocational.parse(value).hours == 1e30
        return
    assert _bad_value(value).code in {"not_json", "invalid_field"}


def test_the_size_limit() -> None:
    padded = _statement({("object", "definition", "name", "zh-CN"): ""})
    pad = MiB - len(encode(padded))
    padded["object"]["definition"]["name"]["zh-CN"] = long_text("P", pad)
    assert len(encode(padded)) == MiB
    assert vocational.parse(encode(padded)).course_id == "VOC-EL-3301"
    padded["object"]["definition"]["name"]["zh-CN"] += "P"
    assert _bad_value(encode(padded)).code == "too_large"


@pytest.mark.parametrize("path", [ID, ACCOUNT, OBJECT_ID, NAME, RESIDENT_ID, MOBILE, ("object", "definition", "name",
                                  "zh-CN"), ("verb", "display", "zh-CN")])
@pytest.mark.parametrize("bad", ["\x00", *LONE_SURROGATES])
def test_nul_and_unpaired_surrogates_anywhere(path: Path, bad: str) -> None:
    statement = _statement({path: f"ZJ3301{bad}778899"})
    assert _bad_value(encode(statement)).code == "invalid_text"


@pytest.mark.parametrize("bad", ["\x00", *LONE_SURROGATES])
def test_nul_and_unpaired_surrogates_in_an_object_key(bad: str) -> None:
    statement = _statement({(*EXTENSIONS, f"{XAPI}x{bad}"): 1})
    assert _bad_value(encode(statement)).code == "invalid_text"


@pytest.mark.parametrize("path", [ID, ACCOUNT])
@pytest.mark.parametrize("control", [c for c in CONTROL_CHARACTERS if c != "\x00"])
def test_control_characters_inside_ids(path: Path, control: str) -> None:
    error = _bad({path: f"ZJ3301{control}778899"})
    assert error.code == "invalid_text"


@pytest.mark.parametrize("path", [ID, ACCOUNT, OBJECT_ID])
@pytest.mark.parametrize("length", OVERLONG_ID_LENGTHS)
def test_over_long_ids(path: Path, length: int) -> None:
    value = long_text("ZJ", length)
    if path == OBJECT_ID:
        value = "https://vocational.example.cn/courses/" + value
    error = _bad({path: value})
    assert error.code == "field_too_long"
    assert repeated_part(error.reason, [value]) is None


@pytest.mark.parametrize("path", [ID, ACCOUNT])
def test_ids_of_exactly_128_characters(path: Path) -> None:
    value = long_text("号", 128)
    event = _parse({path: value})
    assert value in (event.event_id, event.account)


# --- properties ----------------------------------------------------------------------------------

_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
                  st.sampled_from([*PERSONAL, ADL + "completed", UNREGISTERED, "2024-04-26T10:15:00Z"]))
_json = st.recursive(_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                        max_size=3), max_leaves=8)
_PATHS = [ID, TIMESTAMP, ("actor",), ("actor", "account"), ACCOUNT, NAME, ("verb",), VERB, ("object",), OBJECT_ID,
          ("object", "definition"), EXTENSIONS, HOURS, ("result",), SUCCESS, ("result", "score"), SCALED,
          ("context",), ("context", "extensions"), RESIDENT_ID, MOBILE]
_VERBS = st.sampled_from([ADL + v for v in ("registered", "passed", "failed", "completed")] + [UNREGISTERED])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(verb=_VERBS, changes=st.dictionaries(st.sampled_from(_PATHS), st.just(_DELETE) | _json, max_size=4))
def test_mutated_statements_give_an_event_or_bad_input(verb: str, changes: dict[Path, Any]) -> None:
    statement = _statement({VERB: verb})
    for path, value in changes.items():
        statement = _statement_at(statement, path, value)
    try:
        event = vocational.parse(encode(statement))
    except BadInput as error:
        assert error.code in CODES
        assert all(v not in error.reason for v in PERSONAL)
        return
    assert event.occurred_at.utcoffset() == timedelta(0)
    assert (event.outcome is not None) == (event.kind is EventKind.COMPLETED)
    assert event.hours is not None and event.hours >= 0
    assert event.outcome is None or event.outcome.score is None or 0 <= event.outcome.score <= 100


def _statement_at(statement: dict[str, Any], path: Path, value: Any) -> dict[str, Any]:
    """``statement`` with ``path`` changed when its parents are objects (else unchanged)."""
    node: Any = statement
    for key in path[:-1]:
        if not isinstance(node, dict) or not isinstance(node.get(key), dict):
            return statement
        node = node[key]
    if not isinstance(node, dict):
        return statement
    if value is _DELETE:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return statement
