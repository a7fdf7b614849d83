"""Every input of the console, checked where it enters: size, encoding, characters, shape.

A request body is read up to :data:`MAX_BODY` bytes and must be a URL-encoded form in strict
UTF-8; each field then has its own length and character rule. Whatever fails is a
:class:`FormError` with a 4xx status and a sentence that names the field (never its value).
Nothing downstream (a model, the database, the broker) is the first to meet bad text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl

from starlette.requests import Request

from bridge.core import platforms
from bridge.core.normalise import is_printable
from bridge.core.records import ReviewKind
from bridge.core.signing import OPERATOR_ID
from bridge.store.reviews import Cursor, QueueFilter

#: The largest form the console reads: a bulk decision of 100 items is under 10 KiB.
MAX_BODY = 64 * 1024
MAX_FIELDS = 200
#: Items decided in one bulk decision.
MAX_BULK = 100
PAGE_SIZES = (25, 50, 100)

REVIEW_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
LEARNER_ID = re.compile(r"lrn_[A-Za-z0-9_-]{1,60}")
NONCE = re.compile(r"[0-9a-f]{32}")
COORDINATES = re.compile(r"([A-Za-z0-9._-]{1,249}):([0-9]{1,9}):([0-9]{1,18})")
REASON_CODE = re.compile(r"[a-z0-9_]{1,64}")
_NOTE_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


class FormError(Exception):
    """An input the console refuses, with the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


async def read_form(request: Request) -> dict[str, list[str]]:
    """The URL-encoded form of ``request``: each field's values, or :class:`FormError`."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise FormError("the console takes URL-encoded forms only", 415)
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        raise FormError(f"the form is larger than {MAX_BODY // 1024} KiB", 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise FormError(f"the form is larger than {MAX_BODY // 1024} KiB", 413)
    return _fields(bytes(body), "form")


def query(request: Request) -> dict[str, str]:
    """The query string of ``request``, strictly decoded, each parameter given once."""
    raw: bytes = request.scope.get("query_string", b"")
    if len(raw) > MAX_BODY:
        raise FormError(f"the query is longer than {MAX_BODY // 1024} KiB", 414)
    result = {}
    for name, values in _fields(raw, "query").items():
        if len(values) > 1:
            raise FormError(f"{name if name.isidentifier() and len(name) <= 32 else 'a parameter'}: given more than once")
        result[name] = values[0]
    return result


def _fields(body: bytes, what: str) -> dict[str, list[str]]:
    try:
        text = body.decode("ascii")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False, max_num_fields=MAX_FIELDS,
                          encoding="utf-8", errors="strict")
    except UnicodeError:
        raise FormError(f"the {what} is not URL-encoded UTF-8") from None
    except ValueError:
        raise FormError(f"the {what} has more than {MAX_FIELDS} fields") from None
    fields: dict[str, list[str]] = {}
    for name, value in pairs:
        fields.setdefault(name, []).append(value)
    return fields


def one(fields: dict[str, list[str]], name: str, *, required: bool = True) -> str | None:
    values = fields.get(name, [])
    if len(values) > 1:
        raise FormError(f"{name}: given more than once")
    if not values or values[0] == "":
        if required:
            raise FormError(f"{name}: missing")
        return None
    return values[0]


def text(value: str | None, name: str, *, limit: int, pattern: re.Pattern[str] | None = None,
         what: str = "") -> str | None:
    """``value`` if it is at most ``limit`` printable characters (and matches ``pattern``)."""
    if value is None:
        return None
    if len(value) > limit:
        raise FormError(f"{name}: at most {limit} characters")
    if "\x00" in value or not is_printable(value):
        raise FormError(f"{name}: must be printable text (no control characters, NUL or unpaired surrogates)")
    if pattern is not None and not pattern.fullmatch(value):
        raise FormError(f"{name}: {what or 'not in the expected form'}")
    return value


def note(value: str | None) -> str | None:
    """An operator's note: free text up to 1,000 characters, line breaks allowed."""
    if value is None:
        return None
    if len(value) > 1000:
        raise FormError("note: at most 1000 characters")
    if _NOTE_FORBIDDEN.search(value):
        raise FormError("note: must not hold control characters other than line breaks")
    return value.strip() or None


def review_id(value: str | None, name: str = "review") -> str:
    checked = text(value, name, limit=64, pattern=REVIEW_ID, what="a review id, e.g. rv_0123abcd")
    if checked is None:
        raise FormError(f"{name}: missing")
    return checked


def operator_id(value: str | None) -> str:
    checked = text(value, "operator", limit=128, pattern=OPERATOR_ID, what="letters, digits and . _ @ - only")
    if checked is None:
        raise FormError("operator: missing")
    return checked


@dataclass(frozen=True)
class QueueQuery:
    """The queue's filters, order, page size and position, from the query string."""

    wanted: QueueFilter
    newest_first: bool
    size: int
    after: Cursor | None
    before: Cursor | None
    older_than_h: int | None
    newer_than_h: int | None

    def params(self, **changes: str | None) -> dict[str, str]:
        """The query string of this view (without its position), with ``changes``."""
        base: dict[str, str | None] = {
            "kind": self.wanted.kind, "platform": self.wanted.platform, "event": self.wanted.event_id,
            "older_than_h": str(self.older_than_h) if self.older_than_h is not None else None,
            "newer_than_h": str(self.newer_than_h) if self.newer_than_h is not None else None,
            "sort": "newest" if self.newest_first else "oldest", "size": str(self.size),
        }
        base.update(changes)
        return {k: v for k, v in base.items() if v}


def _hours(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 6:
        raise FormError(f"{name}: a whole number of hours (0 to 999999)")
    return int(value)


def cursor(value: str | None, name: str) -> Cursor | None:
    """A queue position ``TIME~REVIEW_ID`` (written by the console's own paging links)."""
    if value is None:
        return None
    text(value, name, limit=120)
    at, sep, rid = value.partition("~")
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        moment = None
    if not sep or moment is None or not REVIEW_ID.fullmatch(rid):
        raise FormError(f"{name}: not a queue position (follow the console's own paging links)")
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc), rid)


def write_cursor(at: datetime, rid: str) -> str:
    return f"{at.astimezone(timezone.utc).isoformat()}~{rid}"


def queue_query(params: dict[str, str], now: datetime) -> QueueQuery:
    """The queue's query from the query string, every value checked."""
    for name, value in params.items():
        text(value, name if len(name) <= 32 and name.isidentifier() else "a parameter", limit=200)
    kind = params.get("kind") or None
    if kind is not None and kind not in {k.value for k in ReviewKind}:
        raise FormError(f"kind: one of {', '.join(k.value for k in ReviewKind)}")
    platform = params.get("platform") or None
    if platform is not None and platform not in platforms.names():
        raise FormError(f"platform: one of {', '.join(platforms.names())}")
    event = text(params.get("event") or None, "event", limit=128)
    older, newer = _hours(params.get("older_than_h") or None, "older_than_h"), _hours(params.get("newer_than_h") or None, "newer_than_h")
    sort = params.get("sort") or "oldest"
    if sort not in ("oldest", "newest"):
        raise FormError("sort: oldest or newest")
    size_text = params.get("size") or str(PAGE_SIZES[1])
    if size_text not in {str(s) for s in PAGE_SIZES}:
        raise FormError(f"size: one of {', '.join(map(str, PAGE_SIZES))}")
    after, before = cursor(params.get("after") or None, "after"), cursor(params.get("before") or None, "before")
    if after and before:
        raise FormError("after and before: one position at a time")
    wanted = QueueFilter(
        kind=kind, platform=platform, event_id=event,
        raised_before=now - timedelta(hours=older) if older is not None else None,
        raised_after=now - timedelta(hours=newer) if newer is not None else None,
    )
    return QueueQuery(wanted, sort == "newest", int(size_text), after, before, older, newer)
