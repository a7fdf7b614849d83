"""Credit rules (CONTRACT §4, issue 4) against a real worker, broker and database.

One learner per rule, all in one run; each record is checked as a subscriber sees it on
``credit.records.v1``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from tests.factories import BEIJING, OU, UNION, encode, ou_event, resident_id, union_event
from tests.integration.harness import Bridge

pytestmark = pytest.mark.integration

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=BEIJING)


def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


@pytest.fixture
def bridge(tmp_path, database_url) -> Iterator[Bridge]:
    table = tmp_path / "equivalences.csv"
    table.write_text("course_key,platform,course_id\nspreadsheets,union,ACFTU-SS-1\nspreadsheets,ou,NOU-SS-1\n")
    b = Bridge(tmp_path, database_url, course_equivalences=table, hours_per_credit=16)
    try:
        yield b
    finally:
        b.close()


def union(bridge: Bridge, event_id: str, member: str, kind: str = "COURSE_ENROLL", **kw) -> None:
    bridge.send(UNION, member, encode(union_event(event_id, kind, member_no=member, name=None, **kw)))


def ou(bridge: Bridge, event_id: str, student: str, kind: str = "enrolment.created", **kw) -> None:
    bridge.send(OU, student, encode(ou_event(event_id, kind, student_no=student, name=None, **kw)))


def record_of(bridge: Bridge, account: str) -> dict:
    (record,) = [r for r in bridge.records().values() if any(s["account"] == account for s in r["sources"])]
    return record


def test_every_credit_rule_on_a_real_worker(bridge: Bridge) -> None:
    # Rule 2: 31 study hours at 16 hours per credit is 1.9375, rounded down to 1.5.
    union(bridge, "r2-e", "GH-R2", hours=31, when=at(0))
    union(bridge, "r2-c", "GH-R2", "COURSE_COMPLETE", hours=31, passed=True, score=80, when=at(5))
    # Rule 3: failed, then passed: awarded.
    ou(bridge, "r3-f", "S-R3", "course.completed", status="FAILED", score=40, credits=3.0, when=at(1))
    ou(bridge, "r3-p", "S-R3", "course.completed", status="PASSED", score=75, credits=3.0, when=at(9))
    # Rule 3: failed only.
    union(bridge, "r3x-f", "GH-R3X", "COURSE_COMPLETE", passed=False, score=30, when=at(2))
    # Rule 4: enrolment only; enrolment then withdrawal.
    ou(bridge, "r4-e", "S-R4E", when=at(0))
    ou(bridge, "r4w-e", "S-R4W", when=at(0))
    ou(bridge, "r4w-w", "S-R4W", "enrolment.cancelled", when=at(3))
    # Rule 5: an award survives a later withdrawal; a repeated pass keeps the best score.
    union(bridge, "r5-p1", "GH-R5", "COURSE_COMPLETE", passed=True, score=91, when=at(1))
    union(bridge, "r5-p2", "GH-R5", "COURSE_COMPLETE", passed=True, score=70, when=at(4))
    union(bridge, "r5-w", "GH-R5", "COURSE_WITHDRAW", when=at(6))
    # Rule 6: equivalent courses passed on both platforms: one record, both sources, the larger value.
    doc = ("RESIDENT_ID", resident_id(serial="066"))
    union(bridge, "r6-u", "GH-R6", "COURSE_COMPLETE", id_card=doc[1], course="ACFTU-SS-1", hours=40, passed=True, when=at(2))
    ou(bridge, "r6-o", "S-R6", "course.completed", document=doc, course="NOU-SS-1", credits=2.0, when=at(3))
    bridge.start_worker()
    bridge.settle()

    r2 = record_of(bridge, "GH-R2")
    assert (r2["status"], r2["credits"], r2["hours"], r2["rule"], r2["score"]) == ("AWARDED", 1.5, 31, "hours/16", 80)
    assert r2["enrolled_at"] == "2024-05-01T01:00:00Z" and r2["completed_at"] == "2024-05-06T01:00:00Z"
    r3 = record_of(bridge, "S-R3")
    assert (r3["status"], r3["credits"], r3["score"], r3["rule"]) == ("AWARDED", 3.0, 75, "course_credits")
    r3x = record_of(bridge, "GH-R3X")
    assert (r3x["status"], r3x["credits"], r3x["rule"]) == ("FAILED", 0.0, "failed")
    assert record_of(bridge, "S-R4E")["status"] == "ENROLLED"
    assert record_of(bridge, "S-R4W")["status"] == "WITHDRAWN"
    r5 = record_of(bridge, "GH-R5")
    assert (r5["status"], r5["score"], r5["credits"]) == ("AWARDED", 91, 1.5)
    r6 = record_of(bridge, "GH-R6")
    assert r6["course_key"] == "spreadsheets" and r6["credits"] == 2.5  # 40 h / 16 = 2.5 beats 2.0
    assert {(s["platform"], s["account"]) for s in r6["sources"]} == {("union", "GH-R6"), ("ou", "S-R6")}

    # Rule 7: the same events again change nothing.
    before = bridge.records()
    union(bridge, "r5-p2", "GH-R5", "COURSE_COMPLETE", passed=True, score=70, when=at(4))
    ou(bridge, "r6-o", "S-R6", "course.completed", document=doc, course="NOU-SS-1", credits=2.0, when=at(3))
    bridge.settle()
    assert bridge.records() == before
