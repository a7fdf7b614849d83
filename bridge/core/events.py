"""Canonical events: what both platforms' messages mean, in one shape.

The adapters (``adapters/union.py``, ``adapters/ou.py``) turn raw platform messages into
:class:`CanonicalEvent`. Everything downstream of the adapters works only with these models.

A canonical event still carries the *raw* personal evidence (document number, name, mobile) in
memory, already normalised; :mod:`bridge.core.pseudonym` turns it into keyed digests before
anything is stored. ``PersonEvidence`` hides those values from ``repr`` so they never reach a log.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Platform(StrEnum):
    """The two source platforms, by the short name used in every output."""

    UNION = "union"
    OU = "ou"


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


class CanonicalEvent(_Frozen):
    """One platform event, parsed and normalised.

    ``occurred_at`` is timezone-aware UTC. ``hours`` is the course's study/contact hours when the
    platform gives them; ``platform_credits`` is the open university's own credit value (``None``
    for union events). ``outcome`` is set exactly when ``kind`` is ``COMPLETED``.
    """

    platform: Platform
    event_id: str
    kind: EventKind
    occurred_at: datetime
    account: str
    course_id: str
    hours: float | None = None
    platform_credits: float | None = None
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
        return (self.platform.value, self.account)
