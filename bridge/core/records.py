"""Published value models: the output contract of CONTRACT §2.

These models are the single source of the JSON Schemas in ``topics/schemas/``. They carry no
resident ID, phone or name in any form: only learner ids, platform account numbers, course keys
and event ids.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bridge.core.platforms import Platform


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CreditStatus(StrEnum):
    ENROLLED = "ENROLLED"
    AWARDED = "AWARDED"
    FAILED = "FAILED"
    WITHDRAWN = "WITHDRAWN"


class LinkMethod(StrEnum):
    """How an account came to belong to its learner (CONTRACT §2)."""

    ACCOUNT = "account"
    RESIDENT_ID = "resident_id"
    IDENTITY_DOCUMENT = "identity_document"
    NAME_MOBILE = "name_mobile"
    OPERATOR = "operator"


class ReviewKind(StrEnum):
    AMBIGUOUS_MATCH = "ambiguous_match"
    CONFLICTING_DOCUMENT = "conflicting_document"


class Source(_Out):
    """One platform event behind a credit record."""

    platform: Platform
    account: str
    event_id: str


class CreditRecord(_Out):
    """A unified credit record, the value of ``credit.records.v1``."""

    record_id: str = Field(description="Deterministic from (learner_id, course_key).")
    learner_id: str
    course_key: str = Field(description="Canonical course; equivalent courses share one key.")
    status: CreditStatus
    credits: float
    hours: float | None
    score: float | None
    enrolled_at: datetime | None
    completed_at: datetime | None
    sources: list[Source]
    version: int = Field(ge=1, description="Rises by one each time the record changes.")
    rule: str = Field(description="Which credit rule produced `credits`, e.g. `hours/16`.")


class AccountRef(_Out):
    platform: Platform
    account: str


class Link(_Out):
    """Why one account belongs to the learner."""

    platform: Platform
    account: str
    method: LinkMethod
    linked_at: datetime
    event_id: str | None = Field(default=None, description="The event that made the link.")


class LearnerIdentity(_Out):
    """A unified learner, the value of ``learner.identities.v1``."""

    learner_id: str
    accounts: list[AccountRef]
    links: list[Link]
    merged_into: str | None
    version: int = Field(ge=1)


class ReviewItem(_Out):
    """An identity decision the bridge will not take alone, the value of ``bridge.review.v1``."""

    review_id: str
    kind: ReviewKind
    account: AccountRef
    candidates: list[str]
    raised_at: datetime
    event_id: str | None = None
    status: Literal["open", "linked", "rejected"] = Field(
        default="open", description="`linked` or `rejected` once an operator decided."
    )


class DeadLetter(_Out):
    """A message the bridge could not process, the value of ``bridge.deadletter.v1``."""

    topic: str
    partition: int
    offset: int
    reason: str = Field(description="A sentence an operator can act on.")
    reason_code: str = Field(description="Stable, machine-readable reason (for metrics).")
    payload_sha256: str | None = Field(
        description="SHA-256 (hex) of the original message value; null only when the bridge no longer "
        "holds the bytes (a content that lost to another content of the same event id after it was processed)."
    )
    payload_bytes: int | None = Field(default=None, description="Size of the original message value.")
    payload_encrypted: str | None = Field(
        description="The original message value sealed with AES-256-GCM under the dead-letter key "
        "`key_id`, bound to this letter's topic/partition/offset: base64 of version byte 0x01, 12-byte "
        "nonce, ciphertext and 16-byte tag. Only `bridge deadletters show|replay` given the key can read "
        "it. Null when the value is too large to carry within the message bound (its digest identifies "
        "it) or no longer held."
    )
    key_id: str | None = Field(
        description="Id of the dead-letter key `payload_encrypted` is sealed under; null when no payload is carried."
    )
    dead_lettered_at: datetime
    source_file: str | None = Field(
        default=None,
        description="For a line of a file loaded by `bridge backfill`: the file's name; `partition` is then -1 "
        "and `offset` the line number. Null for a message consumed from Kafka.",
    )


#: CONTRACT §1/§2: no message in or out exceeds 1 MiB.
MESSAGE_BOUND = 1_048_576
#: The largest value the bridge sends: the bound less room for the key and the record framing.
OUTPUT_VALUE_BOUND = 1_000_000
#: The largest original payload a dead letter carries: sealing adds 29 bytes and base64 makes it 4/3
#: larger, and the rest of the dead letter (reason, coordinates) must fit beside it within
#: :data:`OUTPUT_VALUE_BOUND`.
DEADLETTER_PAYLOAD_BOUND = 700_000
#: The longest source key a dead letter keeps as its own key (account numbers are at most 128
#: characters); a longer key is replaced by its digest.
DEADLETTER_KEY_BOUND = 512


def stable_id(prefix: str, *parts: str) -> str:
    """A deterministic, readable id: ``prefix`` + 24 hex of SHA-256 over the parts."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:24]
    return f"{prefix}_{digest}"


def record_id_for(learner_id: str, course_key: str) -> str:
    """The record id of (learner, course): replaying the same input gives the same id."""
    return stable_id("cr", learner_id, course_key)


def learner_id_for(platform: str, account: str) -> str:
    """The learner id founded by a platform account."""
    return stable_id("lrn", platform, account)


Json = dict[str, object]
OutputTopicName = Literal[
    "credit.records.v1", "learner.identities.v1", "bridge.review.v1", "bridge.deadletter.v1"
]
