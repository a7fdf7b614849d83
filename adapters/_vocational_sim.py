"""The vocational platform's simulated traffic (``bridge simulate``, the demo): xAPI 1.0.3
statements as CONTRACT §1 describes them, declared by :mod:`adapters.vocational` as its
``ADAPTER.simulator``.

Its records: an account name (province letters + region + 6 digits) and the resident ID of the
real-name registration. Its statements: the verbs registered / passed / failed / completed (with
``result.success``) / unregistered; timestamps with an offset (``+08:00``, ``+0800``, ``Z``, with
or without milliseconds); scaled scores; study hours in an extension of the activity, whose IRI
sometimes carries a query or a fragment. Its identity evidence, in context extensions and
``actor.name``, is as messy as the others' (missing, empty, lower-case ``x``, full-width digits,
spaces; mobiles in several shapes). Its producer writes UTF-8 JSON with ``", "`` separators.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

from bridge.tools.simulate.platform import (
    DOTS,
    FULL_WIDTH,
    Account,
    Course,
    Draw,
    Event,
    FieldPath,
    Kind,
    Person,
    PlatformSimulator,
)

HOME_PAGE = "https://vocational.example.cn"
_XAPI = HOME_PAGE + "/xapi/"
STUDY_HOURS = _XAPI + "study-hours"
RESIDENT_ID = _XAPI + "resident-id"
MOBILE = _XAPI + "mobile"
_ADL = "http://adlnet.gov/expapi/verbs/"
REGISTERED, PASSED, FAILED, COMPLETED = (_ADL + v for v in ("registered", "passed", "failed", "completed"))
UNREGISTERED = "http://id.tincanapi.com/verb/unregistered"
_DISPLAY = {REGISTERED: "报名", PASSED: "通过", FAILED: "未通过", COMPLETED: "完成", UNREGISTERED: "取消报名"}
_UNKNOWN_VERBS = (_ADL + "experienced", _ADL + "attempted", _ADL + "commented")
_BEIJING = timezone(timedelta(hours=8))
_PROVINCES = {"11": "BJ", "31": "SH", "21": "LN", "44": "GD", "51": "SC", "33": "ZJ", "42": "HB", "61": "SN", "65": "XJ"}
_REQUIRED: tuple[FieldPath, ...] = (
    ("id",), ("timestamp",), ("actor", "account", "name"), ("verb", "id"), ("object", "id"),
    ("object", "definition", "extensions", STUDY_HOURS),
)

#: (course id, title, study hours): some hours odd or fractional, to exercise the credit rule.
COURSES: tuple[tuple[str, str, float], ...] = (
    ("VOC-DS-1001", "数字技能实务", 24), ("VOC-SF-2001", "安全生产实务", 16),
    ("VOC-EL-3301", "电工基础", 32), ("VOC-EL-3302", "电工进阶", 45),
    ("VOC-CA-4001", "老年照护实训", 48), ("VOC-OA-5001", "办公自动化", 30),
    ("VOC-EB-6001", "电子商务运营", 20), ("VOC-WD-7001", "焊接工艺", 56),
    ("VOC-CK-7002", "中式烹调", 60), ("VOC-LG-7003", "物流管理", 20),
    ("VOC-AI-7004", "人工智能应用", 40), ("VOC-CS-7005", "网络安全基础", 27),
    ("VOC-MC-7006", "数控加工入门", 7.5),
)


class VocationalSimulator(PlatformSimulator):
    courses = tuple(Course(course_id, title, hours) for course_id, title, hours in COURSES)
    equivalences = (
        ("digital-skills-basics", "VOC-DS-1001"), ("work-safety", "VOC-SF-2001"), ("electrician", "VOC-EL-3301"),
        ("elderly-care", "VOC-CA-4001"), ("office-software", "VOC-OA-5001"), ("e-commerce", "VOC-EB-6001"),
    )
    weight = 2.0
    course_counts = (40, 30, 18, 8, 4)
    id_path = ("id",)

    def open_account(self, draw: Draw, person: Person) -> Account:
        letters = _PROVINCES.get(person.region[:2], "CN")
        number = draw.unique(lambda: letters + person.region[:4] + "00" + draw.digits(6))
        return Account(number, ("RESIDENT_ID", person.resident_id))

    def _timestamp(self, draw: Draw, at_ms: int) -> str:
        moment = datetime.fromtimestamp(at_ms // 1000, _BEIJING) + timedelta(milliseconds=at_ms % 1000)
        r = draw.rng.random()
        if r < 0.6:
            return moment.isoformat(timespec="seconds")
        if r < 0.75:
            return moment.isoformat(timespec="milliseconds")
        if r < 0.9:
            return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return moment.strftime("%Y-%m-%dT%H:%M:%S%z")  # +0800

    def _verb(self, draw: Draw, kind: Kind, passed: bool) -> tuple[str, bool | None]:
        """The verb IRI, and ``result.success`` to send (``None``: none)."""
        if kind == "enrol":
            return REGISTERED, None
        if kind == "withdraw":
            return UNREGISTERED, None
        r = draw.rng.random()
        if r < 0.4:
            return COMPLETED, passed
        return (PASSED if passed else FAILED), (passed if r < 0.7 else None)

    def event(self, draw: Draw, person: Person, account: Account, course: Course, kind: Kind,
              at_ms: int, passed: bool) -> Event:
        rng = draw.rng
        verb, success = self._verb(draw, kind, passed)
        activity = f"{HOME_PAGE}/courses/{course.course_id}"
        r = rng.random()
        if r < 0.05:
            activity += "?lang=zh-CN"
        elif r < 0.08:
            activity += "#syllabus"
        event: Event = {
            "id": draw.unique(lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4))),
            "timestamp": self._timestamp(draw, at_ms),
            "actor": {"objectType": "Agent", "name": person.name,
                      "account": {"homePage": HOME_PAGE, "name": account.number}},
            "verb": {"id": verb, "display": {"zh-CN": _DISPLAY[verb]}},
            "object": {"objectType": "Activity", "id": activity,
                       "definition": {"name": {"zh-CN": course.title}, "extensions": {STUDY_HOURS: course.hours}}},
        }
        if kind == "complete":
            result: Event = {}
            if rng.random() < 0.85:
                points = rng.randint(60, 100) if passed else rng.randint(20, 59)
                result["score"] = {"scaled": points / 100}
                if rng.random() < 0.3:
                    result["score"].update(raw=points, min=0, max=100)
            if success is not None:
                result["success"] = success
            result["completion"] = True
            event["result"] = result
        extensions: Event = {}
        if account.resident_id is not None:
            extensions[RESIDENT_ID] = account.resident_id
        m = person.mobile
        extensions[MOBILE] = f"+86 {m[:3]} {m[3:7]} {m[7:]}"
        event["context"] = {"language": "zh-CN", "extensions": extensions}
        return event

    def mess(self, draw: Draw, value: Event, person: Person, account: Account) -> None:
        rng = draw.rng
        actor = value["actor"]
        name = actor["name"]
        if rng.random() < 0.03:
            del actor["name"]
        elif "·" in name:
            actor["name"] = name.replace("·", rng.choice(DOTS))
        elif rng.random() < 0.05:
            actor["name"] = f" {name} "
        clean = value["context"]["extensions"]
        extensions: Event = {}
        number, r = clean.get(RESIDENT_ID), rng.random()
        if number is not None and r >= 0.06:  # otherwise the extension is absent
            if r < 0.09:
                number = ""
            elif r < 0.14:
                number = number.translate(FULL_WIDTH)
            elif r < 0.22:
                number = f"{number[:6]} {number[6:14]} {number[14:]}"
            elif r < 0.5:
                number = number.lower()
            extensions[RESIDENT_ID] = number
        m = person.mobile
        mobile = draw.shape(((0.05, None), (0.45, clean[MOBILE]), (0.65, m), (0.80, f"+86-{m[:3]}-{m[3:7]}-{m[7:]}"),
                             (0.90, f"86 {m}"), (1.0, f"(+86) {m[:3]} {m[3:7]} {m[7:]}")))
        if mobile is not None:
            extensions[MOBILE] = mobile
        if extensions:
            value["context"]["extensions"] = extensions
        else:
            del value["context"]["extensions"]

    def serialise(self, value: Event) -> bytes:
        return json.dumps(value, ensure_ascii=False).encode()

    def required(self, value: Event) -> tuple[FieldPath, ...]:
        completed = (value.get("verb") or {}).get("id") == COMPLETED
        return _REQUIRED + ((("result", "success"),) if completed else ())

    def unknown_event_type(self, draw: Draw, value: Event) -> None:
        verb = draw.rng.choice(_UNKNOWN_VERBS)
        value["verb"] = {"id": verb, "display": {"en-US": verb.rpartition("/")[2]}}

    def sent_resident_id(self, value: Event) -> bool:
        return bool(value.get("context", {}).get("extensions", {}).get(RESIDENT_ID))


SIMULATOR = VocationalSimulator()
