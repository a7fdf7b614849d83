"""Canonical events: what both platforms' messages mean, in one shape.

The adapters (one module per platform in ``adapters/``) turn raw platform messages into
:class:`CanonicalEvent`. Everything downstream of the adapters works only with these models.

A canonical event still carries the *raw* personal evidence (document number, name, mobile) in
memory, already normalised; :mod:`bridge.core.pseudonym` turns it into keyed digests before
anything is stored. ``PersonEvidence`` hides those values from ``repr`` so they never reach a log.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bridge.core.platforms import Platform


class EventKind(StrEnum):
    """What happened, independent of each platform's vocabulary."""

    ENROLLED = "enrolled"
    COMPLETED = "completed"
    WITHDRAWN = "withdrawn"


class DocumentType(StrEnum):
    """Identity document types (CONTRACT §1, ``identity_document.type``)."""

    RESIDENT_ID = "RESIDENT_ID"
    PASSPORT = "PASSPORT"
    HK_MACAO_TAIWAN_PERMIT = "HK_MACAO_TAIWAN_PERMIT"


class DocumentProblem(StrEnum):
    """Why a supplied document number could not be used (a data-quality problem, CONTRACT §3.2)."""

    BAD_LENGTH = "bad_length"
    BAD_CHARACTERS = "bad_characters"
    BAD_DATE = "bad_date"
    BAD_CHECKSUM = "bad_checksum"
    EMPTY_NUMBER = "empty_number"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class IdentityDocument(_Frozen):
    """A valid, normalised identity document number (resident IDs upgraded to 18 characters)."""

    type: DocumentType
    number: str = Field(repr=False)


class PersonEvidence(_Frozen):
    """Normalised identity evidence carried by one event. Never logged, never stored as is.

    ``document`` is set only when the number is valid; an invalid one sets ``document_problem``
    instead and links nothing. ``name_key`` and ``mobile_key`` are comparison keys (normalised
    name, 11-digit mobile), or ``None`` when absent or unusable.
    """

    document: IdentityDocument | None = Field(default=None, repr=False)
    document_problem: DocumentProblem | None = None
    name_key: str | None = Field(default=None, repr=False)
    mobile_key: str | None = Field(default=None, repr=False)


class Outcome(_Frozen):
    """The result of a completion."""

    passed: bool
    score: float | None = None


class EventFacts(_Frozen):
    """What one platform event says about a course: the fact's fields, written once.

    :class:`CanonicalEvent` carries them with the event's outcome and identity evidence;
    :class:`bridge.core.credits.CreditFact` with the outcome flattened; the ledger's columns and
    rows of facts are derived from that model's fields.
    """

    platform: Platform
    event_id: str
    kind: EventKind
    occurred_at: datetime
    account: str
    course_id: str
    hours: float | None = None
    platform_credits: float | None = None


class CanonicalEvent(EventFacts):
    """One platform event, parsed and normalised.

    ``occurred_at`` is timezone-aware UTC. ``hours`` is the course's study/contact hours when the
    platform gives them; ``platform_credits`` is the platform's own credit value when it gives one
    (the open university's). ``outcome`` is set exactly when ``kind`` is ``COMPLETED``.
    """

    outcome: Outcome | None = None
    person: PersonEvidence = PersonEvidence()

    @field_validator("occurred_at")
    @classmethod
    def _must_be_aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("occurred_at must be timezone-aware")
        return value

    @property
    def account_ref(self) -> tuple[str, str]:
        """``(platform, account)``: the identity of the platform account (CONTRACT §3.1)."""
        return (self.platform, self.account)
