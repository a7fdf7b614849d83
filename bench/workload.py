"""The benchmark's input: simulated platform traffic, and events for preloaded learners.

Everything is deterministic for a seed. The main scenarios send the traffic simulator's messages
(new persons, redeliveries, malformed messages: what the bridge meets in production); the growth
runs mix in events for learners the loader put in the registry, so the registry's size is felt
by the lookups of every other event.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from bench.synthetic import Course, SyntheticLearner, history, synthetic_learner
from bridge.tools import simulate
from bridge.core.events import EventKind, Platform
import adapters
from adapters._ou_sim import COURSES as OU_COURSES
from adapters._union_sim import COURSES as UNION_COURSES
from adapters.ou import TOPIC as OU_TOPIC
from adapters.union import TOPIC as UNION_TOPIC
from bridge.tools.simulate import SimMessage
from bridge.tools.simulate.platform import get_path

_BEIJING = timezone(timedelta(hours=8))
#: New events of preloaded learners happen after their loaded history.
_RECENT = datetime(2024, 5, 1, 2, 0, tzinfo=UTC)
_UNION_TYPES = {EventKind.ENROLLED: "COURSE_ENROLL", EventKind.COMPLETED: "COURSE_COMPLETE",
                EventKind.WITHDRAWN: "COURSE_WITHDRAW"}
_OU_TYPES = {EventKind.ENROLLED: "enrolment.created", EventKind.COMPLETED: "course.completed",
             EventKind.WITHDRAWN: "enrolment.cancelled"}


@dataclass(frozen=True)
class Workload:
    """Messages preloaded before the system under test starts, then messages sent at a paced rate."""

    preloaded: list[SimMessage]
    paced: list[SimMessage]


def simulated(events: int, paced: int, seed: int) -> Workload:
    """``events + paced`` simulator messages, split in stream order."""
    messages, _ = simulate.generate(events + paced, seed=seed)
    return Workload(messages[:events], messages[events:])


def event_key(msg: SimMessage) -> tuple[str, str] | None:
    """``(platform, event_id)`` of a message, ``None`` when it has no readable id (malformed)."""
    try:
        value = json.loads(msg.value)
    except (UnicodeDecodeError, ValueError):
        return None
    adapter = adapters.by_topic(msg.topic)
    if not isinstance(value, dict) or adapter is None or adapter.simulator is None:
        return None
    event_id = get_path(value, adapter.simulator.id_path)
    return (adapter.name, event_id) if isinstance(event_id, str) and event_id else None


def union_message(learner: SyntheticLearner, course: Course, *, event_id: str, kind: EventKind, at: datetime,
                  passed: bool | None = None, score: float | None = None) -> SimMessage:
    """A union platform message for a preloaded learner, in the platform's own shape."""
    assert learner.union_no is not None
    event: dict = {
        "msgId": event_id,
        "eventType": _UNION_TYPES[kind],
        "occurTime": at.astimezone(_BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
        "member": {
            "memberNo": learner.union_no,
            "idCardNo": learner.resident_id,
            "name": learner.name,
            "mobile": learner.mobile,
            "orgName": "济南市总工会",
        },
        "course": {"courseCode": course.course_id, "courseName": course.title, "studyHours": course.hours},
    }
    if kind is EventKind.COMPLETED:
        event["result"] = {"passed": bool(passed), "score": score}
    raw = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
    return SimMessage(UNION_TOPIC, learner.union_no.encode(), raw)


def ou_message(learner: SyntheticLearner, course: Course, *, event_id: str, kind: EventKind, at: datetime,
               passed: bool | None = None, score: float | None = None) -> SimMessage:
    """An open-university message for a preloaded learner, in the platform's own shape."""
    assert learner.ou_no is not None
    event: dict = {
        "event_id": event_id,
        "event_type": _OU_TYPES[kind],
        "occurred_at": int(at.timestamp() * 1000),
        "learner": {
            "student_no": learner.ou_no,
            "identity_document": {"type": "RESIDENT_ID", "number": learner.resident_id},
            "full_name": learner.name,
            "phone": "+86" + learner.mobile,
        },
        "course": {"course_id": course.course_id, "title": course.title, "credits": course.credits,
                   "contact_hours": course.hours},
    }
    if kind is EventKind.COMPLETED:
        event["outcome"] = {"status": "PASSED" if passed else "FAILED", "score": score}
    return SimMessage(OU_TOPIC, learner.ou_no.encode(), json.dumps(event).encode())


def render(learner: SyntheticLearner, course: Course, **event: Any) -> SimMessage:
    """The message of one event of ``learner`` on ``course``'s platform."""
    return (union_message if course.platform == "union" else ou_message)(learner, course, **event)


def history_messages(learner: SyntheticLearner) -> list[SimMessage]:
    """The loaded history of ``learner`` (``bench.loader.history``) as the platforms sent it."""
    courses = {(c.platform, c.course_id): c for c in learner.courses}
    return [
        render(
            learner, courses[(e.platform, e.course_id)], event_id=e.event_id, kind=e.kind, at=e.occurred_at,
            passed=e.outcome.passed if e.outcome else None, score=e.outcome.score if e.outcome else None,
        )
        for e in history(learner)
    ]


def preloaded_learner_events(count: int, learners: int, seed: int) -> list[SimMessage]:
    """``count`` new events of random preloaded learners (indexes ``0 .. learners - 1``).

    Half retake and pass a course already on record (the record changes), half enrol in a course
    not taken yet (a new record); each event carries the learner's resident ID, name and mobile,
    so identity resolution reads the learner's stored evidence.
    """
    if learners <= 0:
        return []
    rng = random.Random(seed)
    messages = []
    for n in range(count):
        learner = synthetic_learner(rng.randrange(learners))
        taken = rng.choice(learner.courses)
        at = _RECENT + timedelta(minutes=n)
        if rng.random() < 0.5:
            course, completed = taken, True
        else:
            catalogue = UNION_COURSES if taken.platform == "union" else OU_COURSES
            fresh = catalogue[rng.randrange(len(catalogue))]
            course = Course(
                platform=taken.platform, course_id=fresh[0], title=fresh[1],
                hours=float(fresh[2] if taken.platform == "union" else fresh[3]),
                credits=None if taken.platform == "union" else float(fresh[2]),
                enrolled_at=at, completed_at=at, passed=True, score=80.0,
            )
            completed = False
        messages.append(
            render(learner, course, event_id=f"bench-{seed}-{n}", at=at,
                   kind=EventKind.COMPLETED if completed else EventKind.ENROLLED,
                   passed=True, score=min(taken.score + 5, 100.0))
        )
    return messages


def growth(events: int, learners: int, seed: int) -> list[SimMessage]:
    """Half simulated traffic (new persons), half events of preloaded learners, interleaved."""
    fresh = simulate.generate(events - events // 2, seed=seed)[0]
    known = preloaded_learner_events(events // 2, learners, seed)
    rng = random.Random(seed)
    merged = [(rng.random(), i, m) for i, m in enumerate(fresh)] + [
        (rng.random(), len(fresh) + i, m) for i, m in enumerate(known)
    ]
    merged.sort(key=lambda item: (item[0], item[1]))
    return [m for _, _, m in merged]
