"""CONTRACT §1: the same event id with different content is bad input; the bridge keeps one content
per event id, whatever the order of arrival, and dead-letters the others with a reason that says so.

The order that decides (bridge/core/contents.py): event time, then account, course, kind, outcome,
score, hours and credits, then a keyed digest of the whole content; the first content is kept.
Each test runs on every backend (``engine``), and where it compares arrival orders, the other order
runs on a fresh SQLite database beside it.
"""

from __future__ import annotations

import json
from datetime import datetime
from itertools import permutations
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

import adapters
from bridge.core.contents import CONTENT, canonical_content
from bridge.core.records import learner_id_for, record_id_for
from bridge.pipeline import Inbound, Pipeline
from bridge.store import schema as t
from bridge.store.base import as_utc
from bridge.store.engine import build_engine, upgrade
from tests.factories import UNION, encode, resident_id, union_event
from tests.store.test_pipeline_contract import (
    IDENTITIES,
    KEY,
    RECORDS,
    Feed,
    day,
    feed,  # noqa: F401 - a fixture
    identities,
    live_identities,
    live_records,
    make_pipeline,
    outbox,
    pipeline,  # noqa: F401 - a fixture
    published,
    snapshot,
    weight,
)

GH1, GH9 = "GH1", "GH9"
RID = resident_id("320106", "19800101", "123")


def _fresh(tmp_path: Path, name: str) -> Engine:
    engine = build_engine(f"sqlite:///{tmp_path / name}.db")
    upgrade(engine)
    return engine


def _content_digest(msg: Inbound) -> str:
    """The digest the bridge keeps for the content of ``msg`` (under the suite's key)."""
    event = adapters.parsers()[msg.topic](msg.value)
    return KEY.digest(CONTENT, canonical_content(event))


def _registry_state(engine: Engine, *, identity_versions: bool = True) -> dict[str, Any]:
    """What any order must end in: the published records and identities, and the registry's rows
    (without the coordinates and times that say when and where a message was read)."""
    with engine.connect() as conn:
        def table(query):  # times in UTC: SQLite hands back naive ones
            return sorted(tuple(as_utc(v) if isinstance(v, datetime) else v for v in r) for r in conn.execute(query))

        a, e, f, r, s, dq = (t.accounts.c, t.evidence.c, t.credit_facts.c, t.rejected_contents.c,
                             t.shared_evidence.c, t.data_quality.c)
        rows = {
            "accounts": table(select(a.platform, a.account, a.learner_id, a.method, a.linked_at, a.event_id,
                                     a.first_at, a.first_event_id)),
            "evidence": table(select(e.platform, e.account, e.kind, e.digest, e.first_at, e.first_event_id)),
            "facts": table(select(f.platform, f.event_id, f.account, f.course_key, f.kind, f.score, f.contents,
                                  f.content_digest, f.content_key_id, f.evidence)),
            "rejected": table(select(r.platform, r.event_id, r.content_digest, r.content_key_id)),
            "shared": table(select(s.kind, s.digest, s.holders)),
            "data_quality": table(select(dq.platform, dq.event_id, dq.reason)),
        }
    learners = live_identities(engine)
    if not identity_versions:
        learners = {k: {**v, "version": None} for k, v in learners.items()}
    return {"records": live_records(engine), "learners": learners, **rows}


def _lost(msg: Inbound, result) -> list:
    return [d for m, d in result.dead_letters if (m.topic, m.partition, m.offset) == (msg.topic, msg.partition, msg.offset)]


# -- redeliveries -------------------------------------------------------------------------------


def test_a_redelivery_is_a_no_op(pipeline: Pipeline, feed: Feed) -> None:
    first = feed.union("u-1", "COURSE_COMPLETE", member_no=GH1, id_card=RID, when=day(1), passed=True, score=70)
    pipeline.process([first])
    before = snapshot(pipeline.units.engine)
    again = Inbound(first.topic, 0, 99, first.key, first.value)  # the same bytes, read again elsewhere
    result = pipeline.process([again, first])
    assert (result.duplicates, result.dead_letters, sum(result.processed.values())) == (2, [], 0)
    assert snapshot(pipeline.units.engine) == before


def test_re_formatted_json_of_the_same_content_is_a_duplicate(pipeline: Pipeline, feed: Feed) -> None:
    event = union_event("u-1", "COURSE_COMPLETE", member_no=GH1, id_card=RID, name="张　伟", mobile="138 0013 8000",
                        when=day(1), passed=True, score=70)
    pipeline.process([feed.raw(UNION, encode(event), GH1.encode())])
    before = snapshot(pipeline.units.engine)
    # Other key order, whitespace and escapes; identity fields that normalise to the same values
    # (width variants, a lower-case x, another mobile format); a field the bridge does not use.
    same = json.loads(json.dumps(event))
    same["member"].update(name="张伟", mobile="+86 138-0013-8000", idCardNo=RID[:-1] + RID[-1].lower(),
                          orgName="another org")
    reordered = json.dumps(dict(reversed(list(same.items()))), ensure_ascii=True, indent=2).encode()
    result = pipeline.process([feed.raw(UNION, reordered, GH1.encode())])
    assert (result.duplicates, result.dead_letters) == (1, [])
    assert snapshot(pipeline.units.engine) == before


# -- other content, arriving second or first ----------------------------------------------------


def _two_contents(feed: Feed) -> tuple[Inbound, Inbound]:
    """Two contents of one event id: the same account and time, other scores. The lower score
    comes first in the order of contents, so ``kept`` is kept and ``other`` dead-lettered."""
    kept = feed.union("u-1", "COURSE_COMPLETE", member_no=GH1, id_card=RID, when=day(1), passed=True, score=60)
    other = feed.union("u-1", "COURSE_COMPLETE", member_no=GH1, id_card=RID, when=day(1), passed=True, score=90)
    return kept, other


def test_other_content_arriving_second_is_dead_lettered_and_changes_only_the_records_version(
    pipeline: Pipeline, feed: Feed
) -> None:
    engine = pipeline.units.engine
    kept, other = _two_contents(feed)
    learner = learner_id_for("union", GH1)
    record_id = record_id_for(learner, "digital-skills")
    pipeline.process([kept])
    record, identity = published(engine, RECORDS, record_id), published(engine, IDENTITIES, learner)
    # GH1, its resident id and its name+mobile, all first seen on day 1.
    assert (record["version"], record["score"], identity["version"]) == (1, 60, 3 * weight(day(1)))
    pending = len(outbox(engine))

    result = pipeline.process([other])
    [letter] = _lost(other, result)
    assert len(result.dead_letters) == 1 and sum(result.processed.values()) == 0
    assert letter.reason_code == "duplicate_event_id"
    assert "other content" in letter.reason and "one content per event id" in letter.reason
    assert "u-1" not in letter.reason and GH1 not in letter.reason and "90" not in letter.reason
    # Nothing changes but the record's version: one more event is behind it. The identity shows
    # no new evidence, so it is not republished.
    assert published(engine, RECORDS, record_id) == {**record, "version": 2}
    assert published(engine, IDENTITIES, learner) == identity
    assert len(outbox(engine)) == pending + 1
    with engine.connect() as conn:
        assert conn.execute(select(t.credit_facts.c.score, t.credit_facts.c.contents)).all() == [(60.0, 2)]
        rejected = conn.execute(select(t.rejected_contents.c.content_digest, t.rejected_contents.c.offset)).all()
    assert rejected == [(_content_digest(other), other.offset)]

    # A redelivery of the rejected content is a plain duplicate: no second dead letter.
    before = snapshot(engine)
    again = pipeline.process([Inbound(other.topic, 0, 77, other.key, other.value)])
    assert (again.duplicates, again.dead_letters) == (1, [])
    assert snapshot(engine) == before


def test_the_winner_arriving_second_replaces_the_loser(pipeline: Pipeline, feed: Feed, tmp_path: Path) -> None:
    engine = pipeline.units.engine
    kept, other = _two_contents(feed)
    learner = learner_id_for("union", GH1)
    record_id = record_id_for(learner, "digital-skills")
    pipeline.process([other])
    assert published(engine, RECORDS, record_id)["score"] == 90

    result = pipeline.process([kept])
    [letter] = result.dead_letters
    loser, dead = letter
    # The loser's dead letter, after the fact: its coordinates, and no bytes (no longer held).
    assert (loser.topic, loser.partition, loser.offset, loser.value) == (other.topic, 0, other.offset, None)
    assert (dead.topic, dead.partition, dead.offset, dead.reason_code) == (UNION, 0, other.offset, "duplicate_event_id")
    assert dead.payload_encrypted is None and "withdrawn" in dead.reason and "u-1" not in dead.reason
    record = published(engine, RECORDS, record_id)
    assert (record["score"], record["version"]) == (60, 2)

    # The same end as the other order.
    reference = make_pipeline(_fresh(tmp_path, "reference"))
    reference.process([kept])
    reference.process([other])
    assert _registry_state(engine) == _registry_state(reference.units.engine)


def test_a_winner_on_another_account_retracts_the_losers_evidence_and_account(
    pipeline: Pipeline, feed: Feed, tmp_path: Path
) -> None:
    """The loser was the only event of its account GH9, and its resident id linked GH9 with S9 (one
    learner, GH9's). The winner names GH1 (a smaller account number at the same time): GH9 vanishes
    with its evidence, its learner is no longer live, its record is retired, and S9 is re-resolved
    into a learner of its own, exactly as if the loser had never been processed."""
    engine = pipeline.units.engine
    when = day(1)
    loser = feed.union("u-1", "COURSE_COMPLETE", member_no=GH9, id_card=RID, name="李雷", mobile="13900000009",
                       when=when, passed=True, score=80)
    winner = feed.union("u-1", "COURSE_COMPLETE", member_no=GH1, name="韩梅梅", mobile="13900000001",
                        when=when, passed=True, score=80)
    s9 = feed.ou("o-9", "course.completed", student_no="S9", document=("RESIDENT_ID", RID), name="李雷",
                 phone="13900000009", when=day(2), score=75)
    pipeline.process([loser, s9])
    gone = learner_id_for("union", GH9)
    assert {(a["platform"], a["account"]) for a in live_identities(engine)[gone]["accounts"]} == {
        ("union", GH9), ("ou", "S9")}
    gone_record = record_id_for(gone, "digital-skills")
    assert published(engine, RECORDS, gone_record)["version"] == 2  # u-1 and o-9 are equivalent courses

    result = pipeline.process([winner])
    assert [(m.offset, d.reason_code) for m, d in result.dead_letters] == [(loser.offset, "duplicate_event_id")]
    with engine.connect() as conn:
        accounts = set(conn.execute(select(t.accounts.c.platform, t.accounts.c.account)).all())
        holders = set(conn.execute(select(t.evidence.c.platform, t.evidence.c.account, t.evidence.c.kind)).all())
    assert accounts == {("union", GH1), ("ou", "S9")}
    assert ("union", GH9) not in {(p, a) for p, a, _ in holders}
    assert gone not in live_identities(engine)  # GH9's learner merged away (its only account vanished)
    assert identities(engine)[gone]["merged_into"] is not None
    # GH9's record lost its union fact: o-9 alone is behind it, under S9's own learner now.
    assert published(engine, RECORDS, gone_record) is None
    s9_learner = learner_id_for("ou", "S9")
    assert published(engine, RECORDS, record_id_for(s9_learner, "digital-skills"))["sources"] == [
        {"platform": "ou", "account": "S9", "event_id": "o-9"}]

    # The same registry and topics as the other order, versions included (S9's learner is a new one).
    reference = make_pipeline(_fresh(tmp_path, "reference"))
    reference.process([winner])
    reference.process([loser, s9])
    assert _registry_state(engine) == _registry_state(reference.units.engine)


def test_a_learner_that_shrinks_keeps_a_rising_identity_version(pipeline: Pipeline, feed: Feed, tmp_path: Path) -> None:
    """S9 showed the resident id first and anchors the learner that the loser (on GH9) joined. When
    the winner (on GH1) retracts the loser, S9's learner keeps its id but its evidence component
    shrinks to S9's own. Everything ends as in the other order except that identity's version: it
    was published with the loser's account and evidence counted, and a version never falls, so it
    stays above the version the other order gives (which never counted the loser)."""
    engine = pipeline.units.engine
    s9 = feed.ou("o-9", "course.completed", student_no="S9", document=("RESIDENT_ID", RID), when=day(0), score=75)
    loser = feed.union("u-1", member_no=GH9, id_card=RID, name=None, mobile=None, when=day(1))
    winner = feed.union("u-1", member_no=GH1, name=None, mobile=None, when=day(1))
    pipeline.process([s9, loser])
    learner = learner_id_for("ou", "S9")
    assert len(live_identities(engine)[learner]["accounts"]) == 2
    # S9 with its resident id and name+mobile (day 0), GH9 with the resident id (day 1).
    both = 3 * weight(day(0)) + 2 * weight(day(1))
    assert live_identities(engine)[learner]["version"] == both
    pipeline.process([winner])
    identity = live_identities(engine)[learner]
    assert [a["account"] for a in identity["accounts"]] == ["S9"]
    assert identity["version"] == both + 1  # rose with the change, though less evidence is behind it now

    reference = make_pipeline(_fresh(tmp_path, "reference"))
    reference.process([winner])
    reference.process([s9, loser])
    assert _registry_state(engine, identity_versions=False) == _registry_state(reference.units.engine, identity_versions=False)
    assert live_identities(reference.units.engine)[learner]["version"] == 3 * weight(day(0))


def test_retracted_name_mobile_evidence_counts_one_holder_less(pipeline: Pipeline, feed: Feed, tmp_path: Path) -> None:
    engine = pipeline.units.engine
    loser = feed.union("u-1", member_no=GH9, name="李雷", mobile="13900000009", when=day(1))
    winner = feed.union("u-1", member_no=GH1, name=None, mobile=None, when=day(1))
    pipeline.process([loser])
    with engine.connect() as conn:
        shared = conn.execute(select(t.shared_evidence.c.holders)).scalars().all()
    assert shared in ([1], [])  # counted where identity rule 8's counts are kept
    pipeline.process([winner])
    with engine.connect() as conn:
        assert conn.execute(select(t.shared_evidence)).all() == []
        assert conn.execute(select(t.evidence)).all() == []
    reference = make_pipeline(_fresh(tmp_path, "reference"))
    reference.process([winner, loser])
    assert _registry_state(engine) == _registry_state(reference.units.engine)


@pytest.mark.parametrize("order", list(permutations(range(3))))
def test_three_contents_of_one_event_id_end_alike_in_any_order(engine: Engine, tmp_path: Path, order) -> None:
    feed = Feed()
    contents = [  # first to last in the order of contents: by score
        feed.ou("o-1", "course.completed", student_no="S1", when=day(1), score=score) for score in (50, 70, 90)
    ]
    pipeline = make_pipeline(engine)
    dead: set[str] = set()
    for index in order:
        result = pipeline.process([contents[index]])
        dead |= {_content_digest(m) if m.value is not None else _stored_digest(contents, m) for m, _ in result.dead_letters}
    assert dead == {_content_digest(contents[1]), _content_digest(contents[2])}
    [record] = live_records(engine).values()
    assert (record["score"], record["version"]) == (50, 3)
    # S1 and its name+mobile: other contents of one event id are no identity evidence.
    assert published(engine, IDENTITIES, learner_id_for("ou", "S1"))["version"] == 2 * weight(day(1))
    reference = make_pipeline(_fresh(tmp_path, "reference"))
    reference.process(contents)  # all three in one batch
    assert _registry_state(engine) == _registry_state(reference.units.engine)


def _stored_digest(contents: list[Inbound], msg: Inbound) -> str:
    """The content behind a dead letter that carries no bytes: the message read at its coordinates."""
    [found] = [c for c in contents if (c.topic, c.partition, c.offset) == (msg.topic, msg.partition, msg.offset)]
    return _content_digest(found)


def test_other_content_in_one_batch_keeps_the_first_in_the_order(pipeline: Pipeline, feed: Feed) -> None:
    kept, other = _two_contents(feed)
    result = pipeline.process([other, kept, other])
    assert [(m.offset, d.reason_code) for m, d in result.dead_letters] == [(other.offset, "duplicate_event_id")]
    assert result.duplicates == 1
    [record] = live_records(pipeline.units.engine).values()
    assert (record["score"], record["version"]) == (60, 2)


# -- key rotation and facts from before revision 0003 -------------------------------------------


def _pipeline_with(engine: Engine, pseudonymiser) -> Pipeline:
    pipeline = make_pipeline(engine)
    pipeline.pseudonymiser = pseudonymiser
    return pipeline


def test_contents_are_compared_under_the_stored_key_during_a_rotation(engine: Engine, feed: Feed) -> None:
    from bridge.core.pseudonym import Pseudonymiser

    old = Pseudonymiser.from_secret("old-key-0123456789-0123456789-0123456789")
    new = Pseudonymiser.from_secret("new-key-0123456789-0123456789-0123456789",
                                    previous=("old-key-0123456789-0123456789-0123456789",))
    kept, other = _two_contents(feed)
    _pipeline_with(engine, old).process([kept])
    rotated = _pipeline_with(engine, new)
    assert rotated.process([kept]).duplicates == 1  # a redelivery across the rotation
    result = rotated.process([other])
    assert [d.reason_code for _, d in result.dead_letters] == ["duplicate_event_id"]
    with engine.connect() as conn:
        # The event id's contents stay under the key its first content was digested with.
        assert conn.execute(select(t.rejected_contents.c.content_key_id)).scalars().all() == [old.key_id]
        assert conn.execute(select(t.credit_facts.c.content_key_id)).scalars().all() == [old.key_id]
    # Once the old key is gone, contents equal in their plain part cannot be told apart: the same.
    gone = _pipeline_with(engine, Pseudonymiser.from_secret("new-key-0123456789-0123456789-0123456789"))
    before = snapshot(engine)
    assert gone.process([kept, Inbound(other.topic, 0, 55, other.key, other.value)]).duplicates == 2
    assert snapshot(engine) == before


def test_a_fact_from_before_content_digests_keeps_its_event_id(pipeline: Pipeline, feed: Feed) -> None:
    engine = pipeline.units.engine
    kept, other = _two_contents(feed)
    pipeline.process([other])  # stored first; made a pre-0003 fact below (no digest, no evidence)
    with engine.begin() as conn:
        conn.execute(t.credit_facts.update().values(content_digest=None, content_key_id=None, evidence=None))
    # Equal in every stored field: a redelivery. Other content, even first in the order: dead-lettered.
    assert pipeline.process([Inbound(other.topic, 0, 50, other.key, other.value)]).duplicates == 1
    result = pipeline.process([kept])
    [(msg, letter)] = result.dead_letters
    assert (msg.offset, letter.reason_code) == (kept.offset, "duplicate_event_id")
    assert "before the bridge kept content digests" in letter.reason
    [record] = live_records(engine).values()
    assert (record["score"], record["version"]) == (90, 2)
