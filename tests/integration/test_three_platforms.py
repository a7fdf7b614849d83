"""The vocational platform (CONTRACT §1) beside the other two, against a real worker, broker and
database: one person on three platforms is one learner, one course on three platforms is one
record, and the outcome does not depend on the order the three platforms' events arrive in."""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bridge.core.records import record_id_for
from tests.conftest import _postgres_database
from tests.factories import (
    BEIJING,
    OU,
    UNION,
    VOCATIONAL,
    encode,
    ou_event,
    resident_id,
    union_event,
    vocational_event,
)
from tests.integration.harness import Bridge
from topics import catalogue

pytestmark = pytest.mark.integration

T0 = datetime(2024, 4, 1, 9, 0, tzinfo=BEIJING)
DOC = resident_id(serial="031")
OTHER = resident_id(serial="047")


def equivalences(tmp_path: Path) -> Path:
    table = tmp_path / "equivalences.csv"
    table.write_text(
        "course_key,platform,course_id\n"
        "electrician-basics,union,ACFTU-SK-0005\n"
        "electrician-basics,ou,NOU-08020\n"
        "electrician-basics,vocational,VOC-EL-3301\n",
        encoding="utf-8",
    )
    return table


def three_platforms_of_one_person() -> list[tuple[str, str, bytes]]:
    """One person on the three platforms, each with the same resident ID written its own way; they
    pass the same course (equivalent on all three) on each, and take one more on the vocational one."""
    spaced = f"{DOC[:6]} {DOC[6:14]} {DOC[14:]}"
    return [
        (UNION, "GH3101000001", encode(union_event(
            "u-1", "COURSE_ENROLL", member_no="GH3101000001", when=T0, id_card=DOC.lower(),
            course="ACFTU-SK-0005", hours=24))),
        (UNION, "GH3101000001", encode(union_event(
            "u-2", "COURSE_COMPLETE", member_no="GH3101000001", when=T0 + timedelta(days=20), id_card=DOC,
            course="ACFTU-SK-0005", hours=24, passed=True, score=81))),
        (OU, "2431010000001", encode(ou_event(
            "o-1", "course.completed", student_no="2431010000001", when=T0 + timedelta(days=30),
            document=("RESIDENT_ID", DOC), course="NOU-08020", credits=2.0, status="PASSED", score=77))),
        (VOCATIONAL, "ZJ330100000001", encode(vocational_event(
            "7a0c3d1e-0000-4000-8000-000000000001", "registered", account="ZJ330100000001",
            when=T0 + timedelta(days=1), resident_id=spaced, course="VOC-EL-3301", hours=48))),
        (VOCATIONAL, "ZJ330100000001", encode(vocational_event(
            "7a0c3d1e-0000-4000-8000-000000000002", "passed", account="ZJ330100000001",
            when=T0 + timedelta(days=40), resident_id=DOC, course="VOC-EL-3301", hours=48, scaled=0.92))),
        (VOCATIONAL, "ZJ330100000001", encode(vocational_event(
            "7a0c3d1e-0000-4000-8000-000000000003", "completed", account="ZJ330100000001",
            when=T0 + timedelta(days=50), resident_id=DOC, course="VOC-WD-1102", hours=20, success=True,
            scaled=0.6))),
    ]


def test_one_person_on_three_platforms_is_one_learner_with_one_record_per_course(tmp_path, database_url) -> None:
    bridge = Bridge(tmp_path, database_url, course_equivalences=equivalences(tmp_path))
    try:
        for topic, key, value in three_platforms_of_one_person():
            bridge.send(topic, key, value)
        # Someone else on the vocational platform only, with another document: their own learner.
        bridge.send(VOCATIONAL, "ZJ330100000099", encode(vocational_event(
            "7a0c3d1e-0000-4000-8000-000000000099", "registered", account="ZJ330100000099",
            resident_id=OTHER, name="李娜", mobile="13900139000")))
        bridge.start_worker()
        bridge.settle()

        learners = bridge.live_learners()
        assert len(learners) == 2, learners
        (person,) = [l for l in learners.values() if len(l["accounts"]) == 3]
        assert sorted((a["platform"], a["account"]) for a in person["accounts"]) == [
            ("ou", "2431010000001"), ("union", "GH3101000001"), ("vocational", "ZJ330100000001")]
        methods = {(link["platform"], link["method"]) for link in person["links"]}
        assert ("vocational", "resident_id") in methods and ("ou", "resident_id") in methods

        records = {r["course_key"]: r for r in bridge.records().values() if r["learner_id"] == person["learner_id"]}
        assert set(records) == {"electrician-basics", "vocational:VOC-WD-1102"}
        shared = records["electrician-basics"]
        assert shared["record_id"] == record_id_for(person["learner_id"], "electrician-basics")
        assert shared["status"] == "AWARDED"
        # The larger credit value wins: 48 h / 16 = 3.0 on the vocational platform, over the open
        # university's 2.0 course credits and the union's 24 h / 16 = 1.5.
        assert (shared["credits"], shared["rule"], shared["hours"]) == (3.0, "hours/16", 48)
        assert shared["score"] == 92.0
        assert {s["platform"] for s in shared["sources"]} == {"union", "ou", "vocational"}
        assert len(shared["sources"]) == 5 and shared["version"] == 5
        assert shared["enrolled_at"] == "2024-04-01T01:00:00Z"
        other = records["vocational:VOC-WD-1102"]
        assert (other["status"], other["credits"], other["rule"], other["score"]) == ("AWARDED", 1.0, "hours/16", 60.0)
        assert bridge.dead_letters() == []
    finally:
        bridge.close()


def test_bad_vocational_statements_are_dead_lettered_and_the_good_ones_flow(tmp_path, database_url) -> None:
    bridge = Bridge(tmp_path, database_url)
    try:
        good = vocational_event("7a0c3d1e-0000-4000-8000-0000000000a1", "registered", account="ZJ1", resident_id=DOC)
        unknown_verb = json.loads(json.dumps(good))
        unknown_verb["id"] = "7a0c3d1e-0000-4000-8000-0000000000a2"
        unknown_verb["verb"]["id"] = "http://adlnet.gov/expapi/verbs/experienced"
        no_hours = json.loads(json.dumps(good))
        no_hours["id"] = "7a0c3d1e-0000-4000-8000-0000000000a3"
        no_hours["object"]["definition"]["extensions"] = {}
        completed_without_success = vocational_event("7a0c3d1e-0000-4000-8000-0000000000a4", "completed", account="ZJ1")
        for value in (unknown_verb, no_hours, completed_without_success, good):
            bridge.send(VOCATIONAL, "ZJ1", encode(value))
        bridge.start_worker()
        bridge.settle()

        letters = sorted(bridge.dead_letters(), key=lambda letter: letter["offset"])
        assert [(l["topic"], l["offset"]) for l in letters] == [(VOCATIONAL, 0), (VOCATIONAL, 1), (VOCATIONAL, 2)]
        assert letters[0]["reason_code"] == "unknown_event_type"
        assert all("experienced" not in l["reason"] and DOC not in json.dumps(l) for l in letters)
        (record,) = bridge.records().values()
        assert (record["status"], record["sources"][0]["platform"]) == ("ENROLLED", "vocational")
    finally:
        bridge.close()


def _outcome(bridge: Bridge) -> dict[str, object]:
    return {
        "records": {k: v for k, v in bridge.latest(catalogue.CREDIT_RECORDS).items() if v is not None},
        "learners": {k: v for k, v in bridge.latest(catalogue.LEARNER_IDENTITIES).items() if v is not None},
    }


def three_platform_world() -> list[tuple[str, str, bytes]]:
    """Two people across three platforms, with evidence that arrives piece by piece: a docless
    vocational account that only a name and mobile can place, a union account whose document
    arrives late, and the same course on all three platforms."""
    world = three_platforms_of_one_person()
    world += [
        (VOCATIONAL, "ZJ330100000002", encode(vocational_event(
            "7a0c3d1e-0000-4000-8000-000000000011", "registered", account="ZJ330100000002",
            when=T0 + timedelta(days=3), name="李娜", mobile="+86 139 0013 9000", course="VOC-EL-3301"))),
        (OU, "2431010000002", encode(ou_event(
            "o-11", "enrolment.created", student_no="2431010000002", when=T0 + timedelta(days=2),
            document=("RESIDENT_ID", OTHER), name="李娜", phone="13900139000", course="NOU-08020"))),
        (UNION, "GH3101000002", encode(union_event(
            "u-11", "COURSE_ENROLL", member_no="GH3101000002", when=T0 + timedelta(days=4), name="李娜",
            mobile="13900139000", course="ACFTU-SK-0005"))),
        (UNION, "GH3101000002", encode(union_event(
            "u-12", "COURSE_COMPLETE", member_no="GH3101000002", when=T0 + timedelta(days=9), id_card=OTHER,
            name="李娜", mobile="13900139000", course="ACFTU-SK-0005", passed=False, score=40))),
        (VOCATIONAL, "ZJ330100000002", encode(vocational_event(
            "7a0c3d1e-0000-4000-8000-000000000012", "unregistered", account="ZJ330100000002",
            when=T0 + timedelta(days=12), resident_id=OTHER, course="VOC-EL-3301"))),
    ]
    return world


def test_three_platforms_end_alike_in_any_order(tmp_path, database_url) -> None:
    """CONTRACT §3.5 with three platforms: the same events in another order (and redelivered) end
    in byte-for-byte the same learners and records, versions included."""
    world = three_platform_world()
    shuffled = world[::-1] + random.Random(7).sample(world, 4)
    outcomes = []
    with _second_database(database_url, tmp_path) as second_url:
        for n, (url, order) in enumerate(((database_url, world), (second_url, shuffled))):
            (tmp_path / f"run-{n}").mkdir()
            bridge = Bridge(tmp_path / f"run-{n}", url, course_equivalences=equivalences(tmp_path))
            try:
                for topic, key, value in order:
                    bridge.send(topic, key, value)
                bridge.start_worker()
                bridge.settle()
                outcomes.append(_outcome(bridge))
            finally:
                bridge.close()
    first, second = outcomes
    assert first == second
    learners = [l for l in first["learners"].values() if l["merged_into"] is None]
    assert sorted(len(l["accounts"]) for l in learners) == [3, 3]


@contextlib.contextmanager
def _second_database(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A second, empty database on the same backend as ``database_url``."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'second.db'}"
        return
    with contextlib.contextmanager(_postgres_database)() as url:
        yield url
