"""The processing stage against a real database, one suite for every backend (SQLite, PostgreSQL).

Each test feeds ``Pipeline.process`` batches of raw platform messages (tests/factories.py) and
asserts on what the database holds afterwards: the registry's counts, the tables, the outbox and
the values the outbox would publish (:func:`bridge.store.claim.published_value`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.engine import make_url

import adapters
from bridge.core.courses import CourseKeys, parse_equivalences
from bridge.core.events import CanonicalEvent, Platform
from bridge.core.evidence import AccountKey, Sighting
from bridge.core.pseudonym import Pseudonymiser
from bridge.core.records import learner_id_for, record_id_for
from bridge.core.sealing import Sealer
from bridge.core.versions import sighting_weight
from bridge.pipeline import BatchResult, Inbound, Pipeline
from bridge.settings import DEVELOPMENT_DEADLETTER_KEY
from bridge.store import schema as t
from bridge.store.engine import build_engine, upgrade
from bridge.store.claim import published_value
from bridge.store.uow import reading, writing
from tests.factories import BEIJING, OU, UNION, encode, ou_event, resident_id, union_event
from tests.operators import trusted
from topics import catalogue

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
T0 = datetime(2024, 4, 1, 9, 0, tzinfo=BEIJING)
KEY = Pseudonymiser.from_secret("store-suite-key-0123456789-0123456789")
EQUIVALENCES = "course_key,platform,course_id\ndigital-skills,union,ACFTU-SK-0012\ndigital-skills,ou,NOU-08123\n"
RECORDS, IDENTITIES, REVIEWS = (
    catalogue.CREDIT_RECORDS.name,
    catalogue.LEARNER_IDENTITIES.name,
    catalogue.REVIEW.name,
)


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


# -- fixtures and helpers -----------------------------------------------------------------------


def make_pipeline(engine: Engine, *, parsers=None, course_keys: CourseKeys | None = None) -> Pipeline:
    return Pipeline(
        writing(engine, serializable=True),
        parsers if parsers is not None else adapters.parsers(),
        KEY,
        course_keys if course_keys is not None else parse_equivalences(EQUIVALENCES),
        16.0,
        clock=lambda: NOW,
        trusted_keys=trusted(),
    )


@pytest.fixture
def pipeline(engine: Engine) -> Pipeline:
    return make_pipeline(engine)


class Feed:
    """Builds inbound messages with increasing offsets per (topic, partition)."""

    def __init__(self) -> None:
        self.offsets: Counter[tuple[str, int]] = Counter()

    def raw(self, topic: str, value: bytes | None, key: bytes | None = b"k", partition: int = 0) -> Inbound:
        offset = self.offsets[(topic, partition)]
        self.offsets[(topic, partition)] += 1
        return Inbound(topic=topic, partition=partition, offset=offset, key=key, value=value)

    def union(self, msg_id: str, event_type: str = "COURSE_ENROLL", **kwargs: Any) -> Inbound:
        event = union_event(msg_id, event_type, **kwargs)
        return self.raw(UNION, encode(event), event["member"]["memberNo"].encode())

    def ou(self, event_id: str, event_type: str = "enrolment.created", **kwargs: Any) -> Inbound:
        event = ou_event(event_id, event_type, **kwargs)
        return self.raw(OU, encode(event), event["learner"]["student_no"].encode())


@pytest.fixture
def feed() -> Feed:
    return Feed()


def counts(engine: Engine) -> dict[str, Any]:
    with reading(engine)() as uow:
        return uow.totals.counts()


def rows(engine: Engine, table) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(table)).all())


def snapshot(engine: Engine) -> dict[str, list[tuple]]:
    """Every row of every table the pipeline writes, in a stable order (not ``registry_meta``,
    written once when the registry is created)."""
    with engine.connect() as conn:
        return {
            table.name: sorted((tuple(r) for r in conn.execute(select(table))), key=repr)
            for table in t.metadata.sorted_tables
            if table is not t.registry_meta
        }


def outbox(engine: Engine) -> list[tuple[int, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(select(t.outbox.c.id, t.outbox.c.topic, t.outbox.c.key).order_by(t.outbox.c.id))
        return [tuple(r) for r in rows]


def published(engine: Engine, topic: str, key: str) -> dict | None:
    with reading(engine)() as uow:
        value = published_value(uow, topic, key)
    return None if value is None else json.loads(value)


def live_records(engine: Engine) -> dict[str, dict]:
    with reading(engine)() as uow:
        ids = uow.conn.execute(select(t.credit_records.c.record_id)).scalars().all()
        values = {rid: published_value(uow, RECORDS, rid) for rid in ids}
    return {rid: json.loads(v) for rid, v in values.items() if v is not None}


def identities(engine: Engine) -> dict[str, dict]:
    with reading(engine)() as uow:
        ids = uow.conn.execute(select(t.learners.c.learner_id)).scalars().all()
        return {lid: json.loads(published_value(uow, IDENTITIES, lid)) for lid in ids}


def live_identities(engine: Engine) -> dict[str, dict]:
    return {k: v for k, v in identities(engine).items() if v["merged_into"] is None}


def processed_total(result: BatchResult) -> int:
    return sum(result.processed.values())


# -- one person, two platforms ------------------------------------------------------------------


def _same_person_messages(feed: Feed) -> tuple[Inbound, Inbound, str]:
    rid = resident_id()
    messy = rid[:6] + " " + rid[6:-1] + rid[-1].lower()  # spaces and a lower-case x
    u = feed.union("u-1", "COURSE_COMPLETE", member_no="GH1", id_card=messy, when=day(1), passed=True, score=70)
    o = feed.ou("o-1", "course.completed", student_no="S1", document=("RESIDENT_ID", rid), when=day(2), score=90)
    return u, o, rid


@pytest.mark.parametrize("arrangement", ["one batch", "union first", "ou first"])
def test_same_person_on_both_platforms_is_one_learner(engine: Engine, feed: Feed, arrangement: str) -> None:
    u, o, _ = _same_person_messages(feed)
    pipeline = make_pipeline(engine)
    if arrangement == "one batch":
        results = [pipeline.process([u, o])]
    elif arrangement == "union first":
        results = [pipeline.process([u]), pipeline.process([o])]
    else:
        results = [pipeline.process([o]), pipeline.process([u])]
    assert all(not r.dead_letters for r in results)

    c = counts(engine)
    assert c["events"] == {"union": 1, "ou": 1}
    assert (c["learners"], c["accounts"], c["cross_platform_learners"]) == (1, 2, 1)
    [(learner_id, identity)] = live_identities(engine).items()
    assert {(a["platform"], a["account"]) for a in identity["accounts"]} == {("union", "GH1"), ("ou", "S1")}
    assert sorted(link["method"] for link in identity["links"]) == ["account", "resident_id"]
    assert identity["merged_into"] is None

    # Equivalent courses: one record with both sources and the larger credit value.
    [record] = live_records(engine).values()
    assert record["learner_id"] == learner_id
    assert record["record_id"] == record_id_for(learner_id, "digital-skills")
    assert (record["course_key"], record["status"], record["credits"], record["rule"]) == (
        "digital-skills", "AWARDED", 2.0, "course_credits",
    )
    assert record["score"] == 90
    assert {(s["platform"], s["account"], s["event_id"]) for s in record["sources"]} == {
        ("union", "GH1", "u-1"), ("ou", "S1", "o-1"),
    }


def test_different_resident_ids_stay_different_learners(pipeline: Pipeline, feed: Feed) -> None:
    pipeline.process([
        feed.union("u-1", member_no="GH1", id_card=resident_id(serial="002"), name="李雷", mobile="13900000001"),
        feed.ou("o-1", student_no="S1", document=("RESIDENT_ID", resident_id(serial="011")), name="韩梅梅",
                phone="13900000002"),
    ])
    c = counts(pipeline.units.engine)
    assert (c["learners"], c["cross_platform_learners"]) == (2, 0), c


def test_an_invalid_resident_id_links_nothing_and_is_counted(pipeline: Pipeline, feed: Feed) -> None:
    rid = resident_id()
    bad = rid[:-1] + ("1" if rid[-1] != "1" else "2")  # checksum typo
    result = pipeline.process([
        feed.ou("o-1", student_no="S1", document=("RESIDENT_ID", rid), name="李雷", phone="13900000001"),
        feed.union("u-1", member_no="GH1", id_card=bad, name="韩梅梅", mobile="13900000002"),
    ])
    assert result.data_quality == Counter({"bad_checksum": 1})
    c = counts(pipeline.units.engine)
    assert c["events"] == {"union": 1, "ou": 1}  # the event itself is still processed
    assert (c["learners"], c["cross_platform_learners"]) == (2, 0)
    assert c["data_quality"] == {"bad_checksum": 1}


def test_docless_account_links_by_name_and_mobile(pipeline: Pipeline, feed: Feed) -> None:
    pipeline.process([feed.ou("o-1", student_no="S1", document=("RESIDENT_ID", resident_id()))])
    result = pipeline.process([feed.union("u-1", member_no="GH1", name="张　伟", mobile="+86 138-0013-8000")])
    assert result.identity == Counter({"name_mobile": 1})
    [identity] = identities(pipeline.units.engine).values()
    assert {link["account"]: link["method"] for link in identity["links"]} == {"S1": "account", "GH1": "name_mobile"}


def test_a_conflicting_document_is_reviewed_never_merged(pipeline: Pipeline, feed: Feed) -> None:
    first, second = resident_id(serial="002"), resident_id(serial="011")
    pipeline.process([feed.union("u-1", member_no="GH1", id_card=first, when=day(0))])
    before = identities(pipeline.units.engine)
    result = pipeline.process([feed.union("u-2", member_no="GH1", id_card=second, when=day(3))])
    assert result.reviews == 1
    assert "merge" not in result.identity
    c = counts(pipeline.units.engine)
    assert (c["learners"], c["merged_learners"], c["open_reviews"]) == (1, 0, 1)
    # The account stays where it was; only the version moved (one more event in its component).
    assert {k: {**v, "version": 0} for k, v in identities(pipeline.units.engine).items()} == {
        k: {**v, "version": 0} for k, v in before.items()
    }
    [review_key] = [key for _, topic, key in outbox(pipeline.units.engine) if topic == REVIEWS]
    review = published(pipeline.units.engine, REVIEWS, review_key)
    assert review["kind"] == "conflicting_document"
    assert review["account"] == {"platform": "union", "account": "GH1"}
    assert review["candidates"] == [learner_id_for("union", "GH1")]
    # The same contradiction again asks the same question once.
    again = pipeline.process([feed.union("u-3", member_no="GH1", id_card=second, when=day(4))])
    assert again.reviews == 0
    assert counts(pipeline.units.engine)["open_reviews"] == 1


# -- idempotence and versions -------------------------------------------------------------------


def _mixed_batch(feed: Feed) -> list[Inbound]:
    rid = resident_id()
    return [
        feed.union("u-1", member_no="GH1", id_card=rid, when=day(0)),
        feed.union("u-2", "COURSE_COMPLETE", member_no="GH1", id_card=rid, when=day(5), passed=True, score=88),
        feed.ou("o-1", student_no="S1", document=("RESIDENT_ID", rid), course="NOU-00001", when=day(1)),
        feed.ou("o-2", "enrolment.cancelled", student_no="S1", course="NOU-00001", when=day(2)),
        feed.union("u-3", member_no="GH2", name="李雷", mobile="13900000001", course="ACFTU-XX-0001"),
        feed.raw(UNION, b"not json"),
    ]


def test_processing_the_same_batch_twice_changes_nothing(pipeline: Pipeline, feed: Feed) -> None:
    batch = _mixed_batch(feed)
    first = pipeline.process(batch)
    assert processed_total(first) == 5
    assert first.duplicates == 0
    before = snapshot(pipeline.units.engine)
    records = rows(pipeline.units.engine, t.credit_records)
    # A record's version is the number of events behind it.
    assert records and all(r.version == len(json.loads(r.value)["sources"]) for r in records)

    second = pipeline.process(batch)
    assert second.duplicates == 5
    assert processed_total(second) == 0
    assert (second.records_changed, second.identities_changed, second.reviews) == (0, 0, 0)
    assert snapshot(pipeline.units.engine) == before  # no new outbox rows, no version moved, nothing at all
    # The bad message is bad again: it is dead-lettered each time it is delivered.
    assert [(m, d.reason_code) for m, d in second.dead_letters] == [(batch[-1], "not_json")]


def test_redelivery_with_new_coordinates_is_still_a_duplicate(pipeline: Pipeline, feed: Feed) -> None:
    pipeline.process([feed.union("u-1", member_no="GH1")])
    before = snapshot(pipeline.units.engine)
    # The same event id re-published (a producer retry) lands at a new offset.
    result = pipeline.process([feed.union("u-1", member_no="GH1")])
    assert result.duplicates == 1
    assert snapshot(pipeline.units.engine) == before


def test_the_same_event_twice_in_one_batch_counts_one_duplicate(pipeline: Pipeline, feed: Feed) -> None:
    enrol = feed.union("u-1", member_no="GH1")
    result = pipeline.process([enrol, feed.union("u-2", member_no="GH1", course="ACFTU-XX-0001"), enrol])
    assert result.duplicates == 1
    assert result.processed == Counter({("union", "enrolled"): 2})
    assert counts(pipeline.units.engine)["events"] == {"union": 2}
    [record] = [r for r in live_records(pipeline.units.engine).values() if r["course_key"] == "digital-skills"]
    assert record["sources"] == [{"platform": "union", "account": "GH1", "event_id": "u-1"}]
    assert record["version"] == 1


def weight(at: datetime, ties: int = 1) -> int:
    """What one slot (an account, or one of its digests) first seen at ``at`` adds to an identity version."""
    return sighting_weight(Sighting(at, ""), ties)


def test_versions_rise_by_one_per_real_change_only(pipeline: Pipeline, feed: Feed) -> None:
    """A record's version counts the events behind it: each new event is one change, a redelivery
    none. An identity's version weighs the identity evidence of its component (each account and
    digest by its first sighting, and the decisions): a known learner's next course leaves it, and
    the identity, alone. Both are the same whatever order or batches the events arrive in."""
    engine = pipeline.units.engine
    learner = learner_id_for("union", "GH1")
    record_id = record_id_for(learner, "digital-skills")
    other_id = record_id_for(learner, "union:ACFTU-XX-0001")

    def state() -> tuple[int, int, int]:
        record = published(engine, RECORDS, record_id)
        return record["version"], published(engine, IDENTITIES, learner)["version"], len(outbox(engine))

    enrol = feed.union("u-1", member_no="GH1", when=day(0))
    first = pipeline.process([enrol])
    # GH1 and its name+mobile, both first seen on day 0.
    v1 = 2 * weight(day(0))
    assert state() == (1, v1, 2)
    assert (first.identities_changed, first.resolved) == (1, 1)
    assert published(engine, RECORDS, record_id)["status"] == "ENROLLED"

    result = pipeline.process([feed.union("u-2", "COURSE_COMPLETE", member_no="GH1", when=day(3), passed=True, score=60)])
    assert state() == (2, v1, 3)  # the record changed; the identity did not: not even re-resolved
    assert (result.records_changed, result.identities_changed, result.resolved) == (1, 0, 0)
    assert published(engine, RECORDS, record_id)["status"] == "AWARDED"

    pipeline.process([enrol, feed.union("u-2", "COURSE_COMPLETE", member_no="GH1", when=day(3), passed=True, score=60)])
    assert state() == (2, v1, 3)  # redeliveries change nothing

    pipeline.process([feed.union("u-9", member_no="GH1", course="ACFTU-XX-0001", when=day(4))])
    assert state() == (2, v1, 4)  # another course's record is not this one's change
    assert published(engine, RECORDS, other_id)["version"] == 1

    # Two changes to one record in one batch are two versions; only the second is published.
    pipeline.process([
        feed.union("u-3", "COURSE_COMPLETE", member_no="GH1", when=day(6), passed=True, score=95),
        feed.union("u-4", "COURSE_WITHDRAW", member_no="GH1", when=day(7)),
    ])
    assert state() == (4, v1, 5)
    record = published(engine, RECORDS, record_id)
    assert (record["status"], record["score"], len(record["sources"])) == ("AWARDED", 95, 4)

    # A second account joining the learner (by name and mobile) is one change of the identity.
    # GH2 sorts after GH1, so the learner keeps its id and its records keep theirs.
    result = pipeline.process([feed.union("u-5", member_no="GH2", course="ACFTU-XX-0002", when=day(8))])
    v2 = v1 + 2 * weight(day(8))
    assert state() == (4, v2, 7)  # GH2's record and the identity
    assert (result.identities_changed, result.resolved) == (1, 2)
    assert len(published(engine, IDENTITIES, learner)["accounts"]) == 2
    pipeline.process([feed.union("u-6", member_no="GH2", course="ACFTU-XX-0002", when=day(9))])
    assert state() == (4, v2, 8)

    # An event earlier than GH1's first (arriving late) moves its first sightings: GH1's link now
    # dates from it, so the identity changes, and its version rises as if it had come first.
    result = pipeline.process([feed.union("u-0", member_no="GH1", course="ACFTU-XX-0003", when=day(-1))])
    v3 = 2 * weight(day(-1)) + 2 * weight(day(8))
    assert v3 > v2 and state() == (4, v3, 10)
    assert result.identities_changed == 1
    link = next(l for l in published(engine, IDENTITIES, learner)["links"] if l["account"] == "GH1")
    assert link["event_id"] == "u-0"
    # Another event within that same second is a tie: it could have been the first sighting.
    pipeline.process([feed.union("u-00", member_no="GH1", course="ACFTU-XX-0004", when=day(-1))])
    assert state() == (4, 2 * weight(day(-1), 2) + 2 * weight(day(8)), 12)


def test_a_known_learners_next_course_does_not_re_resolve(pipeline: Pipeline, feed: Feed, monkeypatch) -> None:
    """Only events with new identity evidence re-resolve: the closure is not even read otherwise."""
    from bridge.store.identity import IdentityRepository

    engine = pipeline.units.engine
    rid = resident_id()
    pipeline.process([
        feed.union("u-1", member_no="GH1", id_card=rid, when=day(0)),
        feed.ou("o-1", student_no="S1", document=("RESIDENT_ID", rid), course="NOU-00001", when=day(1)),
    ])
    learner = learner_id_for("union", "GH1")
    before = published(engine, IDENTITIES, learner)
    assert len(before["accounts"]) == 2
    groups: list[set] = []
    real_group = IdentityRepository.group

    def spy(self, seeds, max_shared=10):
        seeds = set(seeds)
        groups.append(seeds)
        return real_group(self, seeds, max_shared)

    monkeypatch.setattr(IdentityRepository, "group", spy)
    outbox_before = len(outbox(engine))
    # Later courses of both accounts, with the same evidence as before (and one without any).
    result = pipeline.process([
        feed.union("u-2", "COURSE_COMPLETE", member_no="GH1", id_card=rid, when=day(5), passed=True, score=80),
        feed.ou("o-2", student_no="S1", document=("RESIDENT_ID", rid), course="NOU-00002", when=day(6)),
        feed.union("u-3", member_no="GH1", name=None, mobile=None, course="ACFTU-XX-0001", when=day(7)),
    ])
    assert groups == []
    assert (result.identities_changed, result.resolved, result.records_changed) == (0, 0, 3)
    new_rows = [(topic, key) for _, topic, key in outbox(engine)[outbox_before:]]
    assert [topic for topic, _ in new_rows] == [RECORDS] * 3
    assert {published(engine, RECORDS, key)["learner_id"] for _, key in new_rows} == {learner}
    assert published(engine, IDENTITIES, learner) == before

    # New evidence on a known account (a second name+mobile) re-resolves its component.
    result = pipeline.process([feed.union("u-4", member_no="GH1", id_card=rid, name="李雷", when=day(8))])
    assert groups and groups[-1] == {AccountKey("union", "GH1")}
    assert result.resolved == 2 and result.identities_changed == 1
    assert published(engine, IDENTITIES, learner)["version"] > before["version"]


def test_the_outbox_names_each_change_once(pipeline: Pipeline, feed: Feed) -> None:
    result = pipeline.process(_mixed_batch(feed))
    entries = outbox(pipeline.units.engine)
    keys = Counter((topic, key) for _, topic, key in entries)
    assert all(n == 1 for n in keys.values())
    assert sum(1 for topic, _ in keys if topic == RECORDS) == result.records_changed == len(rows(pipeline.units.engine, t.credit_records))
    assert sum(1 for topic, _ in keys if topic == IDENTITIES) == result.identities_changed == counts(pipeline.units.engine)["learners"]


# -- bad input ----------------------------------------------------------------------------------


def test_bad_input_is_dead_lettered_with_coordinates_and_nothing_is_stored(pipeline: Pipeline, feed: Feed) -> None:
    missing = union_event("u-1")
    del missing["course"]["courseCode"]
    unknown = ou_event("o-1")
    unknown["event_type"] = "course.reviewed"
    batch = [
        feed.raw(UNION, b"{not json", partition=3),
        feed.raw(UNION, "数字".encode("gb18030"), partition=3),
        feed.raw(UNION, encode(missing), partition=1),
        feed.raw(OU, encode(unknown), partition=2),
        feed.raw(OU, b"[1, 2]", partition=2),
        feed.raw(OU, None, partition=0),
        feed.raw("some.other.topic", encode(union_event("u-2")), partition=5),
    ]
    result = pipeline.process(batch)

    assert processed_total(result) == 0
    assert len(result.dead_letters) == len(batch)
    for msg, letter in result.dead_letters:
        assert (letter.topic, letter.partition, letter.offset) == (msg.topic, msg.partition, msg.offset)
        if msg.value is None:
            assert letter.payload_encrypted is None and letter.payload_sha256 is None
        else:
            assert pipeline.sealer.open(letter) == msg.value
            assert letter.payload_sha256 == hashlib.sha256(msg.value).hexdigest()
            assert letter.payload_bytes == len(msg.value)
        assert letter.reason and letter.reason_code
        assert letter.dead_lettered_at == NOW
    assert [d.reason_code for _, d in result.dead_letters][:2] == ["not_json", "not_utf8"]
    assert {d.reason_code for _, d in result.dead_letters[-2:]} == {"empty_message", "unknown_topic"}
    assert "courseCode" in result.dead_letters[2][1].reason

    assert all(not table_rows for table_rows in snapshot(pipeline.units.engine).values())


def test_bad_input_does_not_hold_back_the_rest_of_the_batch(pipeline: Pipeline, feed: Feed) -> None:
    result = pipeline.process([feed.raw(UNION, b"\xff"), feed.union("u-1", member_no="GH1"), feed.raw(OU, b"{}")])
    assert processed_total(result) == 1
    assert [m.offset for m, _ in result.dead_letters] == [0, 0]
    assert counts(pipeline.units.engine)["events"] == {"union": 1}


# -- a failure inside the core for one event ----------------------------------------------------

POISON = "u-poison"


def _batch_with_poison(feed: Feed) -> list[Inbound]:
    # Three different people (no shared evidence), so that every event founds its own learner.
    return [
        feed.union("u-1", member_no="GH1", name="李雷", mobile="13900000001", when=day(0)),
        feed.union(POISON, member_no="GH-POISON", name="王芳", mobile="13900000002", course="ACFTU-POISON",
                   when=day(1)),
        feed.ou("o-1", student_no="S1", document=("RESIDENT_ID", resident_id()), name="韩梅梅",
                phone="13900000003", when=day(2)),
    ]


def _assert_poison_dead_lettered_and_rest_committed(engine: Engine, result: BatchResult, poison: Inbound) -> None:
    [(msg, letter)] = result.dead_letters
    assert msg is poison
    assert letter.reason_code == "processing_error"
    assert (letter.topic, letter.partition, letter.offset) == (poison.topic, poison.partition, poison.offset)
    assert Sealer.from_secret(DEVELOPMENT_DEADLETTER_KEY).open(letter) == poison.value
    assert processed_total(result) == 2
    c = counts(engine)
    assert c["events"] == {"union": 1, "ou": 1}
    with engine.connect() as conn:
        accounts = set(conn.execute(select(t.accounts.c.platform, t.accounts.c.account)).all())
        facts = set(conn.execute(select(t.credit_facts.c.event_id)).scalars())
    assert accounts == {("union", "GH1"), ("ou", "S1")}  # nothing of the poison event survives
    assert facts == {"u-1", "o-1"}
    assert {r["course_key"] for r in live_records(engine).values()} == {"digital-skills"}


class _CourseKeysFailingFor(CourseKeys):
    """Real course keys, except that one course trips an unexpected error (a bug in the core)."""

    def key_for(self, platform: Platform | str, course_id: str) -> str:
        if course_id == "ACFTU-POISON":
            raise RuntimeError("simulated bug in the core")
        return super().key_for(platform, course_id)


def test_a_core_failure_dead_letters_only_that_event(engine: Engine, feed: Feed) -> None:
    keys = parse_equivalences(EQUIVALENCES)
    pipeline = make_pipeline(engine, course_keys=_CourseKeysFailingFor(keys.table))
    batch = _batch_with_poison(feed)
    result = pipeline.process(batch)
    _assert_poison_dead_lettered_and_rest_committed(engine, result, batch[1])


def _parsers_failing_for(event_id: str):
    def union_parser(value: bytes) -> CanonicalEvent:
        event = adapters.parsers()[UNION](value)
        if event.event_id == event_id:
            raise RuntimeError("simulated bug while parsing")
        return event

    return {**adapters.parsers(), UNION: union_parser}


def test_a_parser_failure_dead_letters_only_that_event(engine: Engine, feed: Feed) -> None:
    pipeline = make_pipeline(engine, parsers=_parsers_failing_for(POISON))
    batch = _batch_with_poison(feed)
    result = pipeline.process(batch)
    _assert_poison_dead_lettered_and_rest_committed(engine, result, batch[1])


def test_a_rolled_back_event_links_nothing(engine: Engine, feed: Feed) -> None:
    keys = parse_equivalences(EQUIVALENCES)
    pipeline = make_pipeline(engine, course_keys=_CourseKeysFailingFor(keys.table))
    result = pipeline.process(_batch_with_poison(feed))
    assert result.identity == Counter({"account": 2})
    assert counts(engine)["learners"] == 2


def test_a_rolled_back_event_is_not_counted_as_a_data_quality_problem(engine: Engine, feed: Feed) -> None:
    keys = parse_equivalences(EQUIVALENCES)
    pipeline = make_pipeline(engine, course_keys=_CourseKeysFailingFor(keys.table))
    bad_id = resident_id()[:-1] + ("1" if resident_id()[-1] != "1" else "2")
    batch = [
        feed.union("u-1", member_no="GH1", name="李雷", mobile="13900000001", when=day(0)),
        feed.union(POISON, member_no="GH-POISON", id_card=bad_id, course="ACFTU-POISON", when=day(1)),
    ]
    result = pipeline.process(batch)
    assert [d.reason_code for _, d in result.dead_letters] == ["processing_error"]
    assert counts(engine)["data_quality"] == {}
    assert result.data_quality == Counter()


# -- no personal data in storage ----------------------------------------------------------------


RID = resident_id("320106", "19800101", "123")
RID15 = "320106800101123"  # the same person's legacy number (upgraded to RID)
PERSONAL = [
    RID, RID.lower(), RID[:17], RID15, "320106 19800101",
    "张伟", "张　伟", "张", "伟", "阿依古丽", "买买提", "Zhang Wei", "zhang wei",
    "13800138000", "138 0013 8000", "0013 8000", "+8613800138000", "8613800138000",
    "13912345678", "139-1234-5678",
    "E12345678", "e12345678",
    "110105194912310021",  # an invalid number (bad checksum) must not be kept either
]


def test_no_table_holds_a_raw_resident_id_name_or_phone(pipeline: Pipeline, feed: Feed) -> None:
    batch = [
        feed.union("u-1", member_no="GH1", id_card=RID[:6] + " " + RID[6:], name="张　伟", mobile="138 0013 8000"),
        feed.ou("o-1", student_no="S1", document=("RESIDENT_ID", RID15), name="张伟", phone="+8613800138000"),
        feed.union("u-2", "COURSE_COMPLETE", member_no="GH1", id_card=RID.lower(), passed=True, score=80,
                   when=day(3)),
        feed.ou("o-2", student_no="S2", document=("PASSPORT", "e12345678"), name="Zhang Wei", phone="13912345678",
                course="NOU-00002"),
        feed.union("u-3", member_no="GH3", name="阿依古丽·买买提", mobile="139-1234-5678", course="ACFTU-XX-0003"),
        feed.union("u-4", member_no="GH4", id_card="110105194912310021", name="张伟", mobile="13800138000",
                   course="ACFTU-XX-0004"),
    ]
    result = pipeline.process(batch)
    assert processed_total(result) == len(batch)
    assert counts(pipeline.units.engine)["cross_platform_learners"] >= 1  # evidence was used, not dropped

    found = []
    with pipeline.units.reader()() as uow:
        for table in t.metadata.sorted_tables:
            for row in uow.conn.execute(select(table)):
                for column, value in zip(table.columns, row):
                    cell = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
                    found += [(table.name, column.name, p) for p in PERSONAL if p.casefold() in cell.casefold()]
        for topic, key in uow.conn.execute(select(t.outbox.c.topic, t.outbox.c.key)).all():
            value = (published_value(uow, topic, key) or b"").decode()
            found += [(topic, key, p) for p in PERSONAL if p.casefold() in value.casefold()]
    assert found == []


def test_published_timestamps_are_utc_whatever_the_database_time_zone(
    database_url: str, feed: Feed, request: pytest.FixtureRequest
) -> None:
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        admin = build_engine(database_url)
        with admin.connect() as conn:
            conn.execute(text(f"ALTER DATABASE \"{url.database}\" SET timezone = 'Asia/Shanghai'"))
            conn.commit()
        admin.dispose()
    engine = build_engine(database_url)
    upgrade(engine)
    try:
        make_pipeline(engine).process([
            feed.union("u-1", member_no="GH1", when=day(0)),
            feed.union("u-2", "COURSE_COMPLETE", member_no="GH1", when=day(2), passed=True),
        ])
        learner = learner_id_for("union", "GH1")
        record = published(engine, RECORDS, record_id_for(learner, "digital-skills"))
        identity = published(engine, IDENTITIES, learner)
    finally:
        engine.dispose()
    stamps = [record["enrolled_at"], record["completed_at"], identity["links"][0]["linked_at"]]
    assert [datetime.fromisoformat(s) for s in stamps] == [day(0), day(2), day(0)]
    assert all(datetime.fromisoformat(s).utcoffset() == timedelta(0) for s in stamps), stamps


# -- merges (CONTRACT §3.5) ---------------------------------------------------------------------

D = resident_id("440305", "19900215", "456")
A_LEARNER, B_LEARNER = learner_id_for("union", "GH-A"), learner_id_for("ou", "S-B")


@dataclass(frozen=True)
class MergeEvents:
    a1: Inbound  # account A, no document
    b1: Inbound  # account B, document D
    a2: Inbound  # account A, now with D


def _merge_events(feed: Feed) -> MergeEvents:
    # No name or mobile on A: only the document may link it.
    return MergeEvents(
        a1=feed.union("u-a1", member_no="GH-A", name=None, mobile=None, when=day(0)),
        b1=feed.ou("o-b1", student_no="S-B", document=("RESIDENT_ID", D), course="NOU-55555", when=day(1)),
        a2=feed.union("u-a2", "COURSE_COMPLETE", member_no="GH-A", id_card=D, name=None, mobile=None,
                      when=day(5), passed=True, score=77),
    )


def test_new_evidence_merges_the_account_learner_into_the_document_holder(pipeline: Pipeline, feed: Feed) -> None:
    engine = pipeline.units.engine
    ev = _merge_events(feed)
    pipeline.process([ev.a1, ev.b1])
    assert counts(engine)["learners"] == 2
    a_before = published(engine, IDENTITIES, A_LEARNER)["version"]
    old_record = record_id_for(A_LEARNER, "digital-skills")
    assert published(engine, RECORDS, old_record)["status"] == "ENROLLED"
    outbox_before = len(outbox(engine))

    result = pipeline.process([ev.a2])
    assert result.identity["merge"] == 1

    c = counts(engine)
    assert (c["learners"], c["merged_learners"], c["accounts"], c["cross_platform_learners"]) == (1, 1, 2, 1)
    learners = {r.learner_id: r for r in rows(engine, t.learners)}
    assert learners[A_LEARNER].merged_into == B_LEARNER
    assert learners[B_LEARNER].merged_into is None

    # A's record is retired (a tombstone) and lives on under B with a new id and both A's events.
    assert published(engine, RECORDS, old_record) is None
    new_record = published(engine, RECORDS, record_id_for(B_LEARNER, "digital-skills"))
    assert new_record["learner_id"] == B_LEARNER
    assert (new_record["status"], new_record["credits"], new_record["score"]) == ("AWARDED", 1.5, 77)
    assert {s["event_id"] for s in new_record["sources"]} == {"u-a1", "u-a2"}
    assert {r["learner_id"] for r in live_records(engine).values()} == {B_LEARNER}
    with engine.connect() as conn:
        owners = set(conn.execute(select(t.accounts.c.learner_id)).scalars())
        retired = dict(conn.execute(select(t.credit_records.c.record_id, t.credit_records.c.retired)).all())
    assert owners == {B_LEARNER}
    assert retired[old_record] is True

    # Identities: A points at B and holds no account; B holds both.
    a_identity, b_identity = published(engine, IDENTITIES, A_LEARNER), published(engine, IDENTITIES, B_LEARNER)
    assert (a_identity["merged_into"], a_identity["accounts"]) == (B_LEARNER, [])
    # Merged away, A follows its founding account's component: B's version, above A's last one.
    assert a_identity["version"] == b_identity["version"] > a_before
    assert {(a["platform"], a["account"]) for a in b_identity["accounts"]} == {("union", "GH-A"), ("ou", "S-B")}

    # The outbox publishes the tombstone, the new record and both identities.
    new_rows = {(topic, key) for _, topic, key in outbox(engine)[outbox_before:]}
    assert new_rows == {
        (RECORDS, old_record),
        (RECORDS, record_id_for(B_LEARNER, "digital-skills")),
        (IDENTITIES, A_LEARNER),
        (IDENTITIES, B_LEARNER),
    }

    # Replaying everything changes nothing.
    before = snapshot(engine)
    assert pipeline.process([ev.a1, ev.b1, ev.a2]).duplicates == 3
    assert snapshot(engine) == before


def test_a_merged_account_is_linked_by_the_document_that_merged_it(pipeline: Pipeline, feed: Feed) -> None:
    ev = _merge_events(feed)
    pipeline.process([ev.a1, ev.b1])
    pipeline.process([ev.a2])
    links = {link["account"]: link for link in published(pipeline.units.engine, IDENTITIES, B_LEARNER)["links"]}
    assert links["GH-A"]["method"] == "resident_id"
    assert links["GH-A"]["event_id"] == "u-a2"


def test_the_document_holder_survives_whatever_its_account_number(pipeline: Pipeline, feed: Feed) -> None:
    engine = pipeline.units.engine
    holder, newcomer = learner_id_for("union", "GH-B"), learner_id_for("ou", "S-A")
    pipeline.process([
        feed.ou("o-a1", student_no="S-A", name=None, phone=None, when=day(0)),
        feed.union("u-b1", member_no="GH-B", id_card=D, name=None, mobile=None, course="ACFTU-XX-0001", when=day(1)),
    ])
    pipeline.process([feed.ou("o-a2", student_no="S-A", document=("RESIDENT_ID", D), name=None, phone=None,
                              when=day(5))])
    learners = {r.learner_id: r.merged_into for r in rows(engine, t.learners)}
    assert learners == {holder: None, newcomer: holder}


def _outcome(engine: Engine) -> tuple[Any, Any]:
    """The published outcome of a run, without versions (they count the route, not the result)."""
    records = {
        (r["record_id"], r["learner_id"], r["course_key"], r["status"], r["credits"], r["score"],
         json.dumps(r["sources"], sort_keys=True))
        for r in live_records(engine).values()
    }
    learners = {
        (lid, json.dumps(sorted((a["platform"], a["account"]) for a in i["accounts"])))
        for lid, i in live_identities(engine).items()
    }
    return records, learners


def _fresh_outcome(database_url: str, batches: Sequence[Sequence[Inbound]]) -> tuple[Any, Any]:
    """The outcome of processing ``batches`` on an emptied ledger."""
    engine = build_engine(database_url)
    upgrade(engine)
    try:
        with engine.begin() as conn:
            for table in reversed(t.metadata.sorted_tables):
                conn.execute(table.delete())
        pipeline = make_pipeline(engine)
        for batch in batches:
            pipeline.process(batch)
        return _outcome(engine)
    finally:
        engine.dispose()


def test_the_same_events_in_any_order_end_in_the_same_learners_and_records(database_url: str) -> None:
    ev = _merge_events(Feed())
    runs = {
        order: _fresh_outcome(database_url, [[getattr(ev, name)] for name in order])
        for order in itertools.permutations(("a1", "b1", "a2"))
    }
    runs["one batch"] = _fresh_outcome(database_url, [[ev.a2, ev.b1, ev.a1]])
    first = runs[("a1", "b1", "a2")]
    assert len(first[1]) == 1  # one live learner in the end
    assert all(outcome == first for outcome in runs.values()), {
        order: sorted(learners) for order, (_, learners) in runs.items()
    }


def _name_mobile_events(feed: Feed) -> tuple[Inbound, Inbound, Inbound]:
    """S1 and S2 hold different resident IDs; all three share a name and mobile; GH1 has no document."""
    same = {"name": "王芳"}
    s1 = feed.ou("o-1", student_no="S1", document=("RESIDENT_ID", resident_id(serial="101")), phone="13700000000",
                 course="NOU-00001", when=day(0), **same)
    gh1 = feed.union("u-1", member_no="GH1", mobile="137 0000 0000", course="ACFTU-XX-0001", when=day(1), **same)
    s2 = feed.ou("o-2", student_no="S2", document=("RESIDENT_ID", resident_id(serial="202")), phone="13700000000",
                 course="NOU-00002", when=day(2), **same)
    return s1, gh1, s2


def test_a_name_mobile_link_made_ambiguous_by_later_evidence_is_undone_and_reviewed(
    database_url: str, engine: Engine, feed: Feed
) -> None:
    pipeline = make_pipeline(engine)
    s1, gh1, s2 = _name_mobile_events(feed)
    own, first_holder, second_holder = (
        learner_id_for("union", "GH1"), learner_id_for("ou", "S1"), learner_id_for("ou", "S2"),
    )
    pipeline.process([s1, gh1])
    linked = published(engine, IDENTITIES, first_holder)
    assert {link["account"]: link["method"] for link in linked["links"]} == {"S1": "account", "GH1": "name_mobile"}
    moved_record = record_id_for(first_holder, "union:ACFTU-XX-0001")
    assert published(engine, RECORDS, moved_record)["status"] == "ENROLLED"

    result = pipeline.process([s2])
    assert result.reviews == 1
    # GH1 is back on its own learner, and its record with it; the record under S1's learner is retired.
    assert published(engine, RECORDS, moved_record) is None
    assert published(engine, RECORDS, record_id_for(own, "union:ACFTU-XX-0001"))["learner_id"] == own
    assert [a["account"] for a in published(engine, IDENTITIES, first_holder)["accounts"]] == ["S1"]
    assert published(engine, IDENTITIES, own)["links"][0]["method"] == "account"
    [review_key] = [key for _, topic, key in outbox(engine) if topic == REVIEWS]
    review = published(engine, REVIEWS, review_key)
    assert (review["kind"], review["account"]) == ("ambiguous_match", {"platform": "union", "account": "GH1"})
    assert review["candidates"] == sorted([first_holder, second_holder])

    # The same end as if S2 had been known from the start (replayed on the emptied database).
    end = _outcome(engine)
    assert end == _fresh_outcome(database_url, [[s2], [gh1], [s1]])
