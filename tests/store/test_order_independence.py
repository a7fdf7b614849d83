"""CONTRACT §3.5: the same events in any interleaving end in the same learners and records.

Hypothesis generates small worlds (a few persons with accounts on the three platforms, shared or
contradicting documents, families sharing a name and mobile, invalid numbers) and their events,
then processes them in two different interleavings and batchings (with redeliveries) and
compares the final compacted output topics, versions included: a record's version counts the
events behind it and an identity's weighs the identity evidence of its evidence component (each
account and digest by its first sighting, bridge/core/versions.py), neither of which depends on the
path taken. A batch that re-resolves no identity publishes no live learner's identity.

Worlds may also use one event id with other content (CONTRACT §1: one content per event id,
whatever the order): on the same account with another course, outcome, score or time, or, as a
separate strategy, with other evidence or on another account. The same contents are then
dead-lettered in any order, compared as (platform, event id, content digest). With other evidence
or another account, identity versions alone may differ (see the last test).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import adapters
from bridge.core.contents import CONTENT, canonical_content
from bridge.core.courses import parse_equivalences
from bridge.core.pseudonym import Pseudonymiser
from bridge.pipeline import Inbound, Pipeline
from bridge.store.engine import build_engine
from bridge.store.claim import published_value
from bridge.store.uow import writing
from bridge.store.schema import metadata
from tests.factories import OU, UNION, VOCATIONAL, encode, ou_event, resident_id, union_event, vocational_event
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
] + [Account("ou", f"S{p}", p) for p in range(PERSONS)] + [Account("vocational", f"V{p}", p) for p in range(PERSONS)]


def person_doc(person: int) -> str:
    return resident_id(serial=f"{person:02d}1")


@dataclass(frozen=True)
class Spec:
    """One event of a world, before it is rendered as a platform message."""

    n: int
    account: Account
    evidence: str
    with_nm: bool
    kind: str
    course: str
    hours: int
    score: int
    #: Seconds past the hour: events of one hour share or neighbour a second (ties, CONTRACT §5).
    second: int = 0


EVIDENCE = ["none", "doc", "doc", "invalid", "other_doc", "passport"]
KINDS = ["enrol", "pass", "fail", "withdraw"]


def draw_spec(draw, n: int) -> Spec:
    return Spec(
        n=n,
        account=draw(st.sampled_from(ACCOUNTS)),
        evidence=draw(st.sampled_from(EVIDENCE)),
        with_nm=draw(st.booleans()),
        kind=draw(st.sampled_from(KINDS)),
        course=draw(st.sampled_from(["A", "B"])),
        hours=draw(st.integers(0, 200)),
        score=n,
        second=draw(st.integers(0, 2)),
    )


def render(spec: Spec, family: bool) -> tuple[str, str, bytes]:
    account, n, kind, course = spec.account, spec.n, spec.kind, spec.course
    person = account.person
    who = 0 if family and person == 1 else person
    when = T0 + timedelta(hours=spec.hours, seconds=spec.second)
    doc = None
    if spec.evidence == "doc":
        doc = ("RESIDENT_ID", person_doc(person))
    elif spec.evidence == "invalid":
        doc = ("RESIDENT_ID", person_doc(person)[:-1] + ("0" if person_doc(person)[-1] != "0" else "1"))
    elif spec.evidence == "other_doc":
        doc = ("RESIDENT_ID", person_doc((person + 1) % PERSONS))
    elif spec.evidence == "passport":
        doc = ("PASSPORT", f"E{person:07d}")
    name = NAMES[who] if spec.with_nm else None
    mobile = MOBILES[who] if spec.with_nm else None
    event_id = f"{account.platform}-{n}"
    if account.platform == "union":
        if doc is not None and doc[0] != "RESIDENT_ID":
            doc = None
        event_type = {"enrol": "COURSE_ENROLL", "withdraw": "COURSE_WITHDRAW"}.get(kind, "COURSE_COMPLETE")
        raw = union_event(
            event_id, event_type, member_no=account.number, when=when, id_card=doc[1] if doc else None,
            name=name, mobile=mobile, course=f"U-{course}", hours=24, passed=kind == "pass", score=60 + spec.score,
        )
        return (UNION, account.number, encode(raw))
    if account.platform == "vocational":
        if doc is not None and doc[0] != "RESIDENT_ID":
            doc = None
        verb = {"enrol": "registered", "withdraw": "unregistered"}.get(kind, "completed")
        raw = vocational_event(
            event_id, verb, account=account.number, when=when, resident_id=doc[1] if doc else None,
            name=name, mobile=mobile, course=f"V-{course}", hours=32, success=kind == "pass" if verb == "completed" else None,
            scaled=(50 + spec.score) / 100 if verb == "completed" else None,
        )
        return (VOCATIONAL, account.number, encode(raw))
    event_type = {"enrol": "enrolment.created", "withdraw": "enrolment.cancelled"}.get(kind, "course.completed")
    raw = ou_event(
        event_id, event_type, student_no=account.number, when=when, document=doc, name=name,
        phone=mobile, course=f"O-{course}", credits=2.0, status="PASSED" if kind == "pass" else "FAILED",
        score=70 + spec.score,
    )
    return (OU, account.number, encode(raw))


def same_account_variant(draw, spec: Spec) -> Spec:
    """Other content of ``spec``'s event id on the same account, with the same identity evidence:
    another course, outcome, score or time (CONTRACT §1: bad input, one of them is kept)."""
    return replace(
        spec,
        kind=draw(st.sampled_from(KINDS)),
        course=draw(st.sampled_from(["A", "B"])),
        score=spec.score + draw(st.sampled_from([0, 0, 1, 7])),
        hours=draw(st.sampled_from([spec.hours, spec.hours, spec.hours + 1, max(spec.hours - 3, 0)])),
    )


def other_evidence_variant(draw, spec: Spec) -> Spec:
    """Other content of ``spec``'s event id with other identity evidence or on another account of
    the same platform (which may then link, or no longer link, other accounts)."""
    same_platform = [a for a in ACCOUNTS if a.platform == spec.account.platform]
    return replace(
        spec,
        account=draw(st.sampled_from(same_platform)),
        evidence=draw(st.sampled_from(EVIDENCE)),
        with_nm=draw(st.booleans()),
        kind=draw(st.sampled_from([spec.kind, *KINDS])),
    )


@st.composite
def worlds(draw, variants=None):
    """A list of raw (topic, key, value) messages; with ``variants``, some event ids come again with
    other content made by ``variants(draw, spec)``."""
    family = draw(st.booleans())  # persons 0 and 1 share name and mobile (e.g. one phone)
    specs = [draw_spec(draw, n) for n in range(draw(st.integers(min_value=1, max_value=14)))]
    if variants is not None:
        for _ in range(draw(st.integers(min_value=1, max_value=4))):
            specs.append(variants(draw, draw(st.sampled_from(specs))))
    return [render(spec, family) for spec in specs]


KEY = Pseudonymiser.from_secret("k" * 32)
#: Course A is one course on the three platforms: its records gather sources of all three.
COURSE_KEYS = parse_equivalences("course_key,platform,course_id\nk-A,union,U-A\nk-A,ou,O-A\nk-A,vocational,V-A\n")


def content_digest(topic: str, value: bytes) -> str:
    return KEY.digest(CONTENT, canonical_content(adapters.parsers()[topic](value)))


def run(messages, batch_sizes) -> dict[str, object]:
    """Process ``messages`` in batches and return the final compacted output topics, and the
    contents dead-lettered as other content of a used event id: (platform, event id, digest)."""
    dead: set[tuple[str, str, str]] = set()
    with tempfile.TemporaryDirectory() as tmp:
        engine = build_engine(f"sqlite:///{Path(tmp) / 'bridge.db'}")
        metadata.create_all(engine)
        pipeline = Pipeline(writing(engine, serializable=True), adapters.parsers(), KEY, COURSE_KEYS, 16.0)
        topics: dict[str, dict[str, object]] = {catalogue.CREDIT_RECORDS.name: {}, catalogue.LEARNER_IDENTITIES.name: {}}
        position, sizes = 0, iter(batch_sizes)
        read: dict[tuple[str, int, int], bytes] = {}
        while position < len(messages):
            size = next(sizes, len(messages))
            batch = [Inbound(topic, 0, position + i, key.encode(), value)
                     for i, (topic, key, value) in enumerate(messages[position : position + size])]
            read.update(((m.topic, m.partition, m.offset), m.value) for m in batch)
            result = pipeline.process(batch)
            for msg, letter in result.dead_letters:
                assert letter.reason_code == "duplicate_event_id", letter.reason
                # A content retracted after the fact is dead-lettered without its bytes: the
                # message read at its coordinates is the one that carried it.
                value = msg.value if msg.value is not None else read[(msg.topic, msg.partition, msg.offset)]
                event = adapters.parsers()[msg.topic](value)
                dead.add((event.platform, event.event_id, content_digest(msg.topic, value)))
            position += size
            with writing(engine)() as uow:
                entries = uow.outbox.pending(10_000)
                for entry in entries:
                    if entry.topic in topics:
                        value = published_value(uow, entry.topic, entry.key)
                        if result.resolved == 0 and entry.topic == catalogue.LEARNER_IDENTITIES.name:
                            # Nothing re-resolved: only a learner whose accounts vanished with a
                            # retracted content (merged away) may change.
                            assert value is not None and json.loads(value)["merged_into"] is not None
                        topics[entry.topic][entry.key] = json.loads(value) if value is not None else None
                uow.outbox.done([e.id for e in entries])
        engine.dispose()
    records = {k: v for k, v in topics[catalogue.CREDIT_RECORDS.name].items() if v is not None}
    learners = {
        k: v for k, v in topics[catalogue.LEARNER_IDENTITIES.name].items() if v is not None and v["merged_into"] is None
    }
    return {"records": records, "learners": learners, "dead": dead}


def without_identity_versions(outcome: dict[str, object]) -> dict[str, object]:
    learners = {k: {**v, "version": None} for k, v in outcome["learners"].items()}
    return {**outcome, "learners": learners}


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
    assert first["dead"] == set()
    _assert_consistent(first)


def _assert_consistent(first) -> None:
    # Every live record belongs to a live learner, and every account to exactly one of them.
    learners = first["learners"]
    assert {r["learner_id"] for r in first["records"].values()} <= set(learners)
    accounts = [(a["platform"], a["account"]) for l in learners.values() for a in l["accounts"]]
    assert len(accounts) == len(set(accounts))


def _interleavings(data, variants):
    messages = data.draw(worlds(variants))
    other_order = data.draw(st.permutations(messages))
    redelivered = data.draw(st.lists(st.sampled_from(messages), max_size=3))
    batches_a = data.draw(st.lists(st.integers(1, 5), max_size=10))
    batches_b = data.draw(st.lists(st.integers(1, 5), max_size=10))
    return run(messages, batches_a), run(list(other_order) + redelivered, batches_b)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_other_content_on_the_same_account_ends_alike_in_any_order(data) -> None:
    """CONTRACT §1: one content per event id whatever the order. Other content on the same account
    with the same evidence never changes who is who, so everything is equal, versions included."""
    first, second = _interleavings(data, same_account_variant)
    assert first == second  # the same topics, versions included, and the same contents dead-lettered
    _assert_consistent(first)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_other_evidence_or_account_ends_alike_in_any_order(data) -> None:
    """As above, with other identity evidence or another account behind the same event id. When the
    content kept arrives after a content that linked accounts, that content is retracted and the
    accounts' evidence component shrinks: its identities were already published with the
    retracted evidence counted, and an identity's version never falls, so only identity versions may
    end higher than in an order that never applied the retracted content. Everything else is equal."""
    first, second = _interleavings(data, other_evidence_variant)
    assert without_identity_versions(first) == without_identity_versions(second)
    _assert_consistent(first)


def test_a_bulk_enrolment_in_one_second_then_an_earlier_event_ends_alike_in_either_order() -> None:
    """Five courses enrolled in one second, and an event of the same account two seconds earlier
    that arrives late: the same identity, version included, as when it came first. (Before, more
    events in the first second than seconds between fell back to the stored version plus one.)"""
    account = ACCOUNTS[0]
    bulk = [Spec(n, account, "doc", True, "enrol", course, 0, n, second=2) for n, course in
            enumerate(["A", "B"])] + [Spec(n, account, "doc", True, kind, course, 0, n, second=2)
                                      for n, kind, course in [(2, "pass", "A"), (3, "fail", "B"), (4, "withdraw", "A")]]
    earlier = Spec(5, account, "doc", True, "enrol", "B", 0, 5, second=0)
    late = run([render(s, family=False) for s in [*bulk, earlier]], [5, 1])
    first = run([render(s, family=False) for s in [earlier, *bulk]], [1, 5])
    assert late == first
    (learner,) = late["learners"].values()
    assert learner["version"] > 10**12  # weighed by first sightings, not a count
