"""Hostile input for the bridge (issue 11): messages that must never stop it.

Everything here is plain data: a :class:`Hostile` is one Kafka message (topic, key, value bytes)
with what CONTRACT §1-§2 say must become of it, so unit tests (the adapters, the pipeline) and the
integration tests (a real worker) can use the same cases. Nothing here needs a broker.

What the contract says becomes of a message:

- ``dead_letter``: bad input (§1 "What every message must respect": not UTF-8 JSON, a field that is
  always present missing or of the wrong JSON type, an unknown event type, an account number, event
  id or course id that is not at most 128 characters of printable text, a name over 64 characters, a
  message over 1 MiB; a tombstone; an operator decision that is malformed or names no open review
  item). It goes to ``bridge.deadletter.v1`` with a ``reason_code``, a ``reason`` that repeats no
  value of the message, and ``payload_sha256``; the dead letter itself is at most 1 MiB (§2).
- ``process``: odd but within the limits (an id of exactly 128 characters, a 900 KB message): it is
  processed like any other event.
- ``either``: the contract does not say (control characters in a name, a key that is not UTF-8,
  a 50,000-level value in a field the bridge ignores): processed or dead-lettered are both fine,
  as long as it does neither block the partition nor stop the worker.

The ids of every message derive from a ``uid`` given by the caller, so tests that share a broker and
a database make each case unique. :func:`recipes` is a hypothesis strategy of :class:`Recipe`, whose
``build(uid)`` makes the messages; :data:`NAMED` holds the cases of issue 11 by name.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal

from hypothesis import strategies as st

from tests.factories import OU, UNION, ou_event, union_event

DECISIONS = "bridge.decisions.v1"
MiB = 1024 * 1024
MAX_ID_CHARS = 128
MAX_NAME_CHARS = 64
#: Prefix of event ids that tests make the *database* refuse (a trigger, see the integration
#: harness): valid messages that get past every validation and still make a batch fail.
DB_POISON_PREFIX = "dbpoison-"
#: Likewise, for a constraint the database enforces (an integrity error, not a data error).
DB_CONSTRAINT_PREFIX = "dbconstraint-"

Expect = Literal["dead_letter", "process", "either"]

#: Required paths per platform (CONTRACT §1 "Always present").
ID_PATHS = {
    "union": ("msgId", "member.memberNo", "course.courseCode"),
    "ou": ("event_id", "learner.student_no", "course.course_id"),
}
EVENT_ID_PATH = {"union": "msgId", "ou": "event_id"}
ACCOUNT_PATH = {"union": "member.memberNo", "ou": "learner.student_no"}
NAME_PATH = {"union": "member.name", "ou": "learner.full_name"}
MOBILE_PATH = {"union": "member.mobile", "ou": "learner.phone"}
TOPIC_OF = {"union": UNION, "ou": OU}
#: Required fields that are not ids, with the JSON type the contract's examples give them.
TYPED_PATHS = {
    "union": {
        "eventType": "enum",
        "occurTime": "text",
        "course.studyHours": "number",
        "result.passed": "bool",
    },
    "ou": {
        "event_type": "enum",
        "occurred_at": "integer",
        "course.credits": "number",
        "outcome.status": "enum",
    },
}
PARENT_PATHS = {"union": ("member", "course", "result"), "ou": ("learner", "course", "outcome")}
NUMBER_PATHS = {"union": ("course.studyHours",), "ou": ("course.credits", "occurred_at")}
#: Per platform: the completion event type (so ``result``/``outcome`` fields are required).
COMPLETION = {"union": "COURSE_COMPLETE", "ou": "course.completed"}

_DELETE = object()
_counter = itertools.count(1)


def next_number() -> int:
    """A process-wide sequence number (unique mobiles for unrelated accounts)."""
    return next(_counter)


# -- hostile text ---------------------------------------------------------------------------------

LONE_SURROGATES = ("\ud800", "\udbff", "\udc00", "\udfff")
#: C0 controls (NUL first), DEL and C1 controls: category Cc, never printable.
CONTROL_CHARACTERS = (
    "\x00", "\x01", "\x07", "\x08", "\t", "\n", "\x0b", "\x0c", "\r", "\x1b", "\x1f", "\x7f", "\x80", "\x85", "\x9b",
    "\x9f",
)
OVERLONG_ID_LENGTHS = (MAX_ID_CHARS + 1, 300, 10_000, 500_000)


def filler(seed: str, length: int) -> str:
    """``length`` printable letters, a pseudo-random sequence of ``seed``: long enough runs are unique
    to the seed, so a reason that repeats part of a hostile value is caught."""
    rng = random.Random(hashlib.sha256(seed.encode("utf-8", "surrogatepass")).digest())
    return "".join(rng.choices("ghijklmnopqrstuvwxyzGHJKLMNPQRSTUVWXYZ", k=length))


def long_text(seed: str, length: int) -> str:
    """Printable text of exactly ``length`` characters starting with ``seed``."""
    head = f"{seed}-"
    return (head + filler(seed, max(length - len(head), 0)))[:length]


def is_printable_sentence(text: str) -> bool:
    """No control character (Cc) and no lone surrogate (Cs) in ``text``."""
    return not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF for c in text)


def repeated_part(reason: str, needles: Iterable[str], window: int = 16) -> str | None:
    """A run of ``window`` characters of ``reason`` that occurs in one of the ``needles``, if any."""
    needles = [n for n in needles if isinstance(n, str) and len(n) >= window]
    if not needles:
        return None
    for start in range(max(len(reason) - window + 1, 0)):
        part = reason[start : start + window]
        if any(part in needle for needle in needles):
            return part
    return None


# -- messages ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hostile:
    """One message and what the contract says must become of it."""

    topic: str
    key: bytes | None
    value: bytes | None
    label: str
    expect: Expect = "dead_letter"
    #: Hostile values the dead letter's reason must not repeat (checked for runs of 16 characters).
    needles: tuple[str, ...] = ()
    #: ``(platform, event id)`` as a record's ``sources`` would name it if the message were processed.
    event: tuple[str, str] | None = None
    #: The record status it yields if processed (``None``: not checked).
    status: str | None = None
    #: The reason code the contract prescribes, where it names one.
    reason_code: str | None = None

    def __repr__(self) -> str:  # values can be megabytes: show what matters
        size = "tombstone" if self.value is None else f"{len(self.value)} B"
        return f"Hostile({self.label!r}, {self.topic}, {size}, expect={self.expect})"


@dataclass(frozen=True)
class SameIdPair:
    """Two messages with one event id and different contents (CONTRACT §1): one is kept, whatever
    the order, and the other is dead-lettered with ``reason_code`` ``duplicate_event_id``."""

    first: Hostile
    second: Hostile
    label: str

    @property
    def messages(self) -> tuple[Hostile, Hostile]:
        return (self.first, self.second)


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``doc`` with ``path`` set to ``value`` (``_DELETE`` removes it)."""
    doc = copy.deepcopy(doc)
    node = doc
    keys = path.split(".")
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    if value is _DELETE:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = value
    return doc


def _get(doc: dict[str, Any], path: str) -> Any:
    node: Any = doc
    for key in path.split("."):
        node = node[key]
    return node


def encode(doc: Any, raw: dict[str, str] | None = None) -> bytes:
    """UTF-8 JSON of ``doc``: non-ASCII as such, lone surrogates as ``\\ud800`` escapes (the only way
    JSON can carry them), and each placeholder string of ``raw`` replaced by its raw JSON text
    (``NaN``, a 5,000-digit number, 50,000 nested arrays)."""
    try:
        text = json.dumps(doc, ensure_ascii=False, allow_nan=True)
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(doc, ensure_ascii=True, allow_nan=True)
    for placeholder, raw_text in (raw or {}).items():
        text = text.replace(json.dumps(placeholder), raw_text)
    return text.encode("utf-8")


def key_bytes(account: Any, uid: str, *, surrogates: str = "replace") -> bytes:
    """The Kafka key a platform would send: the account number as UTF-8, or a stand-in when it is not
    a string. A lone surrogate cannot be UTF-8: by default it becomes ``?`` as Java's encoder makes
    it; ``surrogates="surrogatepass"`` writes its 3-byte sequence instead (a key that is not UTF-8)."""
    if isinstance(account, str):
        if surrogates == "replace":
            return "".join("?" if 0xD800 <= ord(c) <= 0xDFFF else c for c in account).encode("utf-8")
        return account.encode("utf-8", surrogates)
    return f"hk-{uid}".encode()


def base_event(platform: str, uid: str, kind: str | None = None, **overrides: Any) -> dict[str, Any]:
    """A valid event of ``platform`` whose ids (event, account, course) derive from ``uid``.

    Each account gets its own mobile number, so unrelated test accounts never share name+mobile
    evidence (and never form a crowd of the kind identity rule 8 is about).
    """
    mobile = f"139{next_number() % 10**8:08d}"
    if platform == "union":
        event = union_event(
            f"hx-u-{uid}",
            kind or "COURSE_ENROLL",
            member_no=f"GHX-{uid}",
            course=f"HX-C-{uid}",
            name="张伟",
            mobile=mobile,
            passed=True if (kind == "COURSE_COMPLETE") else None,
            score=80 if kind == "COURSE_COMPLETE" else None,
        )
    else:
        event = ou_event(
            f"hx-o-{uid}",
            kind or "enrolment.created",
            student_no=f"SX-{uid}",
            course=f"HX-N-{uid}",
            name="李娜",
            phone=f"+86{mobile}",
            status="PASSED" if kind == "course.completed" else None,
        )
    for path, value in overrides.items():
        event = _set(event, path.replace("__", "."), value)
    return event


_STATUS = {
    "COURSE_ENROLL": "ENROLLED",
    "COURSE_WITHDRAW": "WITHDRAWN",
    "enrolment.created": "ENROLLED",
    "enrolment.cancelled": "WITHDRAWN",
}


def status_of(platform: str, event: dict[str, Any]) -> str | None:
    """The record status a single event yields (credit rules 3-4)."""
    kind = event.get("eventType" if platform == "union" else "event_type")
    if kind in _STATUS:
        return _STATUS[kind]
    if platform == "union":
        return "AWARDED" if event["result"]["passed"] else "FAILED"
    return "AWARDED" if event["outcome"]["status"] == "PASSED" else "FAILED"


def from_event(platform: str, event: dict[str, Any], uid: str, label: str, expect: Expect = "dead_letter", *,
               raw: dict[str, str] | None = None, needles: Iterable[str] = (), key: bytes | None | str = "account",
               topic: str | None = None, reason_code: str | None = None) -> Hostile:
    """A :class:`Hostile` of an event document (possibly broken)."""
    account = _maybe(event, ACCOUNT_PATH[platform])
    event_id = _maybe(event, EVENT_ID_PATH[platform])
    status = None
    if expect != "dead_letter":
        try:
            status = status_of(platform, event)
        except (KeyError, TypeError):
            status = None
    return Hostile(
        topic=topic or TOPIC_OF[platform],
        key=key_bytes(account, uid) if key == "account" else key,  # type: ignore[arg-type]
        value=encode(event, raw),
        label=label,
        expect=expect,
        needles=tuple(n for n in needles if isinstance(n, str)),
        event=(platform, event_id) if isinstance(event_id, str) else None,
        status=status,
        reason_code=reason_code,
    )


def _maybe(event: dict[str, Any], path: str) -> Any:
    try:
        return _get(event, path)
    except (KeyError, TypeError):
        return None


def ordinary(platform: str, uid: str, kind: str | None = None, *, edge: bool = False) -> Hostile:
    """An ordinary event (``expect="process"``); ``edge`` puts every limit at its maximum: ids of
    exactly 128 characters (some of them not ASCII) and a name of exactly 64."""
    event = base_event(platform, uid, kind)
    label = f"ordinary {platform} {kind or 'enrolment'}"
    if edge:
        for n, path in enumerate(ID_PATHS[platform]):
            base = _get(event, path)
            pad = "号" if n == 1 else "x"
            event = _set(event, path, (base + "-" + pad * MAX_ID_CHARS)[:MAX_ID_CHARS])
        event = _set(event, NAME_PATH[platform], "王" * MAX_NAME_CHARS)
        label += " at the limits (ids of 128 characters, a name of 64)"
    return from_event(platform, event, uid, label, "process")


# -- recipes: what hypothesis draws ----------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """A kind of hostile message; ``build(uid)`` makes it (one message, or a pair for ``same_id``)."""

    family: str
    platform: str = "union"
    path: str = ""
    variant: Any = None

    def build(self, uid: str) -> list[Hostile] | SameIdPair:
        return _BUILDERS[self.family](self, uid)

    def __repr__(self) -> str:
        variant = self.variant
        if isinstance(variant, str) and len(variant) > 40:
            variant = variant[:40] + "..."
        parts = [self.family, self.platform]
        if self.path:
            parts.append(self.path)
        if variant is not None:
            parts.append(repr(variant))
        return "Recipe(" + ", ".join(parts) + ")"


def _poison_id(base: str, variant: tuple[str, Any], uid: str) -> tuple[str, Expect]:
    """``base`` made hostile as ``variant`` says; and whether the contract calls it bad input."""
    how, arg = variant
    if how == "surrogate":
        char, where = arg
        return _insert(base, char, where), "dead_letter"
    if how == "control":
        char, where = arg
        # A control character at an edge that is also whitespace may be trimmed as surrounding
        # whitespace; in the middle of an id it is always bad input.
        expect: Expect = "either" if where != "middle" and char.isspace() else "dead_letter"
        return _insert(base, char, where), expect
    if how == "length":
        return long_text(f"{base}-L", arg), "dead_letter"
    raise ValueError(how)


def _insert(base: str, char: str, where: str) -> str:
    if where == "alone":
        return char
    if where == "start":
        return char + base
    if where == "end":
        return base + char
    middle = len(base) // 2
    return base[:middle] + char + base[middle:]


def _build_id(recipe: Recipe, uid: str) -> list[Hostile]:
    event = base_event(recipe.platform, uid)
    value, expect = _poison_id(_get(event, recipe.path), recipe.variant, uid)
    event = _set(event, recipe.path, value)
    label = f"{recipe.platform} {recipe.path} {_describe_variant(recipe.variant)}"
    message = from_event(recipe.platform, event, uid, label, expect, needles=[value])
    if expect == "either" and recipe.path == EVENT_ID_PATH[recipe.platform]:
        # Processed, it can only be under the id trimmed of the surrounding whitespace.
        message = replace(message, event=(recipe.platform, value.strip()))
    return [message]


def _describe_variant(variant: tuple[str, Any]) -> str:
    how, arg = variant
    if how == "length":
        return f"of {arg} characters"
    char, where = arg
    what = "a lone surrogate" if how == "surrogate" else "a control character"
    return f"with {what} {char!r} ({where})"


def _build_name(recipe: Recipe, uid: str) -> list[Hostile]:
    event = base_event(recipe.platform, uid)
    how, arg = recipe.variant
    expect: Expect = "either"
    if how == "length":
        value, expect = "王" * arg, ("dead_letter" if arg > MAX_NAME_CHARS else "process")
    elif how in ("surrogate", "control"):
        value = _insert(_get(event, recipe.path), arg, "middle")
    elif how == "huge":
        value = long_text("N", arg)
        expect = "dead_letter" if recipe.path == NAME_PATH[recipe.platform] else "either"
    else:
        raise ValueError(how)
    event = _set(event, recipe.path, value)
    label = f"{recipe.platform} {recipe.path} {how} {arg!r}"
    return [from_event(recipe.platform, event, uid, label, expect, needles=[value])]


#: Wrong JSON values per expected type (never the expected type).
WRONG_VALUES: dict[str, tuple[Any, ...]] = {
    "text": (12345, 1.5, True, [], {}, ["x"], {"value": "x"}, None, "", "   "),
    "enum": (7, True, [], {}, None, ""),
    "number": ("24", True, False, [], {}, [24], None, ""),
    "integer": ("1714095000000", True, [], {}, None, ""),
    "bool": ("true", 1, 0, [], {}, None, "yes"),
    "object": ("x", 5, True, [], ["member"]),
}


def _build_type(recipe: Recipe, uid: str) -> list[Hostile]:
    kind = COMPLETION[recipe.platform] if recipe.path.startswith(("result", "outcome")) else None
    event = base_event(recipe.platform, uid, kind)
    value = _DELETE if recipe.variant == "missing" else recipe.variant
    event = _set(event, recipe.path, value)
    shown = "missing" if value is _DELETE else f"= {json.dumps(value)}"
    return [from_event(recipe.platform, event, uid, f"{recipe.platform} {recipe.path} {shown}")]


#: Raw JSON number tokens, and for each whether Python's json can even read it.
RAW_NUMBERS = ("NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" + "0" * 400, "9" * 5000, "1" + "0" * 30)


def _build_number(recipe: Recipe, uid: str) -> list[Hostile]:
    event = base_event(recipe.platform, uid)
    placeholder = f"@@raw-{uid}@@"
    event = _set(event, recipe.path, placeholder)
    raw = recipe.variant
    label = f"{recipe.platform} {recipe.path} = {raw[:12]}{'...' if len(raw) > 12 else ''} ({len(raw)} characters)"
    return [from_event(recipe.platform, event, uid, label, raw={placeholder: raw})]


UNKNOWN_EVENT_TYPES = {
    "union": ("COURSE_PAUSE", "course_enroll", "COURSE_ENROLL ", "enrolment.created", "COURSE_ENROL\u0000L"),
    "ou": ("course.paused", "ENROLMENT.CREATED", "COURSE_COMPLETE", "course.completed\u00a0"),
}


def _build_enum(recipe: Recipe, uid: str) -> list[Hostile]:
    path = "eventType" if recipe.platform == "union" else "event_type"
    event = _set(base_event(recipe.platform, uid), path, recipe.variant)
    # Trailing whitespace may be trimmed: "COURSE_ENROLL " is then the known type.
    expect: Expect = "either" if recipe.variant != recipe.variant.strip() else "dead_letter"
    return [from_event(recipe.platform, event, uid, f"{recipe.platform} event type {recipe.variant!r}", expect)]


SHAPES: tuple[tuple[str, bytes], ...] = (
    ("a JSON array", b"[]"),
    ("a JSON string", b'"union event"'),
    ("a JSON number", b"42"),
    ("JSON null", b"null"),
    ("JSON true", b"true"),
    ("an empty object", b"{}"),
    ("an array of a valid event", b"[%s]"),
)


def _build_shape(recipe: Recipe, uid: str) -> list[Hostile]:
    label, body = recipe.variant
    if b"%s" in body:
        body = body.replace(b"%s", encode(base_event(recipe.platform, uid)))
    return [Hostile(TOPIC_OF[recipe.platform], f"hk-{uid}".encode(), body, f"{recipe.platform} message: {label}")]


#: Not UTF-8 JSON. ``None`` marks "the valid event's bytes, then transformed".
BYTES: tuple[tuple[str, Any, Expect], ...] = (
    ("empty bytes", b"", "dead_letter"),
    ("not JSON", b"this is not json", "dead_letter"),
    ("an unterminated object", b'{"msgId": "x", ', "dead_letter"),
    ("random binary", bytes(range(256)), "dead_letter"),
    ("0xff 0xfe, then JSON", b"\xff\xfe{}", "dead_letter"),
    ("truncated", "truncate", "dead_letter"),
    ("a Latin-1 byte in a string", "latin1", "dead_letter"),
    ("a CESU-8 encoded surrogate", "cesu", "dead_letter"),
    ("an overlong UTF-8 encoding", "overlong", "dead_letter"),
    ("UTF-16 encoded", "utf16", "dead_letter"),
    ("a raw NUL byte inside a string", "rawnul", "dead_letter"),
    ("a raw control byte inside a string", "rawctl", "dead_letter"),
    ("a UTF-8 byte order mark first", "bom", "either"),
    ("trailing garbage after the object", "trailing", "dead_letter"),
    ("two objects", "two", "dead_letter"),
)


def _build_bytes(recipe: Recipe, uid: str) -> list[Hostile]:
    label, how, expect = recipe.variant
    event = base_event(recipe.platform, uid)
    good = encode(event)
    if isinstance(how, bytes):
        value = how
    elif how == "truncate":
        value = good[: len(good) // 2]
    elif how == "latin1":
        value = good.replace("张伟".encode(), b"\xe9").replace("李娜".encode(), b"\xe9")
    elif how == "cesu":
        value = good.replace("张伟".encode(), b"\xed\xa0\x80").replace("李娜".encode(), b"\xed\xa0\x80")
    elif how == "overlong":
        value = good.replace(b"-", b"\xc0\xad", 1)
    elif how == "utf16":
        value = json.dumps(event, ensure_ascii=False).encode("utf-16")
    elif how == "rawnul":
        value = good.replace(b"hx-", b"hx\x00-", 1)
    elif how == "rawctl":
        value = good.replace(b"hx-", b"hx\x01-", 1)
    elif how == "bom":
        value = b"\xef\xbb\xbf" + good
    elif how == "trailing":
        value = good + b" garbage"
    elif how == "two":
        value = good + good
    else:
        raise ValueError(how)
    platform = recipe.platform
    event_id = event[EVENT_ID_PATH[platform]]
    return [Hostile(TOPIC_OF[platform], key_bytes(_get(event, ACCOUNT_PATH[platform]), uid), value,
                    f"{platform} message: {label}", expect, event=(platform, event_id),
                    status=status_of(platform, event) if expect != "dead_letter" else None)]


DEPTH = 50_000


def _build_deep(recipe: Recipe, uid: str) -> list[Hostile]:
    where, opener = recipe.variant
    closer = {"[": "]", '{"a":': "}"}[opener]
    nested = opener * DEPTH + ("1" if opener == "[" else "1") + closer * DEPTH
    platform = recipe.platform
    if where == "message":
        return [Hostile(TOPIC_OF[platform], f"hk-{uid}".encode(), nested.encode(),
                        f"{platform} message: {DEPTH} levels of {opener}")]
    event = base_event(platform, uid)
    placeholder = f"@@deep-{uid}@@"
    if where == "ignored":
        path = "member.orgName" if platform == "union" else "course.title"
        expect: Expect = "either"
    else:
        path = NUMBER_PATHS[platform][0]
        expect = "dead_letter"
    event = _set(event, path, placeholder)
    return [from_event(platform, event, uid, f"{platform} {path}: {DEPTH} levels of {opener}", expect,
                       raw={placeholder: nested})]


def _padded(platform: str, uid: str, size: int, **broken: Any) -> dict[str, Any]:
    event = base_event(platform, uid)
    for path, value in broken.items():
        event = _set(event, path, value)
    pad_path = "member.orgName" if platform == "union" else "course.title"
    current = len(encode(event))
    return _set(event, pad_path, long_text("P", max(size - current, 1)))


def _build_size(recipe: Recipe, uid: str) -> list[Hostile]:
    how, size = recipe.variant
    platform = recipe.platform
    if how == "valid":
        event = _padded(platform, uid, size)
        expect: Expect = "process" if size <= MiB - 4096 else "dead_letter"
        label = f"{platform} valid event padded to {size} bytes"
        needles: list[str] = []
    elif how == "bad-id":
        event = base_event(platform, uid)
        value = long_text(f"hx-big-{uid}", size - len(encode(event)))
        event = _set(event, EVENT_ID_PATH[platform], value)
        expect, label, needles = "dead_letter", f"{platform} event id of {len(value)} characters", [value]
    else:  # missing field, padded
        event = _padded(platform, uid, size, **{ID_PATHS[platform][2]: _DELETE})
        expect, label, needles = "dead_letter", f"{platform} event without course id, padded to {size} bytes", []
    return [from_event(platform, event, uid, label, expect, needles=needles)]


def _build_tombstone(recipe: Recipe, uid: str) -> list[Hostile]:
    topic = {"union": UNION, "ou": OU, "decisions": DECISIONS}[recipe.platform]
    return [Hostile(topic, f"hk-{uid}".encode(), None, f"tombstone (null value) on {topic}")]


def decision(uid: str, **overrides: Any) -> dict[str, Any]:
    """An operator decision (CONTRACT §2) on a review item that does not exist: unsigned, so no
    worker may apply it; ``overrides`` break it further."""
    doc: dict[str, Any] = {
        "decision_id": f"dc_{uid}",
        "review_id": f"rv_{uid}",
        "action": "link",
        "account": {"platform": "union", "account": f"GHX-{uid}"},
        "anchor": {"platform": "ou", "account": f"SX-{uid}"},
        "decided_by": "operator-7",
        "decided_at": "2024-04-27T08:00:00Z",
        "note": "checked with the learner",
    }
    for path, value in overrides.items():
        doc = _set(doc, path.replace("__", "."), value)
    return doc


DECISION_VARIANTS: tuple[tuple[str, Any], ...] = (
    ("account of 300 characters", {"account__account": "long:300"}),
    ("anchor account of 10,000 characters", {"anchor__account": "long:10000"}),
    ("NUL in decided_by", {"decided_by": "opera\x00tor-7"}),
    ("lone surrogate in decided_by", {"decided_by": "operator-\ud800"}),
    ("lone surrogate in the account", {"account__account": "GHX-\udc00"}),
    ("control character in the account", {"account__account": "GHX-\x1b[31m"}),
    ("decided_by of 10,000 characters", {"decided_by": "long:10000"}),
    ("decision_id of 129 characters", {"decision_id": "long:129"}),
    ("unknown action", {"action": "merge"}),
    ("unknown platform", {"account__platform": "moon"}),
    ("account as a number", {"account__account": 12345}),
    ("account as a string", {"account": "union:GHX"}),
    ("decided_at not a time", {"decided_at": "yesterday"}),
    ("decided_at without a zone", {"decided_at": "2024-04-27T08:00:00"}),
    ("link without an anchor", {"anchor": _DELETE}),
    ("no review_id", {"review_id": _DELETE}),
    ("a note of 900 KB", {"note": "long:900000"}),
)
#: Well-formed (but unsigned) and naming no open review item: dead-lettered by CONTRACT §2 too,
#: but for what it names, not for its shape; kept apart from :data:`DECISION_VARIANTS`.
DECISION_ON_NO_REVIEW = ("a well-formed decision on no open review item", {})


def _build_decision(recipe: Recipe, uid: str) -> list[Hostile]:
    label, overrides = recipe.variant
    needles = []
    resolved = {}
    for path, value in overrides.items():
        if isinstance(value, str) and value.startswith("long:"):
            value = long_text(f"hx-dc-{uid}-{path}", int(value[5:]))
        if isinstance(value, str) and len(value) >= 16:
            needles.append(value)
        resolved[path] = value
    doc = decision(uid, **resolved)
    return [Hostile(DECISIONS, f"rv_{uid}".encode(), encode(doc), f"operator decision: {label}", needles=tuple(needles))]


def _build_decision_bytes(recipe: Recipe, uid: str) -> list[Hostile]:
    label, value = recipe.variant
    return [Hostile(DECISIONS, f"rv_{uid}".encode(), value, f"operator decision: {label}")]


def _build_cross(recipe: Recipe, uid: str) -> list[Hostile]:
    """An event of one platform on the other platform's topic."""
    other = "ou" if recipe.platform == "union" else "union"
    event = base_event(recipe.platform, uid)
    return [from_event(recipe.platform, event, uid, f"a {recipe.platform} event on the {other} topic",
                       topic=TOPIC_OF[other])]


def _build_key(recipe: Recipe, uid: str) -> list[Hostile]:
    how = recipe.variant
    key: bytes | None
    if how == "none":
        key = None
    elif how == "not-utf8":
        key = b"\xff\xfeGH\xed\xa0\x80"
    elif how == "wtf-8":
        key = key_bytes(f"GHX-{uid}\ud800", uid, surrogates="surrogatepass")
    elif how == "huge":
        key = long_text(f"hk-{uid}", 100_000).encode()
    elif how == "not-utf8, bad message":
        event = _set(base_event(recipe.platform, uid), ID_PATHS[recipe.platform][2], _DELETE)
        return [from_event(recipe.platform, event, uid, f"{recipe.platform} event without course id, key not UTF-8",
                           key=b"GHX-\xed\xa0\x80-" + uid.encode())]
    else:
        key = b"someone-else"
    event = base_event(recipe.platform, uid)
    return [from_event(recipe.platform, event, uid, f"{recipe.platform} event with key {how}", "either", key=key)]


SAME_ID_VARIANTS = ("other event type", "other course", "other account", "other hours", "other time")


def _build_same_id(recipe: Recipe, uid: str) -> SameIdPair:
    platform = recipe.platform
    first = base_event(platform, uid)
    how = recipe.variant
    if how == "other event type":
        second = base_event(platform, uid, COMPLETION[platform])
        second = _set(second, EVENT_ID_PATH[platform], first[EVENT_ID_PATH[platform]])
    else:
        path = {
            "other course": ID_PATHS[platform][2],
            "other account": ACCOUNT_PATH[platform],
            "other hours": "course.studyHours" if platform == "union" else "course.credits",
            "other time": "occurTime" if platform == "union" else "occurred_at",
        }[how]
        old = _get(first, path)
        if isinstance(old, str) and path.endswith(("Time",)):
            new: Any = old.replace("09:30", "10:45")
        elif isinstance(old, str):
            new = old + "-b"
        elif path == "occurred_at":
            new = old + 3_600_000
        else:
            new = old + 8
        second = _set(first, path, new)
    a = from_event(platform, first, uid, f"{platform} same id, content A", "either", reason_code="duplicate_event_id")
    b = from_event(platform, second, uid + "b", f"{platform} same id, content B ({how})", "either",
                   reason_code="duplicate_event_id")
    return SameIdPair(a, b, f"{platform} event id reused with {how}")


def _build_db_poison(recipe: Recipe, uid: str) -> list[Hostile]:
    event = base_event(recipe.platform, uid)
    prefix = DB_CONSTRAINT_PREFIX if recipe.variant == "constraint" else DB_POISON_PREFIX
    event = _set(event, EVENT_ID_PATH[recipe.platform], f"{prefix}{uid}")
    what = "a constraint" if recipe.variant == "constraint" else "a data error"
    return [from_event(recipe.platform, event, uid, f"{recipe.platform} valid event the database refuses ({what})")]


_BUILDERS: dict[str, Callable[[Recipe, str], list[Hostile] | SameIdPair]] = {
    "id": _build_id,
    "name": _build_name,
    "type": _build_type,
    "number": _build_number,
    "enum": _build_enum,
    "shape": _build_shape,
    "bytes": _build_bytes,
    "deep": _build_deep,
    "size": _build_size,
    "tombstone": _build_tombstone,
    "decision": _build_decision,
    "decision_bytes": _build_decision_bytes,
    "cross": _build_cross,
    "key": _build_key,
    "same_id": _build_same_id,
    "db_poison": _build_db_poison,
}


def _all_recipes(*, db_poison: bool, heavy: bool) -> list[Recipe]:
    out: list[Recipe] = []
    add = out.append
    for platform in ("union", "ou"):
        for path in ID_PATHS[platform]:
            for char in LONE_SURROGATES:
                for where in ("alone", "middle", "end"):
                    add(Recipe("id", platform, path, ("surrogate", (char, where))))
            for char in CONTROL_CHARACTERS:
                for where in ("middle", "start", "end"):
                    add(Recipe("id", platform, path, ("control", (char, where))))
            for length in OVERLONG_ID_LENGTHS:
                if heavy or length <= 10_000:
                    add(Recipe("id", platform, path, ("length", length)))
        name = NAME_PATH[platform]
        for variant in (("length", MAX_NAME_CHARS + 1), ("length", 1000), ("huge", 100_000), ("surrogate", "\ud800"),
                        ("control", "\x00"), ("control", "\x1b")):
            add(Recipe("name", platform, name, variant))
        for variant in (("surrogate", "\udfff"), ("control", "\x00"), ("huge", 100_000)):
            add(Recipe("name", platform, MOBILE_PATH[platform], variant))
        for path, kind in {**{p: "text" for p in ID_PATHS[platform]}, **TYPED_PATHS[platform]}.items():
            for wrong in WRONG_VALUES[kind] + ("missing",):
                add(Recipe("type", platform, path, wrong))
        for path in PARENT_PATHS[platform]:
            for wrong in WRONG_VALUES["object"]:
                add(Recipe("type", platform, path, wrong))
        for path in NUMBER_PATHS[platform]:
            for raw in RAW_NUMBERS:
                if path == "occurred_at" or raw != "1" + "0" * 30:
                    add(Recipe("number", platform, path, raw))
        for value in UNKNOWN_EVENT_TYPES[platform]:
            add(Recipe("enum", platform, "", value))
        for shape in SHAPES:
            add(Recipe("shape", platform, "", shape))
        for variant in BYTES:
            add(Recipe("bytes", platform, "", variant))
        for variant in (("ignored", "["), ("ignored", '{"a":'), ("number", "["), ("message", "[")):
            add(Recipe("deep", platform, "", variant))
        if heavy:
            for variant in (("valid", 900_000), ("bad-id", 900_000), ("missing", 900_000), ("valid", MiB + 100_000),
                            ("valid", 5 * MiB)):
                add(Recipe("size", platform, "", variant))
        add(Recipe("tombstone", platform, "", None))
        add(Recipe("cross", platform, "", None))
        for how in ("none", "not-utf8", "wtf-8", "huge", "other", "not-utf8, bad message"):
            add(Recipe("key", platform, "", how))
        for how in SAME_ID_VARIANTS:
            add(Recipe("same_id", platform, "", how))
        if db_poison:
            add(Recipe("db_poison", platform, "", "data"))
            add(Recipe("db_poison", platform, "", "constraint"))
    add(Recipe("tombstone", "decisions", "", None))
    for variant in DECISION_VARIANTS:
        if heavy or "900 KB" not in variant[0]:
            add(Recipe("decision", "decisions", "", variant))
    for variant in (("not JSON", b"{not json"), ("a JSON array", b"[]"), ("not UTF-8", b'{"decided_by": "\xff"}'),
                    ("50,000 nested arrays", b"[" * DEPTH + b"]" * DEPTH)):
        add(Recipe("decision_bytes", "decisions", "", variant))
    return out


def recipes(*, db_poison: bool = False, heavy: bool = True) -> st.SearchStrategy[Recipe]:
    """Hypothesis strategy of hostile recipes: every family equally likely, then one of its variants.

    ``db_poison`` adds valid events that a test's database trigger refuses (see ``DB_POISON_PREFIX``);
    ``heavy`` adds the megabyte-sized ones (ids of 500,000 characters, messages of 900 KB to 5 MiB).
    """
    by_family: dict[str, list[Recipe]] = {}
    for recipe in _all_recipes(db_poison=db_poison, heavy=heavy):
        by_family.setdefault(recipe.family, []).append(recipe)
    return st.sampled_from(sorted(by_family)).flatmap(lambda family: st.sampled_from(by_family[family]))


def all_recipes(*, db_poison: bool = False, heavy: bool = True) -> list[Recipe]:
    """Every recipe (for exhaustive unit tests of an adapter or the pipeline)."""
    return _all_recipes(db_poison=db_poison, heavy=heavy)


def ordinary_kinds(platform: str) -> tuple[str, ...]:
    if platform == "union":
        return ("COURSE_ENROLL", "COURSE_COMPLETE", "COURSE_WITHDRAW")
    return ("enrolment.created", "course.completed", "enrolment.cancelled")
