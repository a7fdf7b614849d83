"""The platforms' simulators: each platform's simulated messages are what its own adapter reads,
messy in that platform's ways; the catalogues and equivalence rows they declare; the review
cases; and a platform registered from a test joins the traffic with nothing else changed.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from datetime import timedelta

import pytest

import adapters
from bridge.core.courses import parse_equivalences
from bridge.errors import BadInput
from bridge.tools.simulate import EQUIVALENCES, SimMessage, generate, review_account, review_cases
from tests.factories import OU, UNION, VOCATIONAL
from tests.simulated import (
    ADL,
    MOBILE,
    READERS,
    RESIDENT_ID,
    VERBS,
    account,
    at,
    contract_event,
    event_id,
    of,
    valid_resident_id,
)


@pytest.fixture(scope="module")
def good() -> list[tuple[int, SimMessage, dict]]:
    """(stream position, message, event) for every message the contract accepts."""
    messages, _ = generate(4000, seed=11)
    return [(i, m, e) for i, m in enumerate(messages) if (e := contract_event(m)) is not None]


def test_every_platform_adapter_parses_the_good_messages_and_rejects_the_malformed() -> None:
    """Each platform's simulated messages are what its own parser reads, field by field; a
    malformed one is bad input to it."""
    messages, _ = generate(3000, seed=3, malformed_ratio=0.1)
    rejected: Counter[str] = Counter()
    for message in messages:
        adapter = adapters.by_topic(message.topic)
        event = contract_event(message)
        if event is None:
            with pytest.raises(BadInput):
                adapter.parse(message.value)
            rejected[adapter.name] += 1
            continue
        reader = READERS[message.topic]
        parsed = adapter.parse(message.value)
        assert (parsed.platform, parsed.account, parsed.event_id) == (adapter.name, account(message, event),
                                                                        event_id(message, event))
        assert parsed.course_id == reader.course(event)
        assert parsed.kind.value == {"enrol": "enrolled", "complete": "completed", "withdraw": "withdrawn"}[reader.kind(event)]
        assert abs(parsed.occurred_at - reader.moment(event)) < timedelta(milliseconds=1)
        if parsed.outcome is not None:
            assert parsed.outcome.passed is reader.passed(event)
        raw = reader.resident_id(event)
        valid = valid_resident_id(raw) if raw else None
        document = parsed.person.document
        assert (document.number if document and document.type == "RESIDENT_ID" else None) == valid
    assert set(rejected) == {"union", "ou", "vocational"} and sum(rejected.values()) == 300


def test_messy_variants_appear(good) -> None:
    union, ou, vocational = of(good, UNION), of(good, OU), of(good, VOCATIONAL)
    id_cards = [e["member"]["idCardNo"] for e in union if "idCardNo" in e["member"]]
    assert any(n.endswith("x") for n in id_cards)
    assert any(re.search("[０-９]", n) for n in id_cards)
    assert any(" " in n for n in id_cards)
    assert any(re.fullmatch(r"\d{15}", n) for n in id_cards)
    assert "" in id_cards
    assert any("idCardNo" not in e["member"] for e in union)
    mobiles = [e["member"].get("mobile") for e in union]
    shapes = (r"0086 1[3-9]\d{9}", r"\+86 1[3-9]\d-\d{4}-\d{4}", r"1[3-9]\d \d{4} \d{4}", r"1[3-9]\d{9}")
    for pattern in shapes:
        assert any(m and re.fullmatch(pattern, m) for m in mobiles), pattern
    names = [e["member"].get("name") or "" for e in union]
    assert any("\u3000" in n for n in names)
    assert any(dot in n for n in names for dot in "•・．‧")
    assert any(re.fullmatch(r"\+861[3-9]\d{9}", e["learner"].get("phone") or "") for e in ou)
    documents = [e["learner"].get("identity_document") for e in ou]
    assert any(d is None for d in documents)
    assert any(d and d["type"] == "PASSPORT" for d in documents)
    assert sum(1 for d in documents if d and d["type"] == "RESIDENT_ID") > 0.8 * len(documents)

    numbers = [at(e, RESIDENT_ID[:-1]).get(RESIDENT_ID[-1]) for e in vocational if at(e, RESIDENT_ID[:-1])]
    assert any(e.get("context", {}).get("extensions", {}).get(RESIDENT_ID[-1]) is None for e in vocational)
    assert "" in numbers and any(n and n.endswith("x") for n in numbers)
    assert any(n and re.search("[０-９]", n) for n in numbers) and any(n and " " in n for n in numbers)
    phones = [at(e, MOBILE) for e in vocational]
    for pattern in (r"\+86 1[3-9]\d \d{4} \d{4}", r"1[3-9]\d{9}", r"\+86-1[3-9]\d-\d{4}-\d{4}", r"\(\+86\) .*"):
        assert any(p and re.fullmatch(pattern, p) for p in phones), pattern
    assert None in phones
    stamps = [e["timestamp"] for e in vocational]
    for pattern in (r".*:\d\d\+08:00", r".*\.\d{3}\+08:00", r".*Z", r".*\+0800"):
        assert any(re.fullmatch(pattern, s) for s in stamps), pattern
    assert any("name" not in e["actor"] for e in vocational)
    assert any("?" in e["object"]["id"] or "#" in e["object"]["id"] for e in vocational)
    assert Counter(e["verb"]["id"] for e in vocational).keys() == VERBS.keys()
    completed = [e for e in vocational if e["verb"]["id"] == ADL + "completed"]
    assert {e["result"]["success"] for e in completed} == {True, False}
    scaled = [at(e, ("result", "score", "scaled")) for e in vocational if "result" in e]
    assert None in scaled and all(s is None or 0 <= s <= 1 for s in scaled)


def test_catalogue_and_equivalences() -> None:
    catalogues = {a.name: {c.course_id: c for c in a.simulator.courses} for a in adapters.registered()}
    assert all(re.fullmatch(r"ACFTU-SK-\d{4}", c) for c in catalogues["union"])
    assert all(re.fullmatch(r"NOU-08\d{3}", c) for c in catalogues["ou"])
    assert all(re.fullmatch(r"VOC-[A-Z]{2}-\d{4}", c) for c in catalogues["vocational"])
    hours = [c.hours for name in ("union", "vocational") for c in catalogues[name].values()]
    assert any(h % 4 for h in hours) and any(h % 4 == 0 for h in hours) and any(h % 1 for h in hours)
    assert all(c.credits for c in catalogues["ou"].values())
    keys: dict[str, set[str]] = defaultdict(set)
    for course_key, platform, course_id in EQUIVALENCES:
        assert course_id in catalogues[platform]
        keys[course_key].add(platform)
    assert len(keys) >= 5 and all(len(platforms) >= 2 for platforms in keys.values())
    assert sum(1 for platforms in keys.values() if len(platforms) == 3) >= 3
    assert {frozenset(p) for p in keys.values()} >= {frozenset(("union", "vocational")), frozenset(("ou", "vocational"))}
    assert len({(p, c) for _, p, c in EQUIVALENCES}) == len(EQUIVALENCES)
    table = parse_equivalences("course_key,platform,course_id\n" + "\n".join(",".join(row) for row in EQUIVALENCES))
    assert table.key_for("vocational", "VOC-DS-1001") == table.key_for("union", "ACFTU-SK-0001") == "digital-skills-basics"


def test_review_cases_are_an_ambiguous_match_and_conflicting_documents() -> None:
    cases = review_cases()
    assert [(m.topic, m.key, m.value) for m in cases] == [(m.topic, m.key, m.value) for m in review_cases()]
    parsed = [adapters.by_topic(m.topic).parse(m.value) for m in cases]
    by_account: dict[tuple[str, str], list] = defaultdict(list)
    for event in parsed:
        by_account[(event.platform, event.account)].append(event)
    docless = [k for k, events in by_account.items() if all(e.person.document is None for e in events)]
    assert [f"{p}:{a}" for p, a in docless] == [review_account()]
    (evidence,) = {(e.person.name_key, e.person.mobile_key) for e in by_account[docless[0]]}
    same = [k for k, events in by_account.items() if k not in docless
            and {(e.person.name_key, e.person.mobile_key) for e in events} == {evidence}]
    assert len(same) == 2 and len({by_account[k][0].person.document for k in same}) == 2
    assert all(platform != docless[0][0] for platform, _ in same)
    conflicting = [k for k, events in by_account.items() if len({e.person.document for e in events}) == 2]
    assert len(conflicting) == 1 and all(e.person.document for e in by_account[conflicting[0]])
    # Review accounts never meet the simulated traffic's.
    messages, _ = generate(2000, seed=7)
    assert not {m.key for m in cases} & {m.key for m in messages}


def test_a_platform_registered_with_a_simulator_joins_the_traffic() -> None:
    """The generator names no platform: a test-only platform's simulator is all it takes."""
    from adapters._platform import PlatformAdapter
    from bridge.core.credits import hours_rule
    from bridge.tools import simulate
    from bridge.tools.simulate import Account, Course, Draw, Person, PlatformSimulator
    from topics.catalogue import TopicSpec

    class Acme(PlatformSimulator):
        courses = (Course("ACME-1", "Forklift", 8), Course("ACME-2", "First aid", 4))
        equivalences = (("work-safety", "ACME-1"),)

        def open_account(self, draw: Draw, person: Person) -> Account:
            return Account(draw.unique(lambda: "A" + draw.digits(9)), None)

        def event(self, draw, person, account, course, kind, at_ms, passed):
            return {"acmeId": f"a-{draw.next_seq()}", "type": kind, "account": account.number,
                    "course": course.course_id, "at": at_ms, "phone": person.mobile}

        def required(self, value):
            return (("acmeId",), ("type",), ("account",), ("course",))

        def unknown_event_type(self, draw, value):
            value["type"] = "rated"

        def sent_resident_id(self, value):
            return False

    topic = TopicSpec("acme.events.v1", "input", "delete", "account", None, None, "test platform", None)
    adapters.register(PlatformAdapter(name="acme", label="acme", topic=topic, parse=lambda raw: None,
                                      credit_rule=hours_rule, signature="acmeId", simulator=Acme()))
    try:
        messages, expectation = generate(3000, seed=1)
        acme = set()
        for m in messages:
            try:
                value = json.loads(m.value) if m.topic == "acme.events.v1" else None
            except ValueError:
                continue
            if isinstance(value, dict) and value.get("type") in ("enrol", "complete", "withdraw") and all(
                    value.get(k) for k in ("acmeId", "account", "course")):
                acme.add(value["acmeId"])
        assert expectation.events["acme"] == len(acme)
        assert expectation.events["acme"] > 0 and set(expectation.persons_by_platforms) == {1, 2, 3, 4}
        assert any("acme" in person for person in expectation.people)
        assert ("work-safety", "acme", "ACME-1") in simulate.EQUIVALENCES
    finally:
        adapters.unregister("acme")
    assert "acme" not in generate(500, seed=1)[1].events
