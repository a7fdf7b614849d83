"""Replay (issue 4): the input topics consumed again from the beginning, into an empty database."""

from __future__ import annotations

import json

import pytest

from bridge.tools import simulate
from bridge.tools.demo import Progress, wait_outbox_empty, wait_until_consumed
from bridge.store.engine import build_engine
from bridge.tools.topicio import compacted
from tests.factories import OU, UNION, encode, ou_event, union_event
from tests.integration.harness import Bridge
from topics import catalogue

pytestmark = pytest.mark.integration


def live(bridge: Bridge, spec: catalogue.TopicSpec, after: dict | None = None) -> dict[bytes, bytes]:
    """The latest non-null value of each key, optionally only of messages past ``after``'s offsets."""
    messages = bridge.topic(spec)
    if after is not None:
        messages = [m for m in messages if m.offset >= after.get(m.partition, 0)]
    values = compacted(messages)
    if spec is catalogue.LEARNER_IDENTITIES:
        return {k: v for k, v in values.items() if v is not None and json.loads(v)["merged_into"] is None}
    return {k: v for k, v in values.items() if v is not None}


def end_offsets(bridge: Bridge, spec: catalogue.TopicSpec) -> dict[int, int]:
    ends: dict[int, int] = {}
    for msg in bridge.topic(spec):
        ends[msg.partition] = max(ends.get(msg.partition, 0), msg.offset + 1)
    return ends


def replay(bridge: Bridge, tmp_path, name: str, **env: str) -> None:
    """Run a worker in a new consumer group on a new, empty database until it has read the input
    again from the beginning and published everything (SQLite: the backends are covered by the
    contract tests; what matters here is the input read again)."""
    url = f"sqlite:///{tmp_path / (name + '.db')}"
    worker = bridge.start_worker(BRIDGE_GROUP_ID=name, BRIDGE_DATABASE_URL=url, **env)
    wait_until_consumed(bridge.settings.with_overrides(group_id=name), worker, Progress(), expected=bridge.sent)
    wait_outbox_empty(build_engine(url), worker)


def test_replay_into_an_empty_database_publishes_the_same_bytes(bridge: Bridge, tmp_path) -> None:
    messages, _ = simulate.generate(1500, seed=21)
    for msg in messages:
        bridge.send(msg.topic, msg.key, msg.value)
    bridge.start_worker(BRIDGE_BATCH_SIZE="500")
    bridge.settle()
    records, learners = live(bridge, catalogue.CREDIT_RECORDS), live(bridge, catalogue.LEARNER_IDENTITIES)
    marks = {spec.name: end_offsets(bridge, spec) for spec in (catalogue.CREDIT_RECORDS, catalogue.LEARNER_IDENTITIES)}
    assert len(records) > 500 and len(learners) > 100

    # Different batches, a different interleaving of partitions: the same bytes.
    replay(bridge, tmp_path, "replay", BRIDGE_BATCH_SIZE="37")
    assert live(bridge, catalogue.CREDIT_RECORDS, marks[catalogue.CREDIT_RECORDS.name]) == records
    assert live(bridge, catalogue.LEARNER_IDENTITIES, marks[catalogue.LEARNER_IDENTITIES.name]) == learners


def test_changing_the_equivalence_table_and_replaying_gives_the_new_result(bridge: Bridge, tmp_path) -> None:
    doc = ("RESIDENT_ID", "11010519491231002X")
    bridge.send(UNION, "GH1", encode(union_event("u-1", "COURSE_COMPLETE", member_no="GH1", id_card=doc[1],
                                                  course="ACFTU-SK-0012", hours=24, passed=True)))
    bridge.send(OU, "S1", encode(ou_event("o-1", "course.completed", student_no="S1", document=doc,
                                          course="NOU-08123", credits=2.0)))
    bridge.start_worker()
    bridge.settle()
    assert sorted(json.loads(v)["course_key"] for v in live(bridge, catalogue.CREDIT_RECORDS).values()) == [
        "ou:NOU-08123", "union:ACFTU-SK-0012"
    ]
    marks = end_offsets(bridge, catalogue.CREDIT_RECORDS)

    table = tmp_path / "equivalences.csv"
    table.write_text("course_key,platform,course_id\ndigital-skills,union,ACFTU-SK-0012\ndigital-skills,ou,NOU-08123\n")
    replay(bridge, tmp_path, "replay-table", BRIDGE_COURSE_EQUIVALENCES=str(table))
    (record,) = [json.loads(v) for v in live(bridge, catalogue.CREDIT_RECORDS, marks).values()]
    assert record["course_key"] == "digital-skills"
    assert record["credits"] == 2.0  # the larger of 1.5 (24 h / 16) and 2.0
    assert {s["platform"] for s in record["sources"]} == {"union", "ou"}
