"""Credit rules (CONTRACT §4): a record is derived from the set of facts behind it.

A record is never patched event by event. It is recomputed from every fact (platform event)
that belongs to its (learner, course_key), so the result does not depend on arrival order and a
redelivered fact changes nothing (rules 3, 4, 5 and 7 follow from the derivation below).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal

from pydantic import BaseModel, ConfigDict

from bridge.core import platforms
from bridge.core.events import CanonicalEvent, EventFacts, EventKind
from bridge.core.platforms import Platform
from bridge.core.records import CreditRecord, CreditStatus, Source, record_id_for


class CreditFact(EventFacts):
    """What one platform event contributes to a credit record (no personal data): the event's
    facts (:class:`EventFacts`) with its outcome flattened."""

    passed: bool | None = None
    score: float | None = None
    #: How many distinct contents the fact's event id has shown, the kept one included (CONTRACT
    #: §1: the others were dead-lettered). Each is an event behind the record, so each counts in its
    #: version, and the version does not depend on which content arrived first.
    contents: int = 1

    @classmethod
    def from_event(cls, event: CanonicalEvent) -> CreditFact:
        outcome = event.outcome
        return cls(
            **{name: getattr(event, name) for name in EventFacts.model_fields},
            passed=outcome.passed if outcome else None,
            score=outcome.score if outcome else None,
        )


class RecordState(BaseModel):
    """A credit record without its id and version: equal states mean no change to publish.

    Its fields are the published record's (:class:`CreditRecord`, whose field order is the
    published one), and it is what the ledger stores as a record's state; a test keeps the two
    lists equal, and :meth:`to_record` copies by name.
    """

    model_config = ConfigDict(frozen=True)

    learner_id: str
    course_key: str
    status: CreditStatus
    credits: float
    hours: float | None
    score: float | None
    enrolled_at: datetime | None
    completed_at: datetime | None
    sources: tuple[Source, ...]
    rule: str
    #: The other contents (beyond one per source) that the sources' event ids showed.
    extra_contents: int = 0

    @property
    def record_id(self) -> str:
        return record_id_for(self.learner_id, self.course_key)

    @property
    def events(self) -> int:
        """How many events are behind the record: one per content of each source's event id. A
        record's version is this count, so the same events give the same version in any order."""
        return len(self.sources) + self.extra_contents

    def to_record(self, version: int) -> CreditRecord:
        """The published record at ``version``: the state's fields (a record's, less its id and
        version, which this derives) under the contract's names."""
        fields = {name: getattr(self, name) for name in _RECORD_FIELDS}
        return CreditRecord(record_id=self.record_id, version=version, **fields)


#: The fields a state shares with the published record (all but ``extra_contents``).
_RECORD_FIELDS = tuple(name for name in RecordState.model_fields if name in CreditRecord.model_fields)


def _fmt(number: float) -> str:
    return format(Decimal(str(number)).normalize(), "f")


def union_credits(hours: float, hours_per_credit: float) -> float:
    """Rule 2: ``hours / H`` rounded down to a multiple of 0.5 (decimal arithmetic, no float drift)."""
    halves = (Decimal(str(hours)) * 2 / Decimal(str(hours_per_credit))).to_integral_value(ROUND_FLOOR)
    return float(halves / 2)


# The credit rules a platform can declare (its adapter module names one as ``CREDIT_RULE``).


def hours_rule(fact: CreditFact, hours_per_credit: float) -> tuple[float, str]:
    """Rule 2: the course's study hours over ``H``, rounded down to half credits (``hours/16``)."""
    return union_credits(fact.hours or 0.0, hours_per_credit), f"hours/{_fmt(hours_per_credit)}"


def course_credits_rule(fact: CreditFact, hours_per_credit: float) -> tuple[float, str]:
    """Rule 1: the credits the platform itself gives the course (``course_credits``)."""
    return float(fact.platform_credits or 0.0), "course_credits"


def credit_value(fact: CreditFact, hours_per_credit: float) -> tuple[float, str]:
    """The credits a passed fact is worth, and the rule that says so: its platform's rule."""
    return platforms.rule_of(fact.platform)(fact, hours_per_credit)


def _best_score(facts: list[CreditFact]) -> float | None:
    scores = [f.score for f in facts if f.score is not None]
    return max(scores) if scores else None


def derive_record(
    learner_id: str, course_key: str, facts: Iterable[CreditFact], hours_per_credit: float
) -> RecordState:
    """The record of (learner, course_key) given every fact behind it, in any order."""
    facts = sorted(set(facts), key=lambda f: (f.occurred_at, f.platform, f.event_id))
    if not facts:
        raise ValueError("a credit record needs at least one fact")
    enrolments = [f for f in facts if f.kind is EventKind.ENROLLED]
    withdrawals = [f for f in facts if f.kind is EventKind.WITHDRAWN]
    completions = [f for f in facts if f.kind is EventKind.COMPLETED]
    passes = [f for f in completions if f.passed]
    known_hours = [f.hours for f in facts if f.hours is not None]
    hours = max(known_hours) if known_hours else None
    sources = tuple(
        sorted(
            {Source(platform=f.platform, account=f.account, event_id=f.event_id) for f in facts},
            key=lambda s: (s.platform, s.account, s.event_id),
        )
    )

    if passes:
        # Rules 3, 5 and 6: any pass awards; the larger credit value and best score win, and a
        # later failure or withdrawal cannot take an award away.
        valued = [(credit_value(f, hours_per_credit), f) for f in passes]
        (credits, rule), chosen = max(valued, key=lambda item: (item[0][0], item[0][1], item[1].event_id))
        status, score = CreditStatus.AWARDED, _best_score(passes)
        completed_at = passes[0].occurred_at
        hours = chosen.hours if chosen.hours is not None else hours
    elif completions:
        status, credits, rule = CreditStatus.FAILED, 0.0, "failed"
        score, completed_at = _best_score(completions), completions[-1].occurred_at
    else:
        # Rule 4: withdrawn when the latest withdrawal is not older than the latest enrolment.
        withdrawn = bool(withdrawals) and (
            not enrolments or withdrawals[-1].occurred_at >= enrolments[-1].occurred_at
        )
        status = CreditStatus.WITHDRAWN if withdrawn else CreditStatus.ENROLLED
        credits, rule, score, completed_at = 0.0, "not_completed", None, None

    return RecordState(
        learner_id=learner_id,
        course_key=course_key,
        status=status,
        credits=credits,
        hours=hours,
        score=score,
        enrolled_at=enrolments[0].occurred_at if enrolments else None,
        completed_at=completed_at,
        sources=sources,
        rule=rule,
        extra_contents=sum(f.contents - 1 for f in facts),
    )
