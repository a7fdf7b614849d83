"""One learner's credits as a subscriber sees them: a pure view over the published values.

Built from the latest values of ``learner.identities.v1`` and ``credit.records.v1`` (what those
compacted topics converge to), never from the bridge's own database, so ``bridge transcript``
and ``bridge export`` show exactly what downstream teams can see. A learner that was merged
into another resolves to the survivor, whose records carry the merged learner's credits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from bridge.core.records import CreditRecord, CreditStatus, LearnerIdentity
from bridge.errors import BridgeError, DataError


class UnknownLearner(BridgeError):
    """No learner ``learner_id`` has been published on ``learner.identities.v1``."""

    def __init__(self, learner_id: str) -> None:
        super().__init__(f"no learner {learner_id} on learner.identities.v1 (is the id right, and has the bridge caught up?)")
        self.learner_id = learner_id


class BrokenMergeChain(DataError):
    """Following ``merged_into`` from a learner loops or ends at an unpublished learner."""

    def __init__(self, path: tuple[str, ...], problem: str) -> None:
        super().__init__(f"cannot follow merged_into {' -> '.join(path)}: {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True)
class Totals:
    """What a transcript adds up to."""

    awarded_credits: float
    awarded_courses: int
    by_status: Mapping[str, int]


@dataclass(frozen=True)
class Transcript:
    """The live learner behind ``requested_id`` and its current credit records."""

    requested_id: str
    learner: LearnerIdentity
    merge_path: tuple[str, ...]
    """The learner ids from ``requested_id`` to the survivor; one id when there was no merge."""
    records: tuple[CreditRecord, ...]

    @property
    def learner_id(self) -> str:
        return self.learner.learner_id

    @property
    def was_merged(self) -> bool:
        return len(self.merge_path) > 1

    @property
    def awarded(self) -> tuple[CreditRecord, ...]:
        return tuple(r for r in self.records if r.status is CreditStatus.AWARDED)

    def totals(self) -> Totals:
        awarded = self.awarded
        # Credits are decimal figures (1.5, 2.0): add them as decimals so 0.1 + 0.2 stays 0.3.
        credits = sum((Decimal(str(r.credits)) for r in awarded), Decimal(0))
        counts = Counter(r.status.value for r in self.records)
        return Totals(
            awarded_credits=float(credits),
            awarded_courses=len(awarded),
            by_status={status.value: counts.get(status.value, 0) for status in CreditStatus},
        )

    def to_json(self) -> dict[str, Any]:
        """The transcript as plain JSON values (``bridge transcript --json``)."""
        totals = self.totals()
        return {
            "requested_learner_id": self.requested_id,
            "learner_id": self.learner_id,
            "merge_path": list(self.merge_path),
            "accounts": [a.model_dump(mode="json") for a in self.learner.accounts],
            "records": [r.model_dump(mode="json") for r in self.records],
            "totals": {
                "awarded_credits": totals.awarded_credits,
                "awarded_courses": totals.awarded_courses,
                "by_status": dict(totals.by_status),
            },
        }


def resolve_learner(
    learner_id: str, identities: Mapping[str, LearnerIdentity]
) -> tuple[LearnerIdentity, tuple[str, ...]]:
    """The live learner ``learner_id`` ends at by following ``merged_into``, and the path taken."""
    if learner_id not in identities:
        raise UnknownLearner(learner_id)
    path = [learner_id]
    learner = identities[learner_id]
    while learner.merged_into is not None:
        target = learner.merged_into
        if target in path:
            raise BrokenMergeChain((*path, target), "it loops")
        path.append(target)
        if target not in identities:
            raise BrokenMergeChain(tuple(path), f"{target} is not on learner.identities.v1 yet")
        learner = identities[target]
    return learner, tuple(path)


def build_transcript(
    learner_id: str,
    identities: Mapping[str, LearnerIdentity],
    records: Iterable[CreditRecord],
) -> Transcript:
    """The transcript of ``learner_id`` (or of the learner it was merged into)."""
    learner, path = resolve_learner(learner_id, identities)
    mine = [r for r in records if r.learner_id == learner.learner_id]
    mine.sort(key=_record_order)
    return Transcript(requested_id=learner_id, learner=learner, merge_path=path, records=tuple(mine))


def parse_published(model: type[BaseModel], data: Mapping[str, Any]) -> Any:
    """``data`` as ``model``, ignoring fields this version does not know.

    The published models forbid extra fields on the way out, but CONTRACT §2 lets the bridge add
    fields at any time; a subscriber tool must keep reading a topic written by a newer bridge.
    """
    known = model.model_fields
    return model.model_validate({k: v for k, v in data.items() if k in known})


def _record_order(record: CreditRecord) -> tuple[int, datetime | str, str]:
    # Completed courses first, in the order they were completed; the rest by course.
    if record.completed_at is not None:
        return (0, record.completed_at, record.course_key)
    return (1, record.course_key, record.record_id)
