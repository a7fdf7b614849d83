"""CONTRACT §3.5: the same events in any interleaving end in the same learners and records.

Hypothesis generates small worlds (a few persons with accounts on both platforms, shared or
contradicting documents, families sharing a name and mobile, invalid numbers) and their events,
then processes them in two different interleavings and batchings (with redeliveries) and
compares the final compacted output topics, versions included: a record's version counts the
events behind it and an identity's the events of its evidence component, neither of which
depends on the path taken.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import adapters
from bridge.core.courses import CourseKeys
from bridge.core.pseudonym import Pseudonymiser
from bridge.pipeline import Inbound, Pipeline
from bridge.store.engine import build_engine
from bridge.store.registry import Registry
from bridge.store.schema import metadata
from tests.factories import OU, UNION, encode, ou_event, resident_id, union_event
from topics import catalogue

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)
PERSONS = 3
NAMES = ["张伟", "李娜", "王芳"]
MOBILES = ["13800138000", "13900139000", "13700137000"]


@dataclass(frozen=True)
class Account:
    platform: str
    number: str
    person: int


ACCOUNTS = [
    Account("union", f"GH{p}{n}", p) for p in range(PERSONS) for n in range(2)
] + [Account("ou", f"S{p}", p) for p in range(PERSONS)]


def person_doc(person: int) -> str:
    return resident_id(serial=f"{person:02d}1")


@st.composite
def worlds(draw):
    """A list of raw (topic, key, value) messages."""
    family = draw(st.booleans())  # persons 0 and 1 share name and mobile (e.g. one phone)
    events = []
    count = draw(st.integers(min_value=1, max_value=14))
    for n in range(count):
        account = draw(st.sampled_from(ACCOUNTS))
        person = account.person
        who = 0 if family and person == 1 else person
        evidence = draw(st.sampled_from(["none", "doc", "doc", "invalid", "other_doc", "passport"]))
        with_nm = draw(st.booleans())
        kind = draw(st.sampled_from(["enrol", "pass", "fail", "withdraw"]))
        course = draw(st.sampled_from(["A", "B"]))
        when = T0 + timedelta(hours=draw(st.integers(0, 200)))
        doc = None
        if evidence == "doc":
            doc = ("RESIDENT_ID", person_doc(person))
        elif evidence == "invalid":
            doc = ("RESIDENT_ID", person_doc(person)[:-1] + ("0" if person_doc(person)[-1] != "0" else "1"))
        elif evidence == "other_doc":
            doc = ("RESIDENT_ID", person_doc((person + 1) % PERSONS))
        elif evidence == "passport":
            doc = ("PASSPORT", f"E{person:07d}")
        name = NAMES[who] if with_nm else None
        mobile = MOBILES[who] if with_nm else None
        event_id = f"{account.platform}-{n}"
        if account.platform == "union":
            if doc is not None and doc[0] != "RESIDENT_ID":
                doc = None
            event_type = {"enrol": "COURSE_ENROLL", "withdraw": "COURSE_WITHDRAW"}.get(kind, "COURSE_COMPLETE")
            raw = union_event(
                event_id, event_type, member_no=account.number, when=when, id_card=doc[1] if doc else None,
                name=name, mobile=mobile, course=f"U-{course}", hours=24, passed=kind == "pass", score=60 + n,
            )
            events.append((UNION, account.number, encode(raw)))
        else:
            event_type = {"enrol": "enrolment.created", "withdraw": "enrolment.cancelled"}.get(kind, "course.completed")
            raw = ou_event(
                event_id, event_type, student_no=account.number, when=when, document=doc, name=name,
                phone=mobile, course=f"O-{course}", credits=2.0, status="PASSED" if kind == "pass" else "FAILED",
                score=70 + n,
            )
            events.append((OU, account.number, encode(raw)))
    return events


def run(messages, batch_sizes) -> dict[str, dict[str, object]]:
    """Process ``messages`` in batches and return the final compacted output topics."""
    with tempfile.TemporaryDirectory() as tmp:
        engine = build_engine(f"sqlite:///{Path(tmp) / 'bridge.db'}")
        metadata.create_all(engine)
        pipeline = Pipeline(engine, adapters.PARSERS, Pseudonymiser.from_secret("k" * 32), CourseKeys(), 16.0)
        topics: dict[str, dict[str, object]] = {catalogue.CREDIT_RECORDS.name: {}, catalogue.LEARNER_IDENTITIES.name: {}}
        position, sizes = 0, iter(batch_sizes)
        while position < len(messages):
            size = next(sizes, len(messages))
            batch = [Inbound(topic, 0, position + i, key.encode(), value)
                     for i, (topic, key, value) in enumerate(messages[position : position + size])]
            pipeline.process(batch)
            position += size
            with engine.begin() as conn:
                registry = Registry(conn)
                entries = registry.pending(10_000)
                for entry in entries:
                    if entry.topic in topics:
                        value = registry.published_value(entry.topic, entry.key)
                        topics[entry.topic][entry.key] = json.loads(value) if value is not None else None
                registry.done([e.id for e in entries])
        engine.dispose()
    records = {k: v for k, v in topics[catalogue.CREDIT_RECORDS.name].items() if v is not None}
    learners = {
        k: v for k, v in topics[catalogue.LEARNER_IDENTITIES.name].items() if v is not None and v["merged_into"] is None
    }
    return {"records": records, "learners": learners}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_interleaving_gives_the_same_learners_and_records(data) -> None:
    messages = data.draw(worlds())
    other_order = data.draw(st.permutations(messages))
    redelivered = data.draw(st.lists(st.sampled_from(messages), max_size=3))
    batches_a = data.draw(st.lists(st.integers(1, 5), max_size=10))
    batches_b = data.draw(st.lists(st.integers(1, 5), max_size=10))
    first = run(messages, batches_a)
    second = run(list(other_order) + redelivered, batches_b)
    assert first == second
    # Every live record belongs to a live learner, and every account to exactly one of them.
    learners = first["learners"]
    assert {r["learner_id"] for r in first["records"].values()} <= set(learners)
    accounts = [(a["platform"], a["account"]) for l in learners.values() for a in l["accounts"]]
    assert len(accounts) == len(set(accounts))
