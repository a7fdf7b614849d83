"""Raw platform messages for tests, in the exact shapes of CONTRACT §1."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from bridge.core.normalise import resident_id_check_character

UNION = "union.training.events.v1"
OU = "ou.lifelong.events.v1"
VOCATIONAL = "vocational.learning.events.v1"
BEIJING = timezone(timedelta(hours=8))


def resident_id(region: str = "110105", birth: str = "19491231", serial: str = "002") -> str:
    first17 = region + birth + serial
    return first17 + resident_id_check_character(first17)


def union_event(
    msg_id: str,
    event_type: str = "COURSE_ENROLL",
    *,
    member_no: str = "GH2101000123",
    when: datetime = datetime(2024, 4, 26, 9, 30, tzinfo=BEIJING),
    id_card: str | None = None,
    name: str | None = "张　伟",
    mobile: str | None = "138 0013 8000",
    course: str = "ACFTU-SK-0012",
    hours: float = 24,
    passed: bool | None = None,
    score: float | None = None,
) -> dict[str, Any]:
    member: dict[str, Any] = {"memberNo": member_no, "orgName": "沈阳市总工会"}
    if id_card is not None:
        member["idCardNo"] = id_card
    if name is not None:
        member["name"] = name
    if mobile is not None:
        member["mobile"] = mobile
    event: dict[str, Any] = {
        "msgId": msg_id,
        "eventType": event_type,
        "occurTime": when.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
        "member": member,
        "course": {"courseCode": course, "courseName": "数字技能入门", "studyHours": hours},
    }
    if event_type == "COURSE_COMPLETE":
        result: dict[str, Any] = {"passed": bool(passed)}
        if score is not None:
            result["score"] = score
        event["result"] = result
    return event


def ou_event(
    event_id: str,
    event_type: str = "enrolment.created",
    *,
    student_no: str = "2421101400123",
    when: datetime = datetime(2024, 4, 26, 1, 30, tzinfo=timezone.utc),
    document: tuple[str, str] | None = None,
    name: str | None = "张伟",
    phone: str | None = "+8613800138000",
    course: str = "NOU-08123",
    credits: float = 2.0,
    hours: float | None = 36,
    status: str | None = None,
    score: float | None = None,
) -> dict[str, Any]:
    learner: dict[str, Any] = {"student_no": student_no}
    if document is not None:
        learner["identity_document"] = {"type": document[0], "number": document[1]}
    if name is not None:
        learner["full_name"] = name
    if phone is not None:
        learner["phone"] = phone
    course_body: dict[str, Any] = {"course_id": course, "title": "数字技能基础", "credits": credits}
    if hours is not None:
        course_body["contact_hours"] = hours
    event: dict[str, Any] = {
        "event_id": event_id,
        "event_type": event_type,
        "occurred_at": int(when.timestamp() * 1000),
        "learner": learner,
        "course": course_body,
    }
    if event_type == "course.completed":
        outcome: dict[str, Any] = {"status": status or "PASSED"}
        if score is not None:
            outcome["score"] = score
        event["outcome"] = outcome
    return event


_XAPI_VERBS = {
    "registered": "http://adlnet.gov/expapi/verbs/registered",
    "passed": "http://adlnet.gov/expapi/verbs/passed",
    "failed": "http://adlnet.gov/expapi/verbs/failed",
    "completed": "http://adlnet.gov/expapi/verbs/completed",
    "unregistered": "http://id.tincanapi.com/verb/unregistered",
}
_VOC = "https://vocational.example.cn"


def vocational_event(
    statement_id: str,
    verb: str = "registered",
    *,
    account: str = "ZJ330100778899",
    when: datetime = datetime(2024, 4, 26, 10, 15, tzinfo=BEIJING),
    resident_id: str | None = None,
    name: str | None = "张伟",
    mobile: str | None = "+86 138 0013 8000",
    course: str = "VOC-EL-3301",
    hours: float = 32,
    success: bool | None = None,
    scaled: float | None = None,
) -> dict[str, Any]:
    """An xAPI statement of the vocational platform (CONTRACT §1); ``verb`` by its short name."""
    actor: dict[str, Any] = {"objectType": "Agent", "account": {"homePage": _VOC, "name": account}}
    if name is not None:
        actor["name"] = name
    extensions: dict[str, Any] = {}
    if resident_id is not None:
        extensions[f"{_VOC}/xapi/resident-id"] = resident_id
    if mobile is not None:
        extensions[f"{_VOC}/xapi/mobile"] = mobile
    statement: dict[str, Any] = {
        "id": statement_id,
        "timestamp": when.isoformat(),
        "actor": actor,
        "verb": {"id": _XAPI_VERBS[verb], "display": {"en-US": verb}},
        "object": {
            "objectType": "Activity",
            "id": f"{_VOC}/courses/{course}",
            "definition": {"name": {"zh-CN": "电工基础"}, "extensions": {f"{_VOC}/xapi/study-hours": hours}},
        },
        "context": {"extensions": extensions},
    }
    result: dict[str, Any] = {}
    if success is not None:
        result["success"] = success
    if scaled is not None:
        result["score"] = {"scaled": scaled}
    if result:
        statement["result"] = result
    return statement


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode("utf-8")
