"""The traffic simulator: deterministic, messy in the ways CONTRACT §1 allows, honest ground truth.

The checks here re-derive the expectation from the raw bytes with their own reading of the
contract, so they do not share code (or mistakes) with the generator.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter, defaultdict
from datetime import date, datetime, timezone

import pytest

from bridge.core.normalise import resident_id_check_character
from bridge.simulate import (
    EQUIVALENCES,
    OU_COURSES,
    OU_TOPIC,
    UNION_COURSES,
    UNION_TOPIC,
    Expectation,
    SimMessage,
    generate,
    iter_rate,
    summary_line,
)

UNION_TYPES = {"COURSE_ENROLL", "COURSE_COMPLETE", "COURSE_WITHDRAW"}
OU_TYPES = {"enrolment.created", "enrolment.cancelled", "course.completed"}
UNION_REQUIRED = [("msgId",), ("eventType",), ("occurTime",), ("member", "memberNo"),
                  ("course", "courseCode"), ("course", "studyHours")]
OU_REQUIRED = [("event_id",), ("event_type",), ("occurred_at",), ("learner", "student_no"),
               ("course", "course_id"), ("course", "credits")]
START_2024_MS = int(datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp() * 1000)
START_2025_MS = int(datetime(2025, 1, 1, tzinfo=timezone.utc).timestamp() * 1000)


def contract_event(message: SimMessage) -> dict | None:
    """The event if the contract accepts the message, else ``None`` (it would be dead-lettered)."""
    try:
        value = json.loads(message.value.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(value, dict):
        return None
    if message.topic == UNION_TOPIC:
        kind, types, required = value.get("eventType"), UNION_TYPES, list(UNION_REQUIRED)
        if kind == "COURSE_COMPLETE":
            required.append(("result", "passed"))
    else:
        kind, types, required = value.get("event_type"), OU_TYPES, list(OU_REQUIRED)
        if kind == "course.completed":
            required.append(("outcome", "status"))
    if kind not in types:
        return None
    for path in required:
        node = value
        for part in path:
            if not isinstance(node, dict) or node.get(part) is None:
                return None
            node = node[part]
    return value


def account(message: SimMessage, event: dict) -> str:
    if message.topic == UNION_TOPIC:
        return event["member"]["memberNo"]
    return event["learner"]["student_no"]


def event_id(message: SimMessage, event: dict) -> str:
    return event["msgId"] if message.topic == UNION_TOPIC else event["event_id"]


def course_of(message: SimMessage, event: dict) -> str:
    return event["course"]["courseCode" if message.topic == UNION_TOPIC else "course_id"]


def resident_id_number(message: SimMessage, event: dict) -> str | None:
    """The raw resident ID number the event carries, if any (empty strings count as none)."""
    if message.topic == UNION_TOPIC:
        return event["member"].get("idCardNo") or None
    document = event["learner"].get("identity_document")
    if document and document["type"] == "RESIDENT_ID":
        return document["number"] or None
    return None


def shape(raw: str) -> str:
    """NFKC, no spaces, upper case; a 15-digit legacy number upgraded (CONTRACT §3.2)."""
    number = unicodedata.normalize("NFKC", raw).replace(" ", "").upper()
    if re.fullmatch(r"\d{15}", number):
        first17 = number[:6] + "19" + number[6:]
        number = first17 + resident_id_check_character(first17)
    return number


def real_date(number: str) -> bool:
    try:
        date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    return True


def valid_resident_id(raw: str) -> str | None:
    number = shape(raw)
    if not re.fullmatch(r"\d{17}[\dX]", number) or not real_date(number):
        return None
    return number if resident_id_check_character(number[:17]) == number[17] else None


def mobile_digits(raw: str) -> str:
    digits = re.sub(r"\D", "", raw)
    return digits[-11:]


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
    assert {m.topic for m in messages} == {UNION_TOPIC, OU_TOPIC}
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
    assert sum(1 for topic, _ in ids if topic == UNION_TOPIC) == expectation.union_events
    assert sum(1 for topic, _ in ids if topic == OU_TOPIC) == expectation.ou_events
    assert all(re.fullmatch(r"u-[0-9a-f]{8}-\d{4,}", i) for t, i in ids if t == UNION_TOPIC)
    assert all(re.fullmatch(r"[0-7][0-9A-HJKMNP-TV-Z]{25}", i) for t, i in ids if t == OU_TOPIC)


def test_keys_are_the_account_numbers(run, good) -> None:
    messages, _ = run
    accounts = set()
    for _, message, event in good:
        assert message.key == account(message, event).encode("utf-8")
        pattern = r"GH\d{10}" if message.topic == UNION_TOPIC else r"\d{13}"
        assert re.fullmatch(pattern, message.key.decode())
        accounts.add(message.key)
    assert {m.key for m in messages} <= accounts  # malformed messages are keyed by real accounts too


def test_persons_pairs_and_resident_id_links_match_the_messages(good, run) -> None:
    _, expectation = run
    union_accounts = {account(m, e) for _, m, e in good if m.topic == UNION_TOPIC}
    ou_accounts = {account(m, e) for _, m, e in good if m.topic == OU_TOPIC}
    assert len(expectation.pairs) == expectation.persons_on_both
    assert {u for u, _ in expectation.pairs} <= union_accounts
    assert {o for _, o in expectation.pairs} <= ou_accounts
    assert expectation.persons == len(union_accounts) + len(ou_accounts) - expectation.persons_on_both

    valid_ids: dict[str, dict[str, set[str]]] = {UNION_TOPIC: defaultdict(set), OU_TOPIC: defaultdict(set)}
    invalid_accounts = set()
    for _, message, event in good:
        if (raw := resident_id_number(message, event)) is None:
            continue
        if (number := valid_resident_id(raw)) is None:
            invalid_accounts.add((message.topic, account(message, event)))
        else:
            valid_ids[message.topic][account(message, event)].add(number)
    by_number = {n: a for a, numbers in valid_ids[OU_TOPIC].items() for n in numbers}
    linked = {
        (union_account, by_number[n])
        for union_account, numbers in valid_ids[UNION_TOPIC].items()
        for n in numbers
        if n in by_number
    }
    assert linked == set(expectation.linked_pairs)
    assert len(linked) == expectation.linked_by_resident_id
    assert set(expectation.linked_pairs) <= set(expectation.pairs)
    assert 0 < expectation.linked_by_resident_id < expectation.persons_on_both
    assert len(invalid_accounts) == expectation.accounts_with_invalid_resident_id > 0


def test_pairs_are_the_same_person_on_both_platforms(good, run) -> None:
    _, expectation = run
    mobiles: dict[str, set[str]] = defaultdict(set)
    for _, message, event in good:
        person = event["member"] if message.topic == UNION_TOPIC else event["learner"]
        phone = person.get("mobile") if message.topic == UNION_TOPIC else person.get("phone")
        if phone:
            mobiles[account(message, event)].add(mobile_digits(phone))
    for union_account, ou_account in expectation.pairs:
        assert len(mobiles[union_account] | mobiles[ou_account]) <= 1


def test_resident_ids_are_well_formed_and_valid_ones_pass_the_check_character(good) -> None:
    per_account: dict[str, set[bool]] = defaultdict(set)
    for _, message, event in good:
        if (raw := resident_id_number(message, event)) is None:
            continue
        number = shape(raw)
        assert re.fullmatch(r"\d{17}[\dX]", number) and real_date(number), raw
        assert 1958 <= int(number[6:10]) <= 2003
        per_account[account(message, event)].add(
            resident_id_check_character(number[:17]) == number[17]
        )
    # An account's record is either right or carries one typo; it never mixes the two.
    assert all(len(outcomes) == 1 for outcomes in per_account.values())
    bad = sum(1 for outcomes in per_account.values() if outcomes == {False})
    assert 0 < bad < 0.06 * len(per_account)


def test_messy_variants_appear(good) -> None:
    union = [e for _, m, e in good if m.topic == UNION_TOPIC]
    ou = [e for _, m, e in good if m.topic == OU_TOPIC]
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


def test_some_completions_arrive_before_their_enrolments(good) -> None:
    enrolled: dict[tuple, tuple[int, int]] = {}
    completed: dict[tuple, tuple[int, int]] = {}
    for i, message, event in good:
        ref = (message.topic, account(message, event), course_of(message, event))
        kind = event.get("eventType") or event.get("event_type")
        at = event["occurred_at"] if message.topic == OU_TOPIC else event["occurTime"]
        if kind in ("COURSE_ENROLL", "enrolment.created"):
            enrolled.setdefault(ref, (i, at))
        elif kind in ("COURSE_COMPLETE", "course.completed"):
            completed.setdefault(ref, (i, at))
    overtaken = [ref for ref, (i, _) in completed.items() if ref in enrolled and i < enrolled[ref][0]]
    assert overtaken
    # Only delivery is out of order: the events' own timestamps still put the enrolment first.
    assert all(enrolled[ref][1] < completed[ref][1] for ref in completed if ref in enrolled)


def test_timestamps_and_course_fields(good) -> None:
    for _, message, event in good:
        if message.topic == UNION_TOPIC:
            moment = datetime.strptime(event["occurTime"], "%Y-%m-%d %H:%M:%S")
            assert moment.year == 2024
            assert 8 <= event["course"]["studyHours"] <= 64
        else:
            assert isinstance(event["occurred_at"], int)
            assert START_2024_MS <= event["occurred_at"] < START_2025_MS
            assert 0.5 <= event["course"]["credits"] <= 4
            assert event["course"]["contact_hours"] > 0


def test_outcomes_include_fail_then_pass_and_withdrawals(good) -> None:
    history: dict[tuple, list[str]] = defaultdict(list)
    completions = [(m, e) for _, m, e in good if m.topic == UNION_TOPIC and "result" in e]
    for message, event in sorted(completions, key=lambda c: c[1]["occurTime"]):
        outcome = "pass" if event["result"]["passed"] else "fail"
        history[(account(message, event), course_of(message, event))].append(outcome)
    outcomes = Counter(tuple(h) for h in history.values())
    assert outcomes[("pass",)] > outcomes[("fail",)] > 0
    assert outcomes[("fail", "pass")] > 0
    kinds = Counter(e.get("eventType") or e.get("event_type") for _, _, e in good)
    assert kinds["COURSE_WITHDRAW"] > 0 and kinds["enrolment.cancelled"] > 0
    assert kinds["course.completed"] > kinds["enrolment.cancelled"]


def test_catalogue_and_equivalences() -> None:
    union = {code: hours for code, _, hours in UNION_COURSES}
    ou = {course_id: credits for course_id, _, credits, _ in OU_COURSES}
    assert all(re.fullmatch(r"ACFTU-SK-\d{4}", c) for c in union)
    assert all(re.fullmatch(r"NOU-08\d{3}", c) for c in ou)
    assert any(h % 4 for h in union.values()) and any(h % 4 == 0 for h in union.values())
    keys: dict[str, set[str]] = defaultdict(set)
    for course_key, platform, course_id in EQUIVALENCES:
        assert course_id in (union if platform == "union" else ou)
        keys[course_key].add(platform)
    assert len(keys) >= 3 and all(platforms == {"union", "ou"} for platforms in keys.values())
    assert len({(p, c) for _, p, c in EQUIVALENCES}) == len(EQUIVALENCES)


def test_equivalent_courses_are_taken_on_both_platforms(good, run) -> None:
    _, expectation = run
    taken = defaultdict(set)
    for _, message, event in good:
        platform = "union" if message.topic == UNION_TOPIC else "ou"
        taken[(platform, account(message, event))].add(course_of(message, event))
    key_of = {(p, c): k for k, p, c in EQUIVALENCES}
    both = 0
    for union_account, ou_account in expectation.pairs:
        union_keys = {key_of.get(("union", c)) for c in taken[("union", union_account)]} - {None}
        ou_keys = {key_of.get(("ou", c)) for c in taken[("ou", ou_account)]} - {None}
        both += bool(union_keys & ou_keys)
    assert both > 0


def test_malformed_messages_cover_every_kind() -> None:
    messages, expectation = generate(3000, seed=3, malformed_ratio=0.1)
    kinds = Counter()
    for message in messages:
        if contract_event(message) is not None:
            continue
        try:
            value = json.loads(message.value.decode("utf-8"))
        except UnicodeDecodeError:
            kinds["not utf-8"] += 1
        except json.JSONDecodeError:
            kinds["not json"] += 1
        else:
            if isinstance(value, list):
                kinds["array"] += 1
            elif (value.get("eventType") or value.get("event_type")) in UNION_TYPES | OU_TYPES:
                kinds["missing field"] += 1
            else:
                kinds["unknown type"] += 1
    assert set(kinds) == {"not utf-8", "not json", "array", "missing field", "unknown type"}
    assert sum(kinds.values()) == expectation.malformed == 300


def test_ratios_of_zero_send_only_distinct_good_events() -> None:
    messages, expectation = generate(800, seed=4, malformed_ratio=0, duplicate_ratio=0)
    assert expectation.malformed == expectation.duplicates == 0
    assert all(contract_event(m) is not None for m in messages)
    assert len({m.value for m in messages}) == len(messages) == expectation.good_events


def test_overlap_ratio_controls_persons_on_both_platforms() -> None:
    _, none = generate(800, seed=6, overlap_ratio=0.0)
    assert none.persons_on_both == 0 and none.pairs == ()
    _, every = generate(800, seed=6, overlap_ratio=1.0)
    # Only the last person may be cut short before reaching their second platform.
    assert every.persons - every.persons_on_both <= 1


def test_small_and_invalid_arguments() -> None:
    assert generate(0) == ([], Expectation(0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
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
    for number in (expectation.messages, expectation.persons, expectation.linked_by_resident_id):
        assert str(number) in line
