"""The trade-union training platform's simulated traffic (``bridge simulate``, the demo): declared
by :mod:`adapters.union` as its ``ADAPTER.simulator``.

Its records: a member number ``GH`` + province + 8 digits; the resident ID as the member's
federation typed it (missing, empty, lower-case ``x``, full-width digits, spaces, the 15-digit
number of records migrated from first-generation cards); names padded with a full-width space or
written with another middle dot; mobiles in every shape. Its producer writes compact UTF-8 JSON.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

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

_BEIJING = timezone(timedelta(hours=8))
_TYPES: dict[Kind, str] = {"enrol": "COURSE_ENROLL", "complete": "COURSE_COMPLETE", "withdraw": "COURSE_WITHDRAW"}
_REQUIRED: tuple[FieldPath, ...] = (
    ("msgId",), ("eventType",), ("occurTime",), ("member", "memberNo"), ("course", "courseCode"),
    ("course", "studyHours"),
)

#: (courseCode, courseName, studyHours): mostly multiples of 4, a few odd ones to exercise rounding.
COURSES: tuple[tuple[str, str, int], ...] = (
    ("ACFTU-SK-0001", "数字技能入门", 24), ("ACFTU-SK-0002", "安全生产基础", 16),
    ("ACFTU-SK-0003", "劳动法律法规", 12), ("ACFTU-SK-0004", "职业健康与防护", 8),
    ("ACFTU-SK-0005", "电工技能实训", 64), ("ACFTU-SK-0006", "养老护理员培训", 45),
    ("ACFTU-SK-0007", "家政服务规范", 10), ("ACFTU-SK-0008", "办公软件应用", 32),
    ("ACFTU-SK-0009", "办公软件应用（第二版）", 36), ("ACFTU-SK-0010", "智能制造概论", 40),
    ("ACFTU-SK-0011", "直播电商实务", 18), ("ACFTU-SK-0012", "班组长管理", 48),
)


class UnionSimulator(PlatformSimulator):
    courses = tuple(Course(code, name, hours) for code, name, hours in COURSES)
    equivalences = (
        ("digital-skills-basics", "ACFTU-SK-0001"), ("work-safety", "ACFTU-SK-0002"),
        ("labour-law", "ACFTU-SK-0003"), ("electrician", "ACFTU-SK-0005"), ("elderly-care", "ACFTU-SK-0006"),
        # Two editions of one course share a key, so a learner can hold both.
        ("office-software", "ACFTU-SK-0008"), ("office-software", "ACFTU-SK-0009"),
    )
    weight = 5.0  # the largest platform
    course_counts = (35, 30, 20, 10, 5)
    id_path = ("msgId",)

    def open_account(self, draw: Draw, person: Person) -> Account:
        number = draw.unique(lambda: "GH" + person.region[:2] + draw.digits(8))
        return Account(number, ("RESIDENT_ID", person.resident_id))

    def event(self, draw: Draw, person: Person, account: Account, course: Course, kind: Kind,
              at_ms: int, passed: bool) -> Event:
        rng = draw.rng
        member = {
            "memberNo": account.number,
            "idCardNo": account.resident_id or "",
            "name": person.name,
            "mobile": person.mobile,
            "orgName": f"{person.city}总工会",
        }
        event: Event = {
            "msgId": f"u-{rng.getrandbits(32):08x}-{draw.next_seq():04d}",
            "eventType": _TYPES[kind],
            "occurTime": datetime.fromtimestamp(at_ms // 1000, _BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
            "member": member,
            "course": {"courseCode": course.course_id, "courseName": course.title, "studyHours": course.hours},
        }
        if kind == "complete":
            result: Event = {"passed": passed}
            if rng.random() < 0.9:
                result["score"] = rng.randint(120, 200) / 2 if passed else rng.randint(40, 119) / 2
            if passed and rng.random() < 0.8:
                result["certificateNo"] = f"CERT-2024-{draw.digits(6)}"
            event["result"] = result
        return event

    def mess(self, draw: Draw, value: Event, person: Person, account: Account) -> None:
        rng = draw.rng
        clean = value["member"]
        member: Event = {"memberNo": clean["memberNo"]}
        number, r = clean["idCardNo"], rng.random()
        if r >= 0.05:  # otherwise idCardNo is absent
            if r < 0.09 or not number:
                number = ""
            elif person.first_generation_card and account.document_valid:
                number = number[:6] + number[8:17]
            elif r < 0.17:
                number = number.translate(FULL_WIDTH)
            elif r < 0.25:
                number = f"{number[:6]} {number[6:14]} {number[14:]}"
            elif r < 0.6:
                number = number.replace("X", "x")
            member["idCardNo"] = number
        name = clean["name"]
        if "·" in name:
            member["name"] = name.replace("·", rng.choice(DOTS))
        elif len(name) == 2 and rng.random() < 0.4:  # padded to the width of a 3-character name
            member["name"] = name[0] + "\u3000" + name[1]
        elif rng.random() < 0.98:
            member["name"] = name
        m = clean["mobile"]
        mobile = draw.shape(((0.03, None), (0.06, ""), (0.18, f"+86 {m[:3]}-{m[3:7]}-{m[7:]}"),
                             (0.30, f"0086 {m}"), (0.45, f"{m[:3]} {m[3:7]} {m[7:]}"), (1.0, m)))
        if mobile is not None:
            member["mobile"] = mobile
        member["orgName"] = clean["orgName"]
        value["member"] = member

    def required(self, value: Event) -> tuple[FieldPath, ...]:
        return _REQUIRED + ((("result", "passed"),) if value.get("eventType") == "COURSE_COMPLETE" else ())

    def unknown_event_type(self, draw: Draw, value: Event) -> None:
        value["eventType"] = draw.rng.choice(("COURSE_RATE", "MEMBER_UPDATE"))

    def sent_resident_id(self, value: Event) -> bool:
        return bool(value["member"].get("idCardNo"))


SIMULATOR = UnionSimulator()
