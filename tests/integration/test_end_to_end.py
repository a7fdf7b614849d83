"""The whole path against a real worker process, a real broker and a real database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bridge.tools import simulate
from tests.factories import BEIJING, OU, UNION, encode, ou_event, resident_id, union_event
from tests.integration.harness import Bridge, open_dead_letter

pytestmark = pytest.mark.integration

T0 = datetime(2024, 4, 1, 9, 0, tzinfo=BEIJING)


def _by_course(records: dict[str, dict]) -> dict[str, dict]:
    return {r["course_key"]: r for r in records.values()}


def test_same_person_on_both_platforms_becomes_one_learner(bridge: Bridge) -> None:
    rid = resident_id()
    # The union writes the number with a lower-case x and spaces; the open university cleanly.
    messy = rid[:6] + " " + rid[6:-1] + rid[-1].lower()
    bridge.send(UNION, "GH1", encode(union_event("u-1", member_no="GH1", id_card=messy, when=T0)))
    bridge.send(OU, "S1", encode(ou_event("o-1", student_no="S1", document=("RESIDENT_ID", rid), when=T0)))
    bridge.send(UNION, "GH2", encode(union_event("u-2", member_no="GH2", id_card=resident_id(serial="011"), when=T0)))
    bridge.start_worker()
    bridge.settle()

    learners = bridge.live_learners()
    assert len(learners) == 2
    joint = [l for l in learners.values() if len(l["accounts"]) == 2]
    assert len(joint) == 1
    assert {(a["platform"], a["account"]) for a in joint[0]["accounts"]} == {("union", "GH1"), ("ou", "S1")}
    methods = {link["account"]: link["method"] for link in joint[0]["links"]}
    assert sorted(methods.values()) == ["account", "resident_id"]
    records = bridge.records()
    assert {r["learner_id"] for r in records.values() if r["sources"][0]["account"] in ("GH1", "S1")} == {
        joint[0]["learner_id"]
    }
    # Nothing personal on any output topic.
    for spec_messages in (bridge.topic(t) for t in _output_specs()):
        for msg in spec_messages:
            raw = (msg.value or b"").decode()
            assert rid not in raw and rid[:17] not in raw and "13800138000" not in raw and "张" not in raw


def _output_specs():
    from topics import catalogue

    return catalogue.OUTPUT_TOPICS


def test_duplicate_event_changes_nothing(bridge: Bridge) -> None:
    enrol = encode(union_event("u-1", member_no="GH1", when=T0))
    done = encode(union_event("u-2", "COURSE_COMPLETE", member_no="GH1", when=T0 + timedelta(days=3), passed=True, score=90))
    bridge.send(UNION, "GH1", enrol)
    bridge.send(UNION, "GH1", done)
    worker = bridge.start_worker()
    bridge.settle()
    before_records, before_ids = bridge.records(), bridge.identities()
    published_before = len(bridge.topic(_spec("CREDIT_RECORDS")))

    bridge.send(UNION, "GH1", done)
    bridge.send(UNION, "GH1", enrol)
    bridge.settle(worker)

    assert bridge.records() == before_records
    assert bridge.identities() == before_ids
    assert len(bridge.topic(_spec("CREDIT_RECORDS"))) == published_before
    (record,) = before_records.values()
    assert record["status"] == "AWARDED" and record["version"] <= 2
    assert bridge.counts()["events"] == {"union": 2}


def _spec(name: str):
    from topics import catalogue

    return getattr(catalogue, name)


def test_completion_before_enrolment_is_awarded(bridge: Bridge) -> None:
    bridge.send(
        OU, "S9", encode(ou_event("o-2", "course.completed", student_no="S9", when=T0 + timedelta(days=5), score=81))
    )
    bridge.send(UNION, "GH9", encode(union_event("u-9", "COURSE_COMPLETE", member_no="GH9", when=T0, passed=True)))
    bridge.start_worker()
    bridge.settle()
    by_course = _by_course(bridge.records())
    ou = by_course["ou:NOU-08123"]
    assert ou["status"] == "AWARDED" and ou["credits"] == 2.0 and ou["rule"] == "course_credits"
    assert ou["enrolled_at"] is None and ou["score"] == 81

    # The enrolment arrives late: the record keeps its award and learns its enrolment time.
    bridge.send(OU, "S9", encode(ou_event("o-1", student_no="S9", when=T0)))
    bridge.settle()
    late = _by_course(bridge.records())["ou:NOU-08123"]
    assert late["status"] == "AWARDED" and late["version"] == ou["version"] + 1
    assert datetime.fromisoformat(late["enrolled_at"].replace("Z", "+00:00")) == T0.astimezone(timezone.utc)
    union = by_course["union:ACFTU-SK-0012"]
    assert union["status"] == "AWARDED" and union["credits"] == 1.5 and union["rule"] == "hours/16"


def test_malformed_message_is_dead_lettered_and_the_rest_processed(bridge: Bridge) -> None:
    bad = b'{"msgId": "u-bad", "eventType": "COURSE_ENROLL"'  # truncated JSON
    bridge.send(UNION, "GH1", encode(union_event("u-1", member_no="GH1", when=T0)))
    bridge.send(UNION, "GH1", bad)
    missing = union_event("u-3", member_no="GH1", when=T0)
    del missing["course"]["courseCode"]
    bridge.send(UNION, "GH1", encode(missing))
    bridge.send(OU, "S1", b"\xff\xfe not utf-8")
    bridge.send(UNION, "GH1", encode(union_event("u-4", "COURSE_WITHDRAW", member_no="GH1", when=T0 + timedelta(days=1))))
    bridge.send(UNION, "GH2", encode(union_event("u-5", member_no="GH2", course="ACFTU-SK-0013", when=T0)))
    bridge.start_worker()
    bridge.settle()

    letters = bridge.dead_letters()
    assert sorted(l["reason_code"] for l in letters) == ["missing_field", "not_json", "not_utf8"]
    truncated = next(l for l in letters if l["reason_code"] == "not_json")
    assert open_dead_letter(truncated) == bad and "payload_base64" not in truncated
    assert truncated["topic"] == UNION and truncated["offset"] >= 0 and truncated["partition"] >= 0
    assert "courseCode" in next(l for l in letters if l["reason_code"] == "missing_field")["reason"]
    statuses = sorted(r["status"] for r in bridge.records().values())
    assert statuses == ["ENROLLED", "WITHDRAWN"]
    assert bridge.counts()["events"] == {"union": 3}


def test_simulated_traffic_of_every_platform_makes_each_person_one_learner(bridge: Bridge) -> None:
    """The simulator's ground truth against a real worker: every person whose accounts sent one
    valid resident ID is one learner holding all of them, on two platforms or all three; no
    learner joins two persons; every good event is processed once."""
    messages, expected = simulate.generate(1500, seed=17)
    for msg in messages:
        bridge.send(msg.topic, msg.key, msg.value)
    bridge.start_worker()
    bridge.settle()

    learners = bridge.live_learners()
    learner_of = {(a["platform"], a["account"]): lid for lid, l in learners.items() for a in l["accounts"]}
    assert any(len(person) == 3 for person in expected.linked)
    for person in expected.linked:
        assert len({learner_of[item] for item in person.items()}) == 1, person
    owner = {item: n for n, person in enumerate(expected.people) for item in person.items()}
    for learner in learners.values():
        persons = {owner.get((a["platform"], a["account"])) for a in learner["accounts"]} - {None}
        assert len(persons) <= 1, learner["learner_id"]
    # The others on several platforms are one learner too when their evidence allows it: most are.
    joined = sum(1 for person in expected.people if len({learner_of[item] for item in person.items()}) == 1)
    assert expected.linked_by_resident_id <= joined <= expected.persons_on_several
    assert joined > 0.9 * expected.persons_on_several
    assert bridge.counts()["events"] == expected.events
    assert len(bridge.dead_letters()) == expected.malformed
