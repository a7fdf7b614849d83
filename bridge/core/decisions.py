"""Operator decisions on review items: the messages of ``bridge.decisions.v1``.

``bridge review link|reject`` publishes a decision; the worker consumes it like any other input,
in the same pipeline, so a decision is applied once, survives replays and is ordered with the
events around it. A link names an *anchor account* of the chosen learner rather than the learner
id, because learner ids can change as evidence arrives while accounts never do.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any, NoReturn

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic_core import PydanticCustomError

from bridge.core.normalise import (
    MAX_ID_LENGTH,
    MAX_MESSAGE_BYTES,
    holds_bad_text,
    is_printable,
    may_escape_bad_text,
)
from bridge.core.records import AccountRef, ReviewItem
from bridge.core.signing import key_id_of, sign
from bridge.errors import BadInput

# A note is free text: line breaks and tabs are fine, other control characters, NUL and lone
# surrogates are not (they would reach the store and an operator's terminal).
_NOTE_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_TEXT_ERROR = "invalid_text"
_LONG_ERRORS = frozenset({"string_too_long", "field_too_long"})


class DecisionAction(StrEnum):
    LINK = "link"
    REJECT = "reject"


class OperatorDecision(BaseModel):
    """One operator decision on one review item."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    decision_id: str = Field(min_length=1, max_length=64)
    review_id: str = Field(min_length=1, max_length=64)
    action: DecisionAction
    account: AccountRef = Field(description="The account that raised the review.")
    anchor: AccountRef | None = Field(
        default=None, description="For `link`: an account of the learner the account joins."
    )
    decided_by: str = Field(min_length=1, max_length=128, description="Operator id (not a learner's data).")
    decided_at: datetime
    note: str | None = Field(default=None, max_length=1000)
    key_id: str | None = Field(
        default=None, max_length=64, description="The operator's key that signed the decision (`ed25519:...`)."
    )
    signature: str | None = Field(
        default=None, max_length=128,
        description="Ed25519 signature (base64) over the canonical JSON of every other field.",
    )

    #: The JSON object the decision was parsed from (``parse_decision``): what its signature covers.
    _sent: dict[str, Any] | None = PrivateAttr(default=None)

    def signed_fields(self) -> dict[str, object]:
        """What the signature covers (but itself): the fields as sent when the decision was read
        from a message, else as this model writes them (what ``signed_with`` signs and sends)."""
        return dict(self._sent) if self._sent is not None else self.model_dump(mode="json")

    def signed_with(self, private: Ed25519PrivateKey) -> OperatorDecision:
        """This decision signed by ``private`` (its key id set to the key's)."""
        unsigned = self.model_copy(update={"key_id": key_id_of(private.public_key()), "signature": None})
        return unsigned.model_copy(update={"signature": sign(private, unsigned.signed_fields())})

    @field_validator("decision_id", "review_id", "decided_by", "key_id", "signature")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and not is_printable(value):
            raise PydanticCustomError(_TEXT_ERROR, "must be printable text")
        return value

    @field_validator("account", "anchor")
    @classmethod
    def _account_number(cls, value: AccountRef | None) -> AccountRef | None:
        # AccountRef is the published output model; the input limits of CONTRACT §1 apply here.
        if value is None:
            return value
        if not value.account:
            raise ValueError("the account number must not be empty")
        if len(value.account) > MAX_ID_LENGTH:
            raise PydanticCustomError(
                "field_too_long", "should have at most {max_length} characters", {"max_length": MAX_ID_LENGTH}
            )
        if not is_printable(value.account):
            raise PydanticCustomError(_TEXT_ERROR, "the account number must be printable text")
        return value

    @field_validator("note")
    @classmethod
    def _note_text(cls, value: str | None) -> str | None:
        if value is not None and _NOTE_FORBIDDEN.search(value):
            raise PydanticCustomError(_TEXT_ERROR, "must not hold control characters other than line breaks")
        return value

    @field_validator("decided_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("decided_at must carry a time zone")
        try:
            return value.astimezone(timezone.utc)
        except OverflowError:  # year 1 or 9999 with an offset that leaves the calendar
            raise ValueError("decided_at is out of range") from None

    @model_validator(mode="after")
    def _link_needs_anchor(self) -> OperatorDecision:
        if self.action is DecisionAction.LINK and self.anchor is None:
            raise ValueError("a link decision needs an anchor account")
        return self


_FIELD_NAMES = frozenset(OperatorDecision.model_fields) | frozenset(AccountRef.model_fields)


def parse_decision(value: bytes) -> OperatorDecision:
    """Parse a decision message, or raise :class:`BadInput` naming what is wrong (never a value).

    Codes: ``too_large`` (over 1 MiB, refused unread), ``not_json`` (not strict UTF-8 JSON: bad
    bytes or syntax, NaN or Infinity, a huge integer, absurd nesting), ``invalid_text`` (a NUL or an
    unpaired surrogate anywhere, object keys included; an id, account or operator that is not
    printable text; a control character other than a line break in the note), ``field_too_long``,
    and ``invalid_decision`` for everything else.
    """
    raw = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else bytes(value)
    if len(raw) > MAX_MESSAGE_BYTES:
        raise BadInput(
            f"operator decision rejected: the message is {len(raw):,} bytes, more than the "
            f"{MAX_MESSAGE_BYTES:,} (1 MiB) a message may have; re-issue it with `bridge review link|reject`",
            code="too_large",
        )
    # The model's JSON parser lets NaN through and is not the place to look for NUL characters:
    # decisions come at an operator's pace, so a strict parse first costs nothing that matters.
    try:
        text = raw.decode("utf-8")
        document = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise BadInput(
            "operator decision rejected: the message is not usable UTF-8 JSON (bad bytes or syntax, a key "
            "given twice, NaN or "
            "Infinity, a huge integer, or nesting too deep); re-issue it with `bridge review link|reject`",
            code="not_json",
        ) from None
    if may_escape_bad_text(text) and holds_bad_text(document):
        raise BadInput(
            "operator decision rejected: the message holds a NUL character or an unpaired UTF-16 surrogate; "
            "re-issue it with `bridge review link|reject`",
            code="invalid_text",
        )
    try:
        decision = OperatorDecision.model_validate_json(raw)
    except ValidationError as exc:
        raise _rejected(exc) from None
    if not isinstance(document, dict):
        raise BadInput("operator decision rejected: the message is not a JSON object", code="invalid_decision")
    # The signature covers the fields as they were sent, not as this version of the model would
    # write them again: a field added later, or a change of how a time is written, must not
    # break the signatures of decisions kept forever on the topic.
    decision._sent = document
    return decision


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """An object hook refusing a key given twice: the signature and the model must read one value."""
    document = dict(pairs)
    if len(document) != len(pairs):
        raise ValueError("a key is given twice")
    return document


def _field_of(loc: tuple[int | str, ...]) -> str:
    """The dotted field name of an error location, cut at the first part that is not a model field
    (an unexpected object key is a value from the message and is never repeated)."""
    known = []
    for part in loc:
        if part not in _FIELD_NAMES:
            break
        known.append(str(part))
    return ".".join(known) or "message"


def _rejected(exc: ValidationError) -> BadInput:
    """The BadInput for a failed validation: the fields at fault, grouped by problem, no values."""
    unprintable: set[str] = set()
    too_long: dict[str, int | None] = {}
    invalid: set[str] = set()
    for err in exc.errors():
        field = _field_of(err["loc"])
        if err["type"] == "extra_forbidden":  # AccountRef forbids extra keys: the key is a value
            field = f"{field} (an unexpected field)"
        if err["type"] == _TEXT_ERROR:
            unprintable.add(field)
        elif err["type"] in _LONG_ERRORS:
            too_long[field] = (err.get("ctx") or {}).get("max_length")
        else:
            invalid.add(field)
    problems = []
    if unprintable:
        problems.append(f"not printable text (a control character, NUL or unpaired surrogate): "
                        f"{', '.join(sorted(unprintable))}")
    if too_long:
        problems.append("too long: " + ", ".join(
            f"{field} (at most {limit} characters)" if limit else field for field, limit in sorted(too_long.items())
        ))
    if invalid:
        problems.append(f"invalid or missing {', '.join(sorted(invalid))}")
    code = "invalid_text" if unprintable else "field_too_long" if too_long else "invalid_decision"
    return BadInput(
        f"operator decision rejected: {'; '.join(problems)}; re-issue it with `bridge review link|reject`",
        code=code,
    )


#: The reason code of a well-formed decision that does not fit the review item it names.
DECISION_REJECTED = "decision_rejected"
#: The reason code of a decision that no trusted key signed: unsigned, forged, altered, or signed
#: by a key not trusted for its operator. A security event: the SREs are alerted.
DECISION_UNVERIFIED = "decision_unverified"


def decision_fault(decision: OperatorDecision, item: ReviewItem | None, anchor_learner: str | None,
                   candidates: set[str]) -> str | None:
    """Why ``decision`` must not be applied to ``item`` (CONTRACT §2, rule 9), or ``None``.

    ``anchor_learner`` is the live learner the anchor account belongs to now, ``candidates`` the
    live learners the item's candidates became (learner ids merge as evidence arrives). The
    reasons name what is wrong, never a value.
    """
    if item is None:
        return "operator decision rejected: it names no review item; nothing was changed"
    if item.status != "open":
        return (f"operator decision rejected: its review item is already {item.status}; nothing was changed. "
                "A decision is taken once per review item")
    if item.account != decision.account:
        return ("operator decision rejected: its account is not the account of the review item it names; "
                "nothing was changed")
    if decision.action is DecisionAction.LINK and (anchor_learner is None or anchor_learner not in candidates):
        return ("operator decision rejected: it links to a learner that is not among its review item's "
                "candidates; nothing was changed. Re-issue it with `bridge review link` and one of the candidates")
    return None
