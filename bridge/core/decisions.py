"""Operator decisions on review items: the messages of ``bridge.decisions.v1``.

``bridge review link|reject`` publishes a decision; the worker consumes it like any other input,
in the same pipeline, so a decision is applied once, survives replays and is ordered with the
events around it. A link names an *anchor account* of the chosen learner rather than the learner
id, because learner ids can change as evidence arrives while accounts never do.
"""

from __future__ import annotations

from datetime import datetime, timezone
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bridge.core.records import AccountRef
from bridge.errors import BadInput


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

    @field_validator("decided_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("decided_at must carry a time zone")
        return value.astimezone(timezone.utc)

    @model_validator(mode="after")
    def _link_needs_anchor(self) -> OperatorDecision:
        if self.action is DecisionAction.LINK and self.anchor is None:
            raise ValueError("a link decision needs an anchor account")
        return self


def parse_decision(value: bytes) -> OperatorDecision:
    """Parse a decision message, or raise :class:`BadInput` naming what is wrong."""
    try:
        return OperatorDecision.model_validate_json(value)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in err["loc"]) or "message" for err in exc.errors()})
        raise BadInput(
            f"operator decision rejected: invalid or missing {', '.join(fields)}; "
            "re-issue it with `bridge review link|reject`",
            code="invalid_decision",
        ) from None
