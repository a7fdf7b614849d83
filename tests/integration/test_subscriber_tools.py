"""``bridge tail``, ``transcript`` and ``export`` against a real worker's published topics.

One learner has an account on each platform. The accounts are first two learners (no shared
evidence), then a union event carrying the resident ID the open-university account holds merges
them: the union learner gets ``merged_into`` and its records move to the survivor. Everything
the tools print comes from the topics, as a downstream team would see them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
from jsonschema import Draft202012Validator

from bridge.core.records import learner_id_for, record_id_for
from tests.factories import BEIJING, OU, UNION, encode, ou_event, resident_id, union_event
from tests.integration.harness import Bridge
from tests.standards import ACHIEVEMENT_CREDENTIAL, CLR_CREDENTIAL, XAPI_STATEMENT
from topics import catalogue

pytestmark = pytest.mark.integration

T0 = datetime(2024, 4, 1, 9, 0, tzinfo=BEIJING)
RID = resident_id(serial="047")
UNION_LEARNER = learner_id_for("union", "GH1")
SURVIVOR = learner_id_for("ou", "S1")
AWARDED_UNION = "union:ACFTU-SK-0012"
AWARDED_OU = "ou:NOU-08123"


def _union(msg_id: str, kind: str, course: str, days: int, **kw) -> bytes:
    # No name or mobile: the two accounts must not link before the resident ID says so.
    return encode(union_event(msg_id, kind, member_no="GH1", course=course, when=T0 + timedelta(days=days), name=None, mobile=None, **kw))


def _ou(event_id: str, kind: str, course: str, days: int, **kw) -> bytes:
    when = T0 + timedelta(days=days)
    return encode(ou_event(event_id, kind, student_no="S1", course=course, when=when, document=("RESIDENT_ID", RID), name=None, phone=None, **kw))


@pytest.fixture(scope="module")
def bridge(tmp_path_factory) -> Iterator[Bridge]:
    workdir = tmp_path_factory.mktemp("subscriber-tools")
    b = Bridge(workdir, f"sqlite:///{workdir / 'bridge.db'}")
    try:
        b.send(UNION, "GH1", _union("u-1", "COURSE_ENROLL", "ACFTU-SK-0012", 0, hours=24))
        b.send(UNION, "GH1", _union("u-2", "COURSE_COMPLETE", "ACFTU-SK-0012", 3, hours=24, passed=True, score=86.5))
        b.send(UNION, "GH1", _union("u-3", "COURSE_COMPLETE", "ACFTU-SK-0099", 4, hours=16, passed=False, score=40))
        b.send(OU, "S1", _ou("o-1", "course.completed", "NOU-08123", 5, credits=2.0, status="PASSED", score=78))
        b.send(OU, "S1", _ou("o-2", "enrolment.created", "NOU-09999", 6, credits=3.0))
        b.start_worker()
        b.settle()
        assert {UNION_LEARNER, SURVIVOR} <= set(b.live_learners()), "the accounts start as two learners"
        # The union account now shows the resident ID the open-university account holds.
        b.send(UNION, "GH1", _union("u-4", "COURSE_ENROLL", "ACFTU-SK-0030", 7, hours=8, id_card=RID))
        b.settle()
        _eventually(lambda: _merged_and_moved(b), "the merge to be published with the moved records")
        yield b
    finally:
        b.close()


def _merged_and_moved(b: Bridge) -> bool:
    merged = b.identities().get(UNION_LEARNER, {}).get("merged_into") == SURVIVOR
    owners = [r["learner_id"] for r in b.records().values()]
    return merged and owners.count(SURVIVOR) == 5 and UNION_LEARNER not in owners


def _eventually(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    # settle() waits for the outbox; reading the compacted result back can still lag a moment.
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def _headers(text: str, topic: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(f"--- {topic}  partition ")]


def test_tail_from_the_beginning_prints_every_message_with_its_position(bridge: Bridge) -> None:
    topic = catalogue.CREDIT_RECORDS.name
    code, out, err = bridge.cli("tail", topic, "--from-beginning")
    assert code == 0, err
    published = bridge.topic(catalogue.CREDIT_RECORDS)
    headers = _headers(out, topic)
    assert len(headers) == len(published)
    assert {(m.partition, m.offset) for m in published} == {
        (int(h.split()[3]), int(h.split()[5])) for h in headers
    }
    assert "key: cr_" in out and '"course_key": "union:ACFTU-SK-0012"' in out


def test_tail_by_key_shows_a_retired_record_ending_in_a_tombstone(bridge: Bridge) -> None:
    retired = record_id_for(UNION_LEARNER, AWARDED_UNION)
    code, out, err = bridge.cli("tail", catalogue.CREDIT_RECORDS.name, "--key", retired)
    assert code == 0, err
    blocks = [b for b in out.split("\n\n") if b.strip()]
    assert blocks and all(f"key: {retired}" in b for b in blocks)
    assert len({b.split()[3] for b in blocks}) == 1, "one key, one partition: the order subscribers rely on"
    assert "TOMBSTONE (null value)" in blocks[-1]
    assert len(blocks) >= 2 and '"status": "AWARDED"' in blocks[-2], "the last value before the tombstone"


def test_tail_without_options_prints_the_last_messages(bridge: Bridge) -> None:
    topic = catalogue.LEARNER_IDENTITIES.name
    code, out, _ = bridge.cli("tail", topic, "--limit", "2")
    assert code == 0
    assert len(_headers(out, topic)) == 2
    code, out, _ = bridge.cli("tail", topic)
    assert len(_headers(out, topic)) == min(10, len(bridge.topic(catalogue.LEARNER_IDENTITIES)))


def test_tail_follow_prints_new_messages_as_the_worker_publishes_them(bridge: Bridge) -> None:
    topic = catalogue.LEARNER_IDENTITIES.name
    before = len(bridge.topic(catalogue.LEARNER_IDENTITIES))
    result: dict[str, tuple[int, str, str]] = {}
    # Everything there is, then one more message: the identity of a learner that is new.
    follower = threading.Thread(
        target=lambda: result.setdefault("run", bridge.cli("tail", topic, "--follow", "--from-beginning", "--limit", str(before + 1)))
    )
    follower.start()
    bridge.send(UNION, "GH9", encode(union_event("u-9", member_no="GH9", when=T0, name=None, mobile=None)))
    bridge.settle()
    follower.join(timeout=60)
    assert not follower.is_alive(), "tail --follow did not see the new learner"
    code, out, err = result["run"]
    assert code == 0, err
    assert len(_headers(out, topic)) == before + 1
    assert f'"learner_id": "{learner_id_for("union", "GH9")}"' in out


def test_transcript_of_the_survivor_lists_both_platforms_and_totals(bridge: Bridge) -> None:
    code, out, err = bridge.cli("transcript", SURVIVOR)
    assert code == 0, err
    rows = {
        cells[0]: cells
        for cells in (line.split() for line in out.splitlines())
        if cells and cells[0].startswith(("union:", "ou:"))
    }
    assert rows[AWARDED_UNION][1:4] == ["AWARDED", "1.5", "86.5"]
    assert rows[AWARDED_OU][1:4] == ["AWARDED", "2", "78"]
    assert rows["union:ACFTU-SK-0099"][1:3] == ["FAILED", "0"]
    assert rows["ou:NOU-09999"][1] == "ENROLLED" and rows["union:ACFTU-SK-0030"][1] == "ENROLLED"
    assert "Awarded: 3.5 credits in 2 courses (2 enrolled, 1 failed, 0 withdrawn)" in out


def test_transcript_of_a_merged_learner_is_the_survivors(bridge: Bridge) -> None:
    code, out, err = bridge.cli("transcript", UNION_LEARNER, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["learner_id"] == SURVIVOR and data["merge_path"] == [UNION_LEARNER, SURVIVOR]
    assert {(a["platform"], a["account"]) for a in data["accounts"]} == {("union", "GH1"), ("ou", "S1")}
    assert {r["learner_id"] for r in data["records"]} == {SURVIVOR}
    assert data["totals"] == {
        "awarded_credits": 3.5,
        "awarded_courses": 2,
        "by_status": {"ENROLLED": 2, "AWARDED": 2, "FAILED": 1, "WITHDRAWN": 0},
    }
    code, table, _ = bridge.cli("transcript", UNION_LEARNER)
    assert table.startswith(f"{UNION_LEARNER} was merged into {SURVIVOR}")


def test_transcript_of_an_unknown_learner_fails_clearly(bridge: Bridge) -> None:
    code, out, err = bridge.cli("transcript", "lrn_nobody")
    assert code == 2 and out == ""
    assert "no learner lrn_nobody" in err


def test_export_open_badges_clr_and_xapi_of_a_merged_learner(bridge: Bridge, tmp_path) -> None:
    code, out, err = bridge.cli("export", UNION_LEARNER, "--format", "openbadges")
    assert code == 0, err
    badges = json.loads(out)
    for badge in badges:
        Draft202012Validator(ACHIEVEMENT_CREDENTIAL).validate(badge)
    earned = {b["credentialSubject"]["achievement"]["humanCode"]: b["credentialSubject"]["creditsEarned"] for b in badges}
    assert earned == {AWARDED_UNION: 1.5, AWARDED_OU: 2.0}

    target = tmp_path / "clr.json"
    code, out, err = bridge.cli("export", UNION_LEARNER, "--format", "clr", "--out", str(target), "--issuer-url", "https://credits.example.org", "--issuer-name", "Example")
    assert code == 0 and out == ""
    assert str(target) in err
    document = json.loads(target.read_text(encoding="utf-8"))
    Draft202012Validator(CLR_CREDENTIAL).validate(document)
    assert document["issuer"]["id"] == "https://credits.example.org"
    assert len(document["credentialSubject"]["verifiableCredential"]) == 2

    code, out, err = bridge.cli("export", UNION_LEARNER, "--format", "xapi")
    assert code == 0, err
    statements = json.loads(out)
    for statement in statements:
        Draft202012Validator(XAPI_STATEMENT).validate(statement)
    assert {s["actor"]["account"]["name"] for s in statements} == {SURVIVOR}
    verbs = sorted((s["object"]["definition"]["name"]["und"], s["verb"]["id"].rsplit("/", 1)[1]) for s in statements)
    assert verbs == [
        (AWARDED_OU, "completed"), (AWARDED_OU, "passed"),
        (AWARDED_UNION, "completed"), (AWARDED_UNION, "passed"),
        ("union:ACFTU-SK-0099", "completed"), ("union:ACFTU-SK-0099", "failed"),
    ]
    for text in (json.dumps(badges), target.read_text(encoding="utf-8"), json.dumps(statements)):
        assert RID not in text and RID[:17] not in text
        assert '"GH1"' not in text and '"S1"' not in text
