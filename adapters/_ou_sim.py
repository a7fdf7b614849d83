"""The open university's simulated traffic (``bridge simulate``, the demo): declared by
:mod:`adapters.ou` as its ``ADAPTER.simulator``.

Its records: a student number (year + region + 7 digits); an identity document, mostly the
resident ID, a passport now and then, often left out of an event; phones with or without ``+86``.
Event ids are ULIDs. Its producer keeps ``json.dumps`` defaults: ASCII escapes and ``", "``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from bridge.tools.simulate.platform import Account, Course, Draw, Event, FieldPath, Kind, Person, PlatformSimulator

_BEIJING = timezone(timedelta(hours=8))
_TYPES: dict[Kind, str] = {"enrol": "enrolment.created", "complete": "course.completed", "withdraw": "enrolment.cancelled"}
_REQUIRED: tuple[FieldPath, ...] = (
    ("event_id",), ("event_type",), ("occurred_at",), ("learner", "student_no"), ("course", "course_id"),
    ("course", "credits"),
)
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

#: (course_id, title, credits, contact_hours)
COURSES: tuple[tuple[str, str, float, int], ...] = (
    ("NOU-08001", "数字技能基础", 2.0, 36), ("NOU-08002", "安全生产管理", 1.0, 18),
    ("NOU-08003", "劳动关系与劳动法", 1.5, 27), ("NOU-08004", "老年照护", 3.0, 54),
    ("NOU-08005", "计算机应用基础", 2.5, 45), ("NOU-08006", "家庭教育指导", 0.5, 9),
    ("NOU-08007", "人工智能通识", 2.0, 32), ("NOU-08008", "心理健康与调适", 1.0, 16),
    ("NOU-08009", "中国传统文化", 1.5, 24), ("NOU-08010", "财务管理基础", 4.0, 72),
    ("NOU-08011", "社区治理", 1.0, 18), ("NOU-08012", "电子商务概论", 3.0, 48),
)


class OpenUniversitySimulator(PlatformSimulator):
    courses = tuple(Course(course_id, title, hours, credits) for course_id, title, credits, hours in COURSES)
    equivalences = (
        ("digital-skills-basics", "NOU-08001"), ("work-safety", "NOU-08002"), ("labour-law", "NOU-08003"),
        ("elderly-care", "NOU-08004"), ("office-software", "NOU-08005"), ("e-commerce", "NOU-08012"),
    )
    weight = 3.0
    course_counts = (45, 30, 15, 7, 3)
    id_path = ("event_id",)

    def open_account(self, draw: Draw, person: Person) -> Account:
        rng = draw.rng
        number = draw.unique(lambda: rng.choice(("22", "23", "24")) + person.region[:4] + draw.digits(7))
        if rng.random() < 0.03:
            return Account(number, ("PASSPORT", draw.unique(lambda: "E" + draw.digits(8))))
        return Account(number, ("RESIDENT_ID", person.resident_id))

    def _ulid(self, draw: Draw, at_ms: int) -> str:
        def make() -> str:
            n = (at_ms << 80) | draw.rng.getrandbits(80)
            return "".join(_CROCKFORD[(n >> s) & 31] for s in range(125, -1, -5))

        return draw.unique(make)

    def event(self, draw: Draw, person: Person, account: Account, course: Course, kind: Kind,
              at_ms: int, passed: bool) -> Event:
        rng = draw.rng
        learner: Event = {"student_no": account.number}
        if account.document is not None:
            learner["identity_document"] = {"type": account.document[0], "number": account.document[1]}
        learner["full_name"] = person.name
        learner["phone"] = "+86" + person.mobile
        event: Event = {
            "event_id": self._ulid(draw, at_ms),
            "event_type": _TYPES[kind],
            "occurred_at": at_ms,
            "learner": learner,
            "course": {"course_id": course.course_id, "title": course.title, "credits": course.credits,
                       "contact_hours": course.hours},
        }
        if kind == "complete":
            score = rng.randint(60, 100) if passed else rng.randint(20, 59)
            outcome: Event = {"status": "PASSED" if passed else "FAILED"}
            if rng.random() < 0.9:
                outcome["score"] = score
                outcome["grade"] = "FDCBAA"[max(0, score // 10 - 5)] if passed else "F"
            outcome["completed_on"] = datetime.fromtimestamp(at_ms // 1000, _BEIJING).date().isoformat()
            event["outcome"] = outcome
        return event

    def mess(self, draw: Draw, value: Event, person: Person, account: Account) -> None:
        rng = draw.rng
        clean = value["learner"]
        learner: Event = {"student_no": clean["student_no"]}
        if "identity_document" in clean and rng.random() < 0.9:
            learner["identity_document"] = clean["identity_document"]
        if rng.random() < 0.98:
            learner["full_name"] = clean["full_name"]
        m = person.mobile
        phone = draw.shape(((0.05, None), (0.25, m), (0.30, f"+86 {m[:3]} {m[3:7]} {m[7:]}"), (1.0, "+86" + m)))
        if phone is not None:
            learner["phone"] = phone
        value["learner"] = learner

    def serialise(self, value: Event) -> bytes:
        # This platform's producer keeps json.dumps defaults: ASCII escapes and ", " separators.
        return json.dumps(value).encode()

    def required(self, value: Event) -> tuple[FieldPath, ...]:
        return _REQUIRED + ((("outcome", "status"),) if value.get("event_type") == "course.completed" else ())

    def unknown_event_type(self, draw: Draw, value: Event) -> None:
        value["event_type"] = draw.rng.choice(("course.reviewed", "learner.updated"))

    def sent_resident_id(self, value: Event) -> bool:
        document = value["learner"].get("identity_document")
        return bool(document and document.get("type") == "RESIDENT_ID" and document.get("number"))


SIMULATOR = OpenUniversitySimulator()
