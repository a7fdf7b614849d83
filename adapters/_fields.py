"""Strict reading of one raw platform message: every failure is a BadInput naming the JSON path.

Reasons name fields, the JSON type found and what was expected, never a value from the message
(not even the event id or an unknown event type: CONTRACT §2), so they are safe for logs and the
dead-letter topic; the dead letter's topic, partition and offset say which message it was.

Every edge validates first (CONTRACT §1): a message over 1 MiB is refused before it is decoded, a
NUL or an unpaired surrogate anywhere in it (object keys included) is bad input, and account
numbers, event ids and course ids are checked for length and printable text before anything
stores, hashes or encodes them.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NoReturn

from bridge.core.normalise import (
    MAX_ID_LENGTH,
    MAX_MESSAGE_BYTES,
    MAX_NAME_LENGTH,
    holds_bad_text,
    is_printable,
    may_escape_bad_text,
)
from bridge.errors import BadInput

# A plausibility window, not a business rule: it catches seconds or microseconds sent as
# milliseconds (both platforms went live long after 2000).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)

_MISSING: Any = object()


@functools.lru_cache(maxsize=256)
def _keys_of(path: str) -> tuple[str, ...]:
    """A dotted path's keys (the adapters use a few dozen fixed paths: split each once)."""
    return tuple(path.split("."))


def _show(keys: tuple[str, ...]) -> str:
    """How reasons write a path: dotted, with a key that holds a dot as ``["key"]``."""
    shown = ""
    for key in keys:
        if "." in key or not key:
            shown += f'["{key}"]'
        else:
            shown += f".{key}" if shown else key
    return shown


class KeyPath(str):
    """A path given key by key, for keys that hold dots (xAPI extension IRIs).

    It is the path as reasons write it (``context.extensions["https://x.cn/xapi/mobile"]``), so
    every :class:`Message` method takes it where it takes a dotted path; :meth:`Message.get` follows
    :attr:`keys` instead of splitting the text at its dots.
    """

    keys: tuple[str, ...]

    def __new__(cls, *keys: str) -> KeyPath:
        if not keys:
            raise ValueError("a path needs at least one key")
        path = super().__new__(cls, _show(keys))
        path.keys = keys
        return path


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def json_type(value: Any) -> str:
    """The JSON type of a decoded value, as an operator would name it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


class Message:
    """A decoded message being read field by field; errors name the platform and the field."""

    def __init__(self, data: dict[str, Any], platform: str) -> None:
        self._data = data
        self._platform = platform

    @classmethod
    def decode(cls, value: bytes | None, platform: str) -> Message:
        """Decode a Kafka message value that must be a UTF-8 JSON object."""
        where = f"{platform} message"
        if value is None:
            raise BadInput(f"{where} has no value (null); expected a UTF-8 JSON object.", code="not_json")
        raw = bytes(value)
        if len(raw) > MAX_MESSAGE_BYTES:
            raise BadInput(
                f"{where} is {len(raw):,} bytes, more than the {MAX_MESSAGE_BYTES:,} (1 MiB) a message may have.",
                code="too_large",
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadInput(
                f"{where} is not valid UTF-8 (bad byte at offset {exc.start}).", code="not_utf8"
            ) from None
        try:
            data = json.loads(text, parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            raise BadInput(
                f"{where} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}).",
                code="not_json",
            ) from None
        except (ValueError, RecursionError):
            # NaN/Infinity, integers beyond Python's digit limit, or absurd nesting depth.
            raise BadInput(
                f"{where} is not usable JSON (NaN or Infinity, a huge integer, or nesting too deep).",
                code="not_json",
            ) from None
        # Only a \u escape can put a NUL or a lone surrogate into a string: walk the document
        # only when the text holds one of those escapes.
        if may_escape_bad_text(text) and holds_bad_text(data):
            raise BadInput(
                f"{where} holds a NUL character or an unpaired UTF-16 surrogate (a \\u0000 or lone "
                "\\ud800-\\udfff escape) in a string or an object key; expected UTF-8 text.",
                code="invalid_text",
            )
        if not isinstance(data, dict):
            raise BadInput(f"{where} is {json_type(data)}; expected a JSON object.", code="not_object")
        return cls(data, platform)

    def fail(self, code: str, text: str) -> NoReturn:
        """Raise BadInput with ``text`` prefixed by the platform whose message it is."""
        raise BadInput(f"{self._platform} message: {text}", code=code)

    def get(self, path: str) -> Any:
        """The value at a dotted path or :class:`KeyPath`, or ``_MISSING`` when it or a parent is absent or null."""
        node: Any = self._data
        keys = path.keys if isinstance(path, KeyPath) else _keys_of(path)
        for depth, key in enumerate(keys):
            if depth and type(node) is not dict and not isinstance(node, Mapping):
                parent = _show(keys[:depth])
                self.fail("invalid_field", f"field {parent} is {json_type(node)}; expected a JSON object.")
            node = node.get(key)
            if node is None:
                return _MISSING
        return node

    def present(self, path: str) -> bool:
        """Whether ``path`` holds a value other than null or a blank string."""
        value = self.get(path)
        return value is not _MISSING and not (isinstance(value, str) and not value.strip())

    def required_text(self, path: str, what: str) -> str:
        """A non-blank string, stripped. Missing, null or blank is ``missing_field``."""
        value = self.optional_text(path, what)
        if value is None:
            self.fail("missing_field", f"field {path} is missing or empty; "
                      f"expected {what} (a non-empty string).")
        return value

    def required_id(self, path: str, what: str) -> str:
        """An account number, event id or course id: ``required_text`` of at most 128 printable characters.

        Over-long is ``field_too_long``; a control, format, private-use or unassigned character
        (see :func:`bridge.core.normalise.is_printable`) is ``invalid_text``.
        """
        value = self.required_text(path, what)
        if len(value) > MAX_ID_LENGTH:
            self.fail("field_too_long", f"field {path} is longer than {MAX_ID_LENGTH} characters; "
                      f"expected {what} of at most {MAX_ID_LENGTH} characters.")
        if not is_printable(value):
            self.fail("invalid_text", f"field {path} holds a character that is not printable text (a control, "
                      f"format, private-use or unassigned character); expected {what} as printable text.")
        return value

    def optional_name(self, path: str, what: str) -> str | None:
        """A person's name: ``optional_text`` of at most 64 characters, else ``field_too_long``."""
        value = self.optional_text(path, what)
        if value is not None and len(value) > MAX_NAME_LENGTH:
            self.fail("field_too_long", f"field {path} is longer than {MAX_NAME_LENGTH} characters; "
                      f"expected {what} of at most {MAX_NAME_LENGTH} characters.")
        return value

    def optional_text(self, path: str, what: str) -> str | None:
        """A stripped string, or ``None`` when missing, null or blank."""
        value = self.get(path)
        if value is _MISSING:
            return None
        if not isinstance(value, str):
            self.fail("invalid_field", f"field {path} is {json_type(value)}; expected {what} as a string.")
        return value.strip() or None

    def required_number(self, path: str, what: str) -> float:
        """A finite number >= 0. Missing or null is ``missing_field``."""
        value = self.optional_number(path, what)
        if value is None:
            self.fail("missing_field", f"field {path} is missing; expected {what} (a number >= 0).")
        return value

    def optional_number(self, path: str, what: str, *, minimum: float | None = 0) -> float | None:
        """A finite number (>= ``minimum`` unless it is ``None``), or ``None`` when missing or blank."""
        value = self.get(path)
        if value is _MISSING or (isinstance(value, str) and not value.strip()):
            return None
        bound = "" if minimum is None else f" >= {minimum:g}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            found = json_type(value)
            self.fail("invalid_field", f"field {path} is {found}; expected {what} as a number{bound}.")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number) or (minimum is not None and number < minimum):
            self.fail("invalid_field", f"field {path} is out of range; "
                      f"expected {what} as a finite number{bound}.")
        return number

    def required_bool(self, path: str, what: str) -> bool:
        """A JSON boolean. Missing or null is ``missing_field``."""
        value = self.get(path)
        if value is _MISSING:
            self.fail("missing_field", f"field {path} is missing; expected {what} (true or false).")
        if not isinstance(value, bool):
            found = json_type(value)
            self.fail("invalid_field", f"field {path} is {found}; expected {what} (true or false).")
        return value

    def choice(self, path: str, what: str, choices: Mapping[str, Any], *, code: str = "invalid_field") -> Any:
        """The mapped value of a required string that must be one of ``choices`` (matched exactly)."""
        value = self.required_text(path, what)
        if value not in choices:
            allowed = ", ".join(choices)
            self.fail(code, f"field {path} has an unknown value; expected one of {allowed}.")
        return choices[value]

    def in_window(self, path: str, moment: datetime) -> datetime:
        """``moment`` if it lies in the plausible window, else ``invalid_time``."""
        if not EARLIEST <= moment < LATEST:
            years = f"{EARLIEST.year}-{LATEST.year - 1}"
            self.fail("invalid_time", f"field {path} is outside {years}; "
                      "check the sender's clock and time unit.")
        return moment
