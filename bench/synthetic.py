"""The scale test's synthetic learners: learner ``i`` is a pure function of ``i``.

Valid and unique identity data (resident ID, accounts, mobile) that never collides with the
traffic simulator's persons, and a small course history per learner. :mod:`bench.loader` turns
the histories into registry rows; :mod:`bench.workload` sends new events for the same learners.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from bridge.core.events import CanonicalEvent, DocumentType, EventKind, Outcome, Platform
from bridge.core.identity import AccountKey
from bridge.core.normalise import person_evidence, resident_id_check_character
from adapters._ou_sim import COURSES as OU_COURSES
from adapters._union_sim import COURSES as UNION_COURSES

#: At most this many learners: the account and mobile numbers below have 7 and 8 digits of index.
MAX_LEARNERS = 10_000_000
#: A region code the traffic simulator never uses (济南市历下区), and account prefixes it never
#: uses either, so preloaded learners never collide with simulated persons.
REGION = "370102"
UNION_PREFIX = "GH37"
OU_PREFIX = "253701"
MOBILE_PREFIX = "199"
#: Family name absent from the simulator's list, for the same reason.
FAMILY_NAME = "欧阳"
GIVEN_NAMES = ("明", "华", "丽", "强", "敏", "静", "军", "芳", "磊", "洋", "艳", "勇")
#: Histories start here; the simulator's window is March-June 2024, the preloaded past is before.
HISTORY_START = datetime(2023, 3, 1, 2, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Course:
    """One course a synthetic learner took: enrolled, then completed (passed or failed)."""

    platform: Platform
    course_id: str
    title: str
    hours: float
    credits: float | None  # the open university's own credits; None on the union platform
    enrolled_at: datetime
    completed_at: datetime
    passed: bool
    score: float


@dataclass(frozen=True)
class SyntheticLearner:
    """Learner ``index`` of the scale test: a pure function of the index, valid identity data."""

    index: int
    union_no: str | None
    ou_no: str | None
    resident_id: str
    name: str
    mobile: str
    courses: tuple[Course, ...]

    @property
    def accounts(self) -> list[AccountKey]:
        """Its platform accounts, in account order (the first one anchors the learner)."""
        found = []
        if self.ou_no:
            found.append(AccountKey("ou", self.ou_no))
        if self.union_no:
            found.append(AccountKey("union", self.union_no))
        return sorted(found)

    @property
    def learner_id(self) -> str:
        """Its learner id: every account holds the resident ID, so the smallest one anchors."""
        return self.accounts[0].learner_id

    def account_on(self, platform: Platform) -> str | None:
        return self.union_no if platform == "union" else self.ou_no


def _bits(index: int) -> int:
    return int.from_bytes(hashlib.blake2b(index.to_bytes(8, "big"), digest_size=16, person=b"bridge-bench").digest())


def synthetic_learner(index: int) -> SyntheticLearner:
    """Learner ``index``: 36% union only, 40% on both platforms, 24% open university only.

    Mirrors the simulator's mix (overlap 0.4, the union platform the larger one). Every learner
    has a valid, unique resident ID (birth date and serial from the index), a unique mobile and
    one or two courses per platform, each enrolled and then completed (one in ten failed). The
    anchoring account's course comes first, so the history never involved a merge.
    """
    if not 0 <= index < MAX_LEARNERS:
        raise ValueError(f"learner index must be in [0, {MAX_LEARNERS}), got {index}")
    h = _bits(index)
    mix, h = h % 100, h // 100
    on_union, on_ou = mix < 76, mix >= 36
    born = date(1960, 1, 1) + timedelta(days=index // 1000)
    first17 = f"{REGION}{born:%Y%m%d}{index % 1000:03d}"
    given, h = GIVEN_NAMES[h % len(GIVEN_NAMES)], h // len(GIVEN_NAMES)
    day, h = h % 300, h // 300
    courses: list[Course] = []
    # "ou" sorts before "union": the open-university account anchors a two-platform learner.
    platforms = [p for p, on in (("ou", on_ou), ("union", on_union)) if on]
    # Single-platform learners take one or two courses there; two-platform learners one on each.
    per_platform, h = (1 if len(platforms) == 2 else 1 + h % 2), h // 2
    for platform in platforms:
        catalogue = UNION_COURSES if platform == "union" else OU_COURSES
        first, h = h % len(catalogue), h // len(catalogue)
        for k in range(per_platform):
            course = catalogue[(first + 5 * k) % len(catalogue)]
            enrolled = HISTORY_START + timedelta(days=day + 7 * len(courses), minutes=h % 600)
            passed, h = h % 10 != 0, h // 10
            score, h = float(60 + h % 40 if passed else 30 + h % 30), h // 40
            courses.append(
                Course(
                    platform=platform,
                    course_id=course[0],
                    title=course[1],
                    hours=float(course[2] if platform == "union" else course[3]),
                    credits=None if platform == "union" else float(course[2]),
                    enrolled_at=enrolled,
                    completed_at=enrolled + timedelta(days=30),
                    passed=passed,
                    score=score,
                )
            )
    return SyntheticLearner(
        index=index,
        union_no=f"{UNION_PREFIX}{index:08d}" if on_union else None,
        ou_no=f"{OU_PREFIX}{index:07d}" if on_ou else None,
        resident_id=first17 + resident_id_check_character(first17),
        name=FAMILY_NAME + given,
        mobile=f"{MOBILE_PREFIX}{index:08d}",
        courses=tuple(courses),
    )


def history(learner: SyntheticLearner) -> list[CanonicalEvent]:
    """The learner's past events, in the order the pipeline processed them."""
    person = person_evidence(
        doc_type=DocumentType.RESIDENT_ID, number=learner.resident_id, name=learner.name, mobile=learner.mobile
    )
    events = []
    for k, course in enumerate(learner.courses):
        account = learner.account_on(course.platform)
        assert account is not None
        prefix = f"u-bench-{learner.index:08x}" if course.platform == "union" else f"ob-{learner.index:010d}"
        for step, (kind, at) in enumerate(
            ((EventKind.ENROLLED, course.enrolled_at), (EventKind.COMPLETED, course.completed_at))
        ):
            events.append(
                CanonicalEvent(
                    platform=course.platform,
                    event_id=f"{prefix}-{2 * k + step}",
                    kind=kind,
                    occurred_at=at,
                    account=account,
                    course_id=course.course_id,
                    hours=course.hours,
                    platform_credits=course.credits,
                    outcome=Outcome(passed=course.passed, score=course.score) if kind is EventKind.COMPLETED else None,
                    person=person,
                )
            )
    return sorted(events, key=lambda e: (e.occurred_at, e.event_id))
