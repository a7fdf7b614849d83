"""The traffic simulator: deterministic, messy in the ways CONTRACT §1 allows, honest ground truth.

The checks here re-derive the expectation from the raw bytes with the suite's own reading of the
contract (:mod:`tests.simulated`, one reader per platform), so they do not share code (or
mistakes) with the generator. Each platform's own simulator: ``test_simulate_platforms.py``.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from datetime import datetime

import pytest

import adapters
from bridge.core.normalise import resident_id_check_character
from bridge.tools.simulate import EQUIVALENCES, Expectation, SimMessage, generate, iter_rate, summary_line
from tests.factories import OU, UNION, VOCATIONAL
from tests.simulated import (
    BEIJING,
    READERS,
    STUDY_HOURS,
    TOPIC_OF,
    account,
    at,
    contract_event,
    event_id,
    mobile_digits,
    of,
    real_date,
    shape,
    valid_resident_id,
)


@pytest.fixture(scope="module")
def run() -> tuple[list[SimMessage], Expectation]:
    return generate(4000, seed=11)


@pytest.fixture(scope="module")
def good(run) -> list[tuple[int, SimMessage, dict]]:
    """(stream position, message, event) for every message the contract accepts."""
    messages, _ = run
    return [(i, m, e) for i, m in enumerate(messages) if (e := contract_event(m)) is not None]


def test_same_seed_gives_identical_bytes() -> None:
    first, first_expectation = generate(1500, seed=5)
    second, second_expectation = generate(1500, seed=5)
    assert [(m.topic, m.key, m.value) for m in first] == [(m.topic, m.key, m.value) for m in second]
    assert first_expectation == second_expectation


def test_different_seeds_differ() -> None:
    first, _ = generate(500, seed=1)
    second, _ = generate(500, seed=2)
    assert [m.value for m in first] != [m.value for m in second]


def test_count_topics_and_totals(run) -> None:
    messages, expectation = run
    assert len(messages) == expectation.messages == 4000
    assert {m.topic for m in messages} == {UNION, OU, VOCATIONAL} == {a.topic.name for a in adapters.registered()}
    assert expectation.good_events + expectation.duplicates + expectation.malformed == len(messages)
    assert (expectation.malformed, expectation.duplicates) == (40, 120)


def test_malformed_count_matches_what_the_contract_rejects(run, good) -> None:
    messages, expectation = run
    assert len(messages) - len(good) == expectation.malformed


def test_duplicates_are_identical_redeliveries_later_in_the_stream(run, good) -> None:
    messages, expectation = run
    copies = Counter((m.topic, m.key, m.value) for m in messages)
    assert sum(n - 1 for n in copies.values()) == expectation.duplicates
    first_seen: dict[tuple[str, bytes], int] = {}
    for i, message, event in good:
        ref = (message.topic, message.value)
        if ref in first_seen:
            assert i > first_seen[ref]
        first_seen.setdefault(ref, i)


def test_good_event_counts_and_unique_ids(good, run) -> None:
    _, expectation = run
    ids = {(m.topic, event_id(m, e)) for _, m, e in good}
    distinct_values = {(m.topic, m.value) for _, m, e in good}
    assert len(ids) == len(distinct_values) == expectation.good_events
    assert set(expectation.events) == {"union", "ou", "vocational"}
    for platform, count in expectation.events.items():
        assert sum(1 for topic, _ in ids if topic == TOPIC_OF[platform]) == count > 0
    patterns = {UNION: r"u-[0-9a-f]{8}-\d{4,}", OU: r"[0-7][0-9A-HJKMNP-TV-Z]{25}",
                VOCATIONAL: r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"}
    assert all(re.fullmatch(patterns[t], i) for t, i in ids)


def test_keys_are_the_account_numbers(run, good) -> None:
    messages, _ = run
    accounts = set()
    patterns = {UNION: r"GH\d{10}", OU: r"\d{13}", VOCATIONAL: r"[A-Z]{2}\d{4}00\d{6}"}
    for _, message, event in good:
        assert message.key == account(message, event).encode("utf-8")
        assert re.fullmatch(patterns[message.topic], message.key.decode())
        accounts.add(message.key)
    assert {m.key for m in messages} <= accounts  # malformed messages are keyed by real accounts too


def test_persons_people_and_resident_id_links_match_the_messages(good, run) -> None:
    _, expectation = run
    accounts = {platform: {account(m, e) for _, m, e in good if m.topic == topic} for platform, topic in TOPIC_OF.items()}
    assert len(expectation.people) == expectation.persons_on_several
    for person in expectation.people:
        assert len(person) >= 2 and all(number in accounts[platform] for platform, number in person.items())
    held = [(platform, number) for person in expectation.people for platform, number in person.items()]
    assert len(held) == len(set(held))  # no account belongs to two persons
    total_accounts = sum(len(a) for a in accounts.values())
    assert expectation.persons == total_accounts - sum(len(person) - 1 for person in expectation.people)
    sizes = Counter(len(person) for person in expectation.people)
    assert expectation.persons_by_platforms == {1: expectation.persons - len(expectation.people), 2: sizes[2], 3: sizes[3]}
    assert sizes[3] > 0

    by_number: dict[str, set[tuple[str, str]]] = defaultdict(set)
    invalid_accounts = set()
    for _, message, event in good:
        platform = READERS[message.topic].platform
        if (raw := READERS[message.topic].resident_id(event)) is None:
            continue
        if (number := valid_resident_id(raw)) is None:
            invalid_accounts.add((platform, account(message, event)))
        else:
            by_number[number].add((platform, account(message, event)))
    linked = {frozenset(sent) for sent in by_number.values() if len({p for p, _ in sent}) >= 2}
    assert linked == {frozenset(person.items()) for person in expectation.linked}
    assert len(linked) == expectation.linked_by_resident_id
    people = [set(person.items()) for person in expectation.people]
    assert all(any(set(link) <= person for person in people) for link in linked)
    assert any(len(link) == 3 for link in linked)
    assert 0 < expectation.linked_by_resident_id < expectation.persons_on_several
    assert len(invalid_accounts) == expectation.accounts_with_invalid_resident_id > 0


def test_people_are_the_same_person_on_every_platform(good, run) -> None:
    _, expectation = run
    mobiles: dict[tuple[str, str], set[str]] = defaultdict(set)
    for _, message, event in good:
        if phone := READERS[message.topic].mobile(event):
            mobiles[(READERS[message.topic].platform, account(message, event))].add(mobile_digits(phone))
    for person in expectation.people:
        assert len(set().union(*(mobiles[item] for item in person.items()))) <= 1


def test_resident_ids_are_well_formed_and_valid_ones_pass_the_check_character(good) -> None:
    per_account: dict[tuple[str, str], set[bool]] = defaultdict(set)
    for _, message, event in good:
        if (raw := READERS[message.topic].resident_id(event)) is None:
            continue
        number = shape(raw)
        assert re.fullmatch(r"\d{17}[\dX]", number) and real_date(number), raw
        assert 1958 <= int(number[6:10]) <= 2003
        per_account[(message.topic, account(message, event))].add(resident_id_check_character(number[:17]) == number[17])
    # An account's record is either right or carries one typo; it never mixes the two.
    assert all(len(outcomes) == 1 for outcomes in per_account.values())
    bad = sum(1 for outcomes in per_account.values() if outcomes == {False})
    assert 0 < bad < 0.06 * len(per_account)


def test_some_completions_arrive_before_their_enrolments(good) -> None:
    enrolled: dict[tuple, tuple[int, datetime]] = {}
    completed: dict[tuple, tuple[int, datetime]] = {}
    for i, message, event in good:
        reader = READERS[message.topic]
        ref = (message.topic, account(message, event), reader.course(event))
        kind = reader.kind(event)
        if kind == "enrol":
            enrolled.setdefault(ref, (i, reader.moment(event)))
        elif kind == "complete":
            completed.setdefault(ref, (i, reader.moment(event)))
    overtaken = [ref for ref, (i, _) in completed.items() if ref in enrolled and i < enrolled[ref][0]]
    assert {ref[0] for ref in overtaken} == set(READERS)
    # Only delivery is out of order: the events' own timestamps still put the enrolment first.
    assert all(enrolled[ref][1] < completed[ref][1] for ref in completed if ref in enrolled)


def test_timestamps_and_course_fields(good) -> None:
    for _, message, event in good:
        assert READERS[message.topic].moment(event).astimezone(BEIJING).year == 2024
        if message.topic == UNION:
            assert 8 <= event["course"]["studyHours"] <= 64
        elif message.topic == OU:
            assert isinstance(event["occurred_at"], int)
            assert 0.5 <= event["course"]["credits"] <= 4
            assert event["course"]["contact_hours"] > 0
        else:
            assert 0 < at(event, STUDY_HOURS) <= 64


def test_outcomes_include_fail_then_pass_and_withdrawals(good) -> None:
    for topic, reader in READERS.items():
        history: dict[tuple, list[tuple[datetime, str]]] = defaultdict(list)
        kinds = Counter(reader.kind(e) for e in of(good, topic))
        for event in of(good, topic):
            if reader.kind(event) == "complete":
                outcome = "pass" if reader.passed(event) else "fail"
                history[(at(event, reader.account), reader.course(event))].append((reader.moment(event), outcome))
        outcomes = Counter(tuple(o for _, o in sorted(h)) for h in history.values())
        assert outcomes[("pass",)] > outcomes[("fail",)] > 0, topic
        assert outcomes[("fail", "pass")] > 0, topic
        assert kinds["complete"] > kinds["withdraw"] > 0, topic


def test_equivalent_courses_are_taken_across_platforms(good, run) -> None:
    _, expectation = run
    taken = defaultdict(set)
    for _, message, event in good:
        taken[(READERS[message.topic].platform, account(message, event))].add(READERS[message.topic].course(event))
    key_of = {(p, c): k for k, p, c in EQUIVALENCES}
    spans = Counter()
    for person in expectation.people:
        platforms_of_key = defaultdict(set)
        for item in person.items():
            for course in taken[item]:
                if (key := key_of.get((item[0], course))) is not None:
                    platforms_of_key[key].add(item[0])
        spans[max((len(p) for p in platforms_of_key.values()), default=0)] += 1
    assert spans[2] > 0 and spans[3] > 0


def test_malformed_messages_cover_every_kind_on_every_platform() -> None:
    messages, expectation = generate(3000, seed=3, malformed_ratio=0.1)
    kinds: dict[str, Counter] = defaultdict(Counter)
    for message in messages:
        if contract_event(message) is not None:
            continue
        platform = READERS[message.topic].platform
        try:
            value = json.loads(message.value.decode("utf-8"))
        except UnicodeDecodeError:
            kinds[platform]["not utf-8"] += 1
        except json.JSONDecodeError:
            kinds[platform]["not json"] += 1
        else:
            if isinstance(value, list):
                kinds[platform]["array"] += 1
            elif READERS[message.topic].kind(value) is not None:
                kinds[platform]["missing field"] += 1
            else:
                kinds[platform]["unknown type"] += 1
    assert set(kinds) == {"union", "ou", "vocational"}
    for platform, found in kinds.items():
        assert set(found) == {"not utf-8", "not json", "array", "missing field", "unknown type"}, platform
    assert sum(sum(found.values()) for found in kinds.values()) == expectation.malformed == 300


def test_ratios_of_zero_send_only_distinct_good_events() -> None:
    messages, expectation = generate(800, seed=4, malformed_ratio=0, duplicate_ratio=0)
    assert expectation.malformed == expectation.duplicates == 0
    assert all(contract_event(m) is not None for m in messages)
    assert len({m.value for m in messages}) == len(messages) == expectation.good_events


def test_overlap_ratio_controls_persons_on_several_platforms() -> None:
    _, none = generate(800, seed=6, overlap_ratio=0.0)
    assert none.persons_on_several == 0 and none.people == () and none.linked == ()
    assert none.persons_by_platforms[1] == none.persons
    _, every = generate(800, seed=6, overlap_ratio=1.0)
    # Only the last person may be cut short before reaching their second platform.
    assert every.persons - every.persons_on_several <= 1


def test_small_and_invalid_arguments() -> None:
    empty = Expectation(0, 0, 0, 0, 0, 0, events={"union": 0, "ou": 0, "vocational": 0},
                        persons_by_platforms={1: 0, 2: 0, 3: 0})
    assert generate(0) == ([], empty)
    messages, expectation = generate(5, malformed_ratio=1.0, duplicate_ratio=0.0)
    assert len(messages) == expectation.malformed == 5
    assert all(contract_event(m) is None for m in messages)
    bad = ({"malformed_ratio": 1.5}, {"overlap_ratio": -0.1}, {"malformed_ratio": 0.6, "duplicate_ratio": 0.6})
    for kwargs in bad:
        with pytest.raises(ValueError):
            generate(10, **kwargs)
    with pytest.raises(ValueError):
        generate(-1)


def test_iter_rate_paces_against_the_start_time(run) -> None:
    messages, _ = run
    now, slept = [100.0], []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    paced = list(iter_rate(messages[:5], 10.0, clock=lambda: now[0], sleep=sleep))
    assert paced == messages[:5]
    assert slept == pytest.approx([0.1] * 4)
    assert list(iter_rate(messages[:50], None)) == messages[:50]
    with pytest.raises(ValueError):
        iter_rate(messages, 0)


def test_summary_line_names_the_numbers(run) -> None:
    _, expectation = run
    line = summary_line(expectation)
    assert "\n" not in line
    for number in (expectation.messages, expectation.persons, expectation.linked_by_resident_id,
                   *expectation.events.values(), expectation.persons_by_platforms[3]):
        assert str(number) in line
    assert all(name in line for name in expectation.events)
