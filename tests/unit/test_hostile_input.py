"""Hostile input meets validation first (CONTRACT §1): every edge refuses bad text as BadInput.

The platform adapters and the operator-decision parser are the only places raw message text enters
the bridge. Whatever a message holds (unpaired surrogates, NUL and other control characters,
over-long ids, oversized or absurdly nested documents, wrong JSON types, huge numbers, NaN), the
result is a canonical event or a :class:`BadInput` with a stable code, and no reason repeats a value
from the message (CONTRACT §2). Nothing else may be the first to meet bad text: not the store's
driver, not the HMAC of the pseudonymiser, not a JSON or UTF-8 encoder.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import ou, union
from bridge.core.decisions import OperatorDecision, parse_decision
from bridge.core.events import CanonicalEvent, DocumentProblem
from bridge.core.normalise import MAX_MESSAGE_BYTES, is_printable
from bridge.errors import BadInput
from tests.unit.test_adapters import OU_EXAMPLE, PERSONAL, UNION_EXAMPLE

DECISION_EXAMPLE: dict[str, Any] = {
    "decision_id": "dc_5d41402abc4b2a76b9719d91",
    "review_id": "rv_7d793037a0760186574b0282",
    "action": "link",
    "account": {"platform": "union", "account": "GH2101000123"},
    "anchor": {"platform": "ou", "account": "2421101400123"},
    "decided_by": "operator-li",
    "decided_at": "2024-04-26T10:00:00+08:00",
    "note": "same person, checked by phone",
}

_DELETE = object()


@dataclass(frozen=True)
class Edge:
    """One place raw text enters: its parser, an ordinary message and where its fields are."""

    name: str
    parse: Callable[[bytes], Any]
    example: dict[str, Any]
    ids: tuple[str, ...]  # account numbers, event ids, course ids (and, for decisions, the other ids)
    id_limits: dict[str, int] = field(default_factory=dict)  # per-id limit when it is not 128
    name_field: str | None = None
    evidence: tuple[str, ...] = ()  # document number, mobile: unusable, never bad input, when long
    free_text: tuple[str, ...] = ()  # the decision's note: line breaks allowed

    def limit(self, path: str) -> int:
        return self.id_limits.get(path, 128)


UNION = Edge(
    "union", union.parse, UNION_EXAMPLE,
    ids=("msgId", "member.memberNo", "course.courseCode"),
    name_field="member.name",
    evidence=("member.idCardNo", "member.mobile"),
)
OU = Edge(
    "ou", ou.parse, OU_EXAMPLE,
    ids=("event_id", "learner.student_no", "course.course_id"),
    name_field="learner.full_name",
    evidence=("learner.identity_document.number", "learner.phone"),
)
DECISION = Edge(
    "decision", parse_decision, DECISION_EXAMPLE,
    ids=("decision_id", "review_id", "account.account", "anchor.account", "decided_by"),
    id_limits={"decision_id": 64, "review_id": 64},
    free_text=("note",),
)
ADAPTERS = [UNION, OU]
EDGES = [UNION, OU, DECISION]

# Values of the examples that must never show up in a reason, whatever the case changed.
_EXAMPLE_VALUES = [
    *PERSONAL, "u-7f3c2a10-0001", "GH2101000123", "ACFTU-SK-0012", "01HW3K9Q2M4T8V6X0Y1Z2A3B4C",
    "2421101400123", "NOU-08123", "dc_5d41402abc4b2a76b9719d91", "rv_7d793037a0760186574b0282",
    "operator-li", "same person",
]

_HIGH, _LOW = "\ud800", "\udfff"
_UNPAIRED = {
    "high": _HIGH, "low": _LOW, "high_inside": f"ab{_HIGH}cd", "low_inside": "ab\udc00cd",
    "reversed_pair": "\udc00\ud800", "high_at_end": f"GH2101000123{_HIGH}",
}
_NUL = {"nul": "\x00", "nul_inside": "GH21\x0001", "nul_at_end": "GH2101000123\x00"}
# Not printable (CONTRACT §1): controls (C0, DEL, C1), format, private-use and unassigned characters,
# line and paragraph separators. Each sits inside the value: at the edges, stripping removes the
# whitespace ones, as it always did.
_UNPRINTABLE = {
    "c0_control": "GH21\x0101", "escape": "GH21\x1b[31m01", "delete": "GH21\x7f01", "c1_next_line": "GH21\x8501",
    "zero_width_space": "GH21\u200b01", "right_to_left_override": "GH21\u202e01", "byte_order_mark": "GH21\ufeff01",
    "private_use": "GH21\ue00001", "unassigned": "GH21\u037801", "tag_character": "GH21\U000e007f01",
    "line_separator": "GH21\u202801", "tab_inside": "GH21\t01", "newline_inside": "GH21\n01",
}


# --- helpers -------------------------------------------------------------------------------------


def _with(example: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    message = copy.deepcopy(example)
    *parents, leaf = path.split(".")
    node = message
    for key in parents:
        node = node[key]
    if value is _DELETE:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return message


_FLOAT_OVERFLOW = "__FLOAT_OVERFLOW__"  # stands for the literal 1e400, which json.dumps cannot write


def _raw(message: Any) -> bytes:
    """JSON as a platform would send it; lone surrogates and NUL travel as \\u escapes (ASCII)."""
    return json.dumps(message).encode().replace(f'"{_FLOAT_OVERFLOW}"'.encode(), b"1e400")


def _bad(edge: Edge, value: bytes) -> BadInput:
    with pytest.raises(BadInput) as caught:
        edge.parse(value)
    error = caught.value
    _assert_safe_reason(error)
    return error


def _windows(text: str, width: int = 6) -> set[str]:
    """The ``width``-character substrings of ``text`` (its two ends for a huge one).

    Fragments under four characters are left out: they say nothing about an echo.
    """
    if len(text) > 2000:
        return _windows(text[:1000], width) | _windows(text[-1000:], width)
    if len(text) <= width:
        return {text} if len(text) >= 4 else set()
    return {text[i:i + width] for i in range(len(text) - width + 1)}


_UNPRINTABLE_RUN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u200b-\u200f\u2028-\u202e\ufeff]")


def _assert_no_echo(reason: str, value: Any) -> None:
    """No six characters in a row of ``value`` (nor of any printable run of it) appear in ``reason``."""
    if isinstance(value, str):
        texts = [value, *_UNPRINTABLE_RUN.split(value)]
    else:
        texts = [json.dumps(value)]
    for text in texts:
        for window in _windows(text):
            assert window not in reason, f"reason repeats {window!r} of the message: {reason}"


def _assert_safe_reason(error: BadInput) -> None:
    """Every reason is printable UTF-8 text that repeats none of the example's values."""
    assert str(error) == error.reason
    error.reason.encode("utf-8")
    assert error.reason.isprintable(), error.reason
    for value in _EXAMPLE_VALUES:
        assert value not in error.reason, f"reason leaks {value!r}: {error.reason}"


def _strings(value: Any) -> Iterator[str]:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            yield node
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)


def _get(result: Any, path: str) -> Any:
    """The parsed value behind a message path (the adapters rename fields)."""
    if isinstance(result, OperatorDecision):
        node: Any = result
        for key in path.split("."):
            node = getattr(node, key)
        return node
    return {
        "msgId": result.event_id, "event_id": result.event_id,
        "member.memberNo": result.account, "learner.student_no": result.account,
        "course.courseCode": result.course_id, "course.course_id": result.course_id,
    }[path]


# --- ordinary messages still parse exactly as before -----------------------------------------------


def test_ordinary_messages_parse_as_before() -> None:
    event = union.parse(json.dumps(UNION_EXAMPLE, ensure_ascii=False).encode())
    assert (event.event_id, event.account, event.course_id) == ("u-7f3c2a10-0001", "GH2101000123", "ACFTU-SK-0012")
    assert (event.person.name_key, event.person.mobile_key) == ("张伟", "13800138000")
    assert event.person.document is not None
    # The same message with every non-ASCII character escaped (\u5f20...) means the same.
    assert union.parse(json.dumps(UNION_EXAMPLE).encode()) == event
    other = ou.parse(json.dumps(OU_EXAMPLE).encode())
    assert (other.event_id, other.account, other.course_id) == ("01HW3K9Q2M4T8V6X0Y1Z2A3B4C", "2421101400123", "NOU-08123")
    decision = parse_decision(json.dumps(DECISION_EXAMPLE).encode())
    assert (decision.decision_id, decision.account.account, decision.anchor.account, decision.decided_by) == (
        "dc_5d41402abc4b2a76b9719d91", "GH2101000123", "2421101400123", "operator-li")


@pytest.mark.parametrize("edge", EDGES, ids=lambda e: e.name)
@pytest.mark.parametrize(
    "value",
    ["ＧＨ２１０１", "GH\u3000 2101", "GH\u00a02101", "账号-2101", "e\u0301-2101", "😀-2101",
     "\U00020000-2101"],
    ids=["full_width", "inner_ideographic_space", "inner_no_break_space", "cjk", "combining_mark",
         "emoji_astral", "cjk_extension_b"],
)
def test_printable_unicode_ids_are_accepted(edge: Edge, value: str) -> None:
    for path in edge.ids:
        assert _get(edge.parse(_raw(_with(edge.example, path, value))), path) == value


@pytest.mark.parametrize("edge", ADAPTERS, ids=lambda e: e.name)
def test_ids_are_stripped_as_before(edge: Edge) -> None:
    for path in edge.ids:
        for padded in (" A-1 ", "\u3000A-1\u3000", "\tA-1\n", "\x1cA-1\x85"):
            assert _get(edge.parse(_raw(_with(edge.example, path, padded))), path) == "A-1"


@pytest.mark.parametrize("edge", ADAPTERS, ids=lambda e: e.name)
def test_a_paired_surrogate_escape_is_an_ordinary_character(edge: Edge) -> None:
    raw = _raw(_with(edge.example, edge.ids[0], "id-😀"))
    assert b"\\ud83d\\ude00" in raw
    assert _get(edge.parse(raw), edge.ids[0]) == "id-😀"


def test_a_decision_note_may_hold_line_breaks_and_tabs() -> None:
    note = "checked by phone\r\nsame person:\tyes\n"
    assert parse_decision(_raw({**DECISION_EXAMPLE, "note": note})).note == note


# --- unpaired surrogates and NUL: anywhere in the document -----------------------------------------


def _text_fields(edge: Edge) -> tuple[str, ...]:
    return (*edge.ids, *((edge.name_field,) if edge.name_field else ()), *edge.evidence, *edge.free_text)


_TEXT_CASES = [(edge, path) for edge in EDGES for path in _text_fields(edge)]


@pytest.mark.parametrize(("edge", "path"), _TEXT_CASES, ids=[f"{e.name}-{p}" for e, p in _TEXT_CASES])
@pytest.mark.parametrize("value", [*_UNPAIRED.values(), *_NUL.values()], ids=[*_UNPAIRED, *_NUL])
def test_unpaired_surrogates_and_nul_in_a_field_are_invalid_text(edge: Edge, path: str, value: str) -> None:
    error = _bad(edge, _raw(_with(edge.example, path, value)))
    assert error.code == "invalid_text"
    _assert_no_echo(error.reason, value)


@pytest.mark.parametrize("edge", EDGES, ids=lambda e: e.name)
@pytest.mark.parametrize(
    "where",
    ["top_level_key", "nested_key", "extra_value", "deep_extra_value", "extra_key_nul", "event_type"],
)
@pytest.mark.parametrize("bad", [_HIGH, _LOW, "\x00"], ids=["high", "low", "nul"])
def test_bad_text_anywhere_is_invalid_text(edge: Edge, where: str, bad: str) -> None:
    message = copy.deepcopy(edge.example)
    nested = next(v for v in message.values() if isinstance(v, dict))
    if where == "top_level_key":
        message[f"k{bad}"] = 1
    elif where == "nested_key":
        nested[f"k{bad}ey"] = "v"
    elif where == "extra_value":
        message["extra"] = f"v{bad}"
    elif where == "deep_extra_value":
        deep: Any = [f"v{bad}"]
        for _ in range(200):  # 400 levels: within what the JSON decoder accepts
            deep = {"a": [deep]}
        message["extra"] = deep
    elif where == "extra_key_nul":
        message["extra"] = {f"{bad}": [1, {"x": None}]}
    else:
        message[{"union": "eventType", "ou": "event_type", "decision": "action"}[edge.name]] = f"x{bad}"
    error = _bad(edge, _raw(message))
    assert error.code == "invalid_text"


@pytest.mark.parametrize("edge", EDGES, ids=lambda e: e.name)
@pytest.mark.parametrize("escape", [b"\\uD800", b"\\uDbFf", b"\\udC00", b"\\u0000"])
def test_escapes_are_recognised_in_any_letter_case(edge: Edge, escape: bytes) -> None:
    raw = _raw(_with(edge.example, edge.ids[0], "id-PLACEHOLDER")).replace(b"PLACEHOLDER", escape)
    assert _bad(edge, raw).code == "invalid_text"


@pytest.mark.parametrize("edge", EDGES, ids=lambda e: e.name)
def test_an_escaped_backslash_before_u_is_not_an_escape(edge: Edge) -> None:
    value = "id\\ud800\\u0000"  # a literal backslash, then "ud800": ordinary printable text
    assert _get(edge.parse(_raw(_with(edge.example, edge.ids[0], value))), edge.ids[0]) == value


@pytest.mark.parametrize("edge", EDGES, ids=lambda e: e.name)
def test_surrogates_encoded_as_utf8_bytes_are_not_utf8(edge: Edge) -> None:
    raw = _raw(_with(edge.example, edge.ids[0], "id-PLACEHOLDER")).replace(b"PLACEHOLDER", b"\xed\xa0\x80")
    error = _bad(edge, raw)
    assert error.code == ("not_json" if edge is DECISION else "not_utf8")


# --- printable ids ---------------------------------------------------------------------------------

_ID_CASES = [(edge, path) for edge in EDGES for path in edge.ids]


@pytest.mark.parametrize(("edge", "path"), _ID_CASES, ids=[f"{e.name}-{p}" for e, p in _ID_CASES])
@pytest.mark.parametrize("value", list(_UNPRINTABLE.values()), ids=list(_UNPRINTABLE))
def test_unprintable_ids_are_invalid_text(edge: Edge, path: str, value: str) -> None:
    error = _bad(edge, _raw(_with(edge.example, path, value)))
    assert error.code == "invalid_text"
    assert path.split(".")[0] in error.reason
    _assert_no_echo(error.reason, value)


@pytest.mark.parametrize("value", ["\x01\x1b", "checked\x08", "a\x7f", "a\x9b31m", "\x0b", "\x0c"])
def test_control_characters_other_than_line_breaks_in_a_note_are_invalid_text(value: str) -> None:
    error = _bad(DECISION, _raw({**DECISION_EXAMPLE, "note": value}))
    assert error.code == "invalid_text"
    assert "note" in error.reason


@pytest.mark.parametrize("edge", ADAPTERS, ids=lambda e: e.name)
def test_names_and_evidence_are_not_held_to_the_printable_rule(edge: Edge) -> None:
    # Only ids are printable by contract; a stray control character in a name is hashed like any
    # other, and in a document number or phone it only makes the value unusable.
    event = edge.parse(_raw(_with(edge.example, edge.name_field, "张\x01伟")))
    assert event.person.name_key == "张\x01伟"
    document, phone = edge.evidence
    event = edge.parse(_raw(_with(_with(edge.example, document, "1101051949\x1b1231002X"), phone, "138\x1b00138000")))
    assert event.person.document is None and event.person.document_problem is DocumentProblem.BAD_CHARACTERS
    assert event.person.mobile_key is None


# --- lengths ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("edge", "path"), _ID_CASES, ids=[f"{e.name}-{p}" for e, p in _ID_CASES])
def test_ids_at_the_limit_are_accepted_and_over_it_rejected(edge: Edge, path: str) -> None:
    limit = edge.limit(path)
    # The platforms' fields are stripped; a decision (written by the bridge's own tool) is taken as is.
    padded = () if edge is DECISION else (" " + "B" * limit + "\u3000",)
    for at_limit in ("A" * limit, "账" * limit, *padded):
        assert _get(edge.parse(_raw(_with(edge.example, path, at_limit))), path) == at_limit.strip()
    for over in ("A" * (limit + 1), "账" * (limit + 1), "Z" * 1_000_000):
        error = _bad(edge, _raw(_with(edge.example, path, over)))
        assert error.code == "field_too_long"
        assert path.split(".")[0] in error.reason and str(limit) in error.reason
        _assert_no_echo(error.reason, over)


@pytest.mark.parametrize("edge", ADAPTERS, ids=lambda e: e.name)
def test_names_of_64_characters_are_accepted_and_65_rejected(edge: Edge) -> None:
    path = edge.name_field
    assert edge.parse(_raw(_with(edge.example, path, "张" * 64))).person.name_key == "张" * 64
    assert edge.parse(_raw(_with(edge.example, path, "\u3000" + "伟" * 64 + " "))).person.name_key == "伟" * 64
    for over in ("张" * 65, "N" * 65, "W" * 1_000_000):
        error = _bad(edge, _raw(_with(edge.example, path, over)))
        assert error.code == "field_too_long"
        assert path in error.reason and "64" in error.reason
        _assert_no_echo(error.reason, over)


@pytest.mark.parametrize("edge", ADAPTERS, ids=lambda e: e.name)
@pytest.mark.parametrize("length", [65, 1000, 1_000_000])
def test_an_overlong_document_number_is_a_data_quality_problem(edge: Edge, length: int) -> None:
    event = edge.parse(_raw(_with(edge.example, edge.evidence[0], "1" * length)))
    assert event.person.document is None
    assert event.person.document_problem is DocumentProblem.BAD_LENGTH
    assert event.account == edge.parse(_raw(edge.example)).account  # the event itself is processed


@pytest.mark.parametrize("edge", ADAPTERS, ids=lambda e: e.name)
@pytest.mark.parametrize("length", [65, 1000, 1_000_000])
def test_an_overlong_phone_is_unusable(edge: Edge, length: int) -> None:
    event = edge.parse(_raw(_with(edge.example, edge.evidence[1], "1" * length)))
    assert event.person.mobile_key is None
    assert event.person.document is not None


@pytest.mark.parametrize("edge", ADAPTERS, ids=lambda e: e.name)
def test_spaced_out_full_width_evidence_within_64_characters_still_works(edge: Edge) -> None:
    document, phone = edge.evidence
    spaced_id = "　".join("１１０１０５１９４９１２３１００２Ｘ")  # 35 characters
    event = edge.parse(_raw(_with(_with(edge.example, document, spaced_id), phone, "+86 (138) 0013-8000")))
    assert event.person.document is not None and event.person.mobile_key == "13800138000"


def test_decision_note_of_1000_characters_is_accepted_and_1001_rejected() -> None:
    assert parse_decision(_raw({**DECISION_EXAMPLE, "note": "注" * 1000})).note == "注" * 1000
    error = _bad(DECISION, _raw({**DECISION_EXAMPLE, "note": "注" * 1001}))
    assert error.code == "field_too_long" and "note" in error.reason and "1000" in error.reason


@pytest.mark.parametrize("where", ["account", "anchor"])
def test_an_unexpected_key_in_a_decision_account_is_not_echoed(where: str) -> None:
    key = "11010519491231002X-as-a-key"
    error = _bad(DECISION, _raw(_with(DECISION_EXAMPLE, f"{where}.{key}", "x")))
    assert error.code == "invalid_decision"
    assert f"{where} (an unexpected field)" in error.reason
    _assert_no_echo(error.reason, key)


def test_an_empty_decision_account_is_invalid() -> None:
    error = _bad(DECISION, _raw(_with(DECISION_EXAMPLE, "account.account", "")))
    assert error.code == "invalid_decision" and "account" in error.reason


# --- message size and shape ------------------------------------------------------------------------


def _padded(example: dict[str, Any], size: int) -> bytes:
    """``example`` with an extra field that brings the message to exactly ``size`` bytes."""
    base = _raw({**example, "padding": ""})
    raw = _raw({**example, "padding": "p" * (size - len(base))})
    assert len(raw) == size
    return raw


@pytest.mark.parametrize("edge", EDGES, ids=lambda e: e.name)
def test_a_message_of_1_mib_is_accepted_and_one_byte_more_is_too_large(edge: Edge) -> None:
    assert edge.parse(_padded(edge.example, MAX_MESSAGE_BYTES)) is not None
    error = _bad(edge, _padded(edge.example, MAX_MESSAGE_BYTES + 1))
    assert error.code == "too_large"
    assert "1 MiB" in error.reason


@pytest.mark.parametrize("edge", EDGES, ids=lambda e: e.name)
@pytest.mark.parametrize("junk", [b"\xff", b"[", b"\x00"])
def test_size_is_checked_before_decoding(edge: Edge, junk: bytes) -> None:
    assert _bad(edge, junk * (MAX_MESSAGE_BYTES + 1)).code == "too_large"
    assert _bad(edge, b"\x00" * (10 * MAX_MESSAGE_BYTES)).code == "too_large"


def _nested(edge: Edge, inner: str) -> bytes:
    return _raw(edge.example)[:-1] + b', "extra": ' + inner.encode() + b"}"


@pytest.mark.parametrize("edge", EDGES, ids=lambda e: e.name)
@pytest.mark.parametrize("depth", [1000, 100_000, 500_000])
def test_nesting_beyond_what_json_decodes_is_not_json(edge: Edge, depth: int) -> None:
    assert _bad(edge, _nested(edge, "[" * depth + "]" * depth)).code == "not_json"
    assert _bad(edge, _nested(edge, '{"a":' * depth + "1" + "}" * depth)).code in {"not_json", "too_large"}


@pytest.mark.parametrize("edge", EDGES, ids=lambda e: e.name)
def test_bad_text_at_the_bottom_of_deep_nesting_is_found(edge: Edge) -> None:
    # 400 levels decode; the walk that looks for bad text uses no recursion at all.
    error = _bad(edge, _nested(edge, '{"a":[' * 200 + '"\\ud800"' + "]}" * 200))
    assert error.code == "invalid_text"


@pytest.mark.parametrize("edge", EDGES, ids=lambda e: e.name)
def test_moderate_nesting_in_an_ignored_field(edge: Edge) -> None:
    raw = _nested(edge, "[" * 400 + "]" * 400)
    if edge is DECISION:  # the decision model's JSON parser stops at about 200 levels
        assert _bad(edge, raw).code == "invalid_decision"
    else:
        assert edge.parse(raw) == edge.parse(_raw(edge.example))


@pytest.mark.parametrize("edge", EDGES, ids=lambda e: e.name)
def test_deep_nesting_alone_is_bad_input(edge: Edge) -> None:
    error = _bad(edge, b"[" * 100_000 + b"]" * 100_000)
    assert error.code == "not_json"


@pytest.mark.parametrize("edge", EDGES, ids=lambda e: e.name)
@pytest.mark.parametrize(
    "value",
    [b"NaN", b"-Infinity", b"Infinity", b"1" * 5000, b"-" + b"9" * 4301],
    ids=["nan", "minus_infinity", "infinity", "integer_5000_digits", "integer_4301_digits"],
)
def test_nan_infinity_and_undecodable_integers_are_not_json(edge: Edge, value: bytes) -> None:
    raw = _raw(edge.example)[:-1] + b', "extra": ' + value + b"}"
    error = _bad(edge, raw)
    assert error.code == "not_json"
    if value[-1:].isdigit():
        _assert_no_echo(error.reason, value.decode())


# --- wrong JSON types for every always-present field ----------------------------------------------

_WRONG = {
    "number": 987654321, "float": 12345.678, "huge_integer": 10**400, "huge_negative": -(10**400),
    "float_overflow": _FLOAT_OVERFLOW, "string": "HOSTILE-STRING", "array": ["HOSTILE-ARRAY"],
    "object": {"HOSTILE": "OBJECT"}, "bool": True, "null": None,
}

# Each always-present field, its kind, and the codes its wrong values give.
_ALWAYS_PRESENT: dict[str, dict[str, str]] = {
    "union": {
        "msgId": "text", "eventType": "choice", "occurTime": "time", "member.memberNo": "text",
        "course.courseCode": "text", "course.studyHours": "number", "result.passed": "bool",
        "member": "parent", "course": "parent", "result": "parent",
    },
    "ou": {
        "event_id": "text", "event_type": "choice", "occurred_at": "millis", "learner.student_no": "text",
        "course.course_id": "text", "course.credits": "number", "outcome.status": "status",
        "learner": "parent", "course": "parent", "outcome": "parent",
    },
    "decision": {
        "decision_id": "decision_text", "review_id": "decision_text", "action": "decision",
        "account": "decision", "account.platform": "decision", "account.account": "decision_text",
        "anchor": "decision", "anchor.account": "decision_text", "decided_by": "decision_text",
        "decided_at": "timestamp",
    },
}


def _expected_code(kind: str, wrong: str) -> str | None:
    """The code a wrong value of ``kind`` gives, or ``None`` when the value is in fact acceptable."""
    if kind == "decision":
        return "invalid_decision"
    if kind == "decision_text":
        return None if wrong == "string" else "invalid_decision"
    if kind == "timestamp":  # pydantic reads a number as seconds since the epoch (accepted as before)
        return None if wrong in ("number", "float") else "invalid_decision"
    if wrong == "null":
        return "missing_field"
    if kind == "parent":
        # An object whose required children are missing; any other type cannot hold them.
        return "missing_field" if wrong == "object" else "invalid_field"
    if kind in ("time", "millis"):
        return "invalid_time"
    if kind == "number":
        return None if wrong in ("number", "float") else "invalid_field"
    if kind == "bool":
        return None if wrong == "bool" else "invalid_field"
    if kind == "choice" and wrong == "string":
        return "unknown_event_type"
    if kind == "text" and wrong == "string":
        return None
    return "invalid_field"


_TYPE_CASES = [
    (edge, path, kind, wrong)
    for edge in EDGES
    for path, kind in _ALWAYS_PRESENT[edge.name].items()
    for wrong in _WRONG
]


@pytest.mark.parametrize(
    ("edge", "path", "kind", "wrong"), _TYPE_CASES, ids=[f"{e.name}-{p}-{w}" for e, p, _, w in _TYPE_CASES]
)
def test_wrong_types_for_every_always_present_field(edge: Edge, path: str, kind: str, wrong: str) -> None:
    value = _WRONG[wrong]
    raw = _raw(_with(edge.example, path, value))
    code = _expected_code(kind, wrong)
    if code is None:
        assert edge.parse(raw) is not None
        return
    error = _bad(edge, raw)
    assert error.code == code, error.reason
    if not (path == "anchor" and wrong == "null"):  # a link without an anchor is the whole decision's fault
        assert path.split(".")[0] in error.reason, error.reason
    assert "HOSTILE" not in error.reason and "987654321" not in error.reason and "12345" not in error.reason
    assert "0000000000" not in error.reason


@pytest.mark.parametrize("edge", ADAPTERS, ids=lambda e: e.name)
@pytest.mark.parametrize("wrong", ["huge_integer", "huge_negative", "float_overflow"])
def test_huge_scores_are_out_of_range(edge: Edge, wrong: str) -> None:
    path = "result.score" if edge is UNION else "outcome.score"
    error = _bad(edge, _raw(_with(edge.example, path, _WRONG[wrong])))
    assert error.code == "invalid_field" and path in error.reason


@pytest.mark.parametrize("edge", ADAPTERS, ids=lambda e: e.name)
@pytest.mark.parametrize("wrong", ["huge_integer", "float_overflow"])
def test_huge_numbers_in_optional_text_fields_are_wrong_types(edge: Edge, wrong: str) -> None:
    for path in (edge.name_field, *edge.evidence):
        error = _bad(edge, _raw(_with(edge.example, path, _WRONG[wrong])))
        assert error.code == "invalid_field" and path in error.reason


# --- the property: an event or BadInput, and what comes out is clean text --------------------------

_any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
_hostile_text = st.one_of(
    _any_text,
    st.sampled_from([_HIGH, _LOW, "\x00", "\x1b", "\u202e", "\ufeff", "\u0378", "\ue000", "A" * 129, "N" * 65,
                     "", " ", "\u3000"]),
    st.builds(lambda a, b, c: a + b + c, _any_text, st.sampled_from([_HIGH, _LOW, "\x00", "\x85"]), _any_text),
)
_json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**300, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True), _hostile_text,
)
_json = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_hostile_text, inner, max_size=3),
    max_leaves=8,
)
_PATHS = {
    edge.name: [*_ALWAYS_PRESENT[edge.name], *_text_fields(edge)] for edge in EDGES
}


@st.composite
def _hostile_message(draw: st.DrawFn) -> tuple[Edge, bytes]:
    edge = draw(st.sampled_from(EDGES))
    how = draw(st.sampled_from(["text_fields", "text_fields", "mutate", "document", "text"]))
    if how == "text":
        text = draw(_any_text)
        return edge, text.encode("utf-8", "surrogatepass")
    if how == "text_fields":  # arbitrary text (surrogates, controls, any length) in the text fields
        message = copy.deepcopy(edge.example)
        for path in draw(st.lists(st.sampled_from(_text_fields(edge)), min_size=1, max_size=3, unique=True)):
            message = _with(message, path, draw(_hostile_text))
    elif how == "document":
        message: Any = draw(_json)
    else:
        message = copy.deepcopy(edge.example)
        for _ in range(draw(st.integers(1, 3))):
            path = draw(st.sampled_from(_PATHS[edge.name]))
            value = draw(st.one_of(st.just(_DELETE), _hostile_text, _json))
            try:
                message = _with(message, path, value)
            except (KeyError, TypeError, AttributeError):
                pass  # an earlier change replaced a parent by something that is not an object
        if draw(st.booleans()):
            message[draw(_hostile_text)] = draw(_json)
    # Platforms may send non-ASCII as UTF-8 or as \u escapes; a lone surrogate can only travel as an
    # escape in valid UTF-8, or as the (invalid) bytes "surrogatepass" writes.
    text = json.dumps(message, ensure_ascii=draw(st.booleans()), allow_nan=True)
    return edge, text.encode("utf-8", "surrogatepass")


_CODES = {
    "too_large", "not_utf8", "not_json", "not_object", "invalid_text", "field_too_long", "missing_field",
    "invalid_field", "unknown_event_type", "invalid_time", "invalid_decision",
}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_hostile_message())
def test_hostile_messages_give_clean_events_or_bad_input(case: tuple[Edge, bytes]) -> None:
    edge, raw = case
    try:
        result = edge.parse(raw)
    except BadInput as error:
        assert error.code in _CODES
        _assert_safe_reason(error)
        return
    if isinstance(result, CanonicalEvent):
        dumped = result.model_dump(mode="python")
        ids = (result.event_id, result.account, result.course_id)
    else:
        assert isinstance(result, OperatorDecision)
        dumped = result.model_dump(mode="python")
        ids = (result.decision_id, result.review_id, result.account.account, result.decided_by)
    for text in _strings(dumped):
        text.encode("utf-8")  # no unpaired surrogate survives
        assert "\x00" not in text
    for value in ids:
        assert 0 < len(value) <= 128 and is_printable(value)


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+14:00"])
def test_a_decision_time_that_leaves_the_calendar_in_utc_is_bad_input(moment: str) -> None:
    value = json.dumps({
        "decision_id": "d-1", "review_id": "rv_1", "action": "reject",
        "account": {"platform": "union", "account": "GH1"}, "decided_by": "op", "decided_at": moment,
    }).encode()
    with pytest.raises(BadInput) as caught:
        parse_decision(value)
    assert caught.value.code == "invalid_decision"
