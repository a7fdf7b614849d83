"""The cases of issue 11, one test each, against a real worker, broker and database (both backends).

Every test sends its hostile messages between ordinary ones and checks, besides its own point,
what CONTRACT §1-§2 ask of every message: the ordinary ones are processed, the hostile ones are
dead-lettered (a reason code, a reason that does not repeat the hostile value, the SHA-256 of the
payload, at most 1 MiB), within a bound, and the worker stays ready. One worker per backend
serves the module (a worker costs seconds to start); every test uses ids of its own. The last
test reads every output topic whole and checks that no message exceeds 1 MiB.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from bridge.tools.broker import free_port
from bridge.tools.demo import Progress, WorkerProcess, wait_until_consumed
from tests import hostile
from tests.factories import UNION, encode, resident_id, union_event
from tests.integration.harness import (
    MiB,
    Bridge,
    Observer,
    Sent,
    backend_database,
    install_insert_poison,
    outcome_check,
    readyz,
    sha256_hex,
    wait_ready,
)
from topics import catalogue

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

#: The longest any case may take to be settled: processed, dead-lettered, published.
BOUND_S = 60.0
STALL_TIMEOUT_S = 30
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@dataclass
class Live:
    backend: str
    bridge: Bridge
    worker: WorkerProcess
    port: int
    observer: Observer


def start(workdir: Path, url: str) -> Live:
    bridge = Bridge(workdir, url)
    try:
        port = free_port()
        worker = bridge.start_worker(BRIDGE_WEB_PORT=str(port), BRIDGE_STALL_TIMEOUT_S=str(STALL_TIMEOUT_S))
        observer = Observer(bridge)
    except BaseException:
        bridge.close()
        raise
    return Live("", bridge, worker, port, observer)


def stop(live: Live) -> None:
    live.observer.close()
    live.bridge.close()


@pytest.fixture(scope="module", params=BACKENDS)
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One bridge and one worker per backend for the module, with the poison trigger installed."""
    workdir = tmp_path_factory.mktemp(f"poison-{request.param}")
    with backend_database(request.param, workdir) as url:
        bridge = start(workdir, url)
        bridge.backend = request.param
        try:
            wait_ready(bridge.port, bridge.worker)
            install_insert_poison(bridge.bridge.engine, hostile.DB_POISON_PREFIX, hostile.DB_CONSTRAINT_PREFIX)
            yield bridge
        finally:
            stop(bridge)


_RUN = uuid.uuid4().hex[:6]
_uids = itertools.count(1)


def uid() -> str:
    return f"{_RUN}-{next(_uids)}"


def exchange(live: Live, *messages: hostile.Hostile, pairs: Sequence[tuple[int, int]] = (),
             timeout_s: float = BOUND_S, around: bool = True) -> list[tuple[hostile.Hostile, Sent]]:
    """Send ``messages`` (between two ordinary events of each platform when ``around``), wait until
    each became what it must, check the worker is still ready; returns the messages with their
    coordinates. ``pairs`` index ``messages``."""
    if around:
        before = [hostile.ordinary("union", uid(), "COURSE_COMPLETE"), hostile.ordinary("ou", uid())]
        after = [hostile.ordinary("ou", uid(), "course.completed"), hostile.ordinary("union", uid())]
        pairs = [(i + len(before), j + len(before)) for i, j in pairs]
        messages = (*before, *messages, *after)
    mark = len(live.observer.violations)
    sent = live.observer.send([(m.topic, m.key, m.value) for m in messages])
    both = list(zip(messages, sent))
    live.observer.wait(outcome_check(live.observer, both, pairs), timeout_s,
                       f"[{live.backend}] {[m.label for m in messages]}", live.worker)
    assert_ready(live)
    assert_no_violations(live, mark)
    return both


def assert_no_violations(live: Live, since: int) -> None:
    """No output message read since ``since`` breaks CONTRACT §2 on its own (size, key, JSON)."""
    live.observer.refresh(300)
    found = live.observer.violations[since:]
    assert not found, f"[{live.backend}] output messages that break CONTRACT §2:\n" + "\n".join(found[:20])


def assert_ready(live: Live) -> None:
    status, body = readyz(live.port)
    assert status == 200, f"[{live.backend}] the worker is not ready: {status} {body}"


def one(builder, platform: str, path: str, variant) -> hostile.Hostile:
    (message,) = hostile.Recipe(builder, platform, path, variant).build(uid())
    return message


def letter_of(live: Live, sent: Sent) -> dict:
    return live.observer.dead[sent.coordinates]


# -- ids and names ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["msgId", "member.memberNo", "course.courseCode"])
def test_unpaired_surrogate_in_an_id_is_dead_lettered(live: Live, path: str) -> None:
    alone = one("id", "union", path, ("surrogate", ("\ud800", "alone")))
    inside = one("id", "union", path, ("surrogate", ("\ud800", "middle")))
    assert b"\\ud800" in alone.value  # the JSON escape: valid UTF-8 JSON, an invalid string
    exchange(live, alone, inside)


@pytest.mark.parametrize("path", ["event_id", "learner.student_no", "course.course_id"])
def test_unpaired_surrogate_in_an_open_university_id_is_dead_lettered(live: Live, path: str) -> None:
    exchange(live, one("id", "ou", path, ("surrogate", ("\udc00", "end"))))


@pytest.mark.parametrize("path", ["msgId", "member.memberNo", "course.courseCode", "learner.student_no"])
def test_nul_in_an_id_is_dead_lettered(live: Live, path: str) -> None:
    """PostgreSQL text cannot hold NUL: whatever validation misses would fail every transaction."""
    platform = "ou" if path.startswith("learner") else "union"
    exchange(live, one("id", platform, path, ("control", ("\x00", "middle"))),
             one("id", platform, path, ("control", ("\x00", "end"))))


@pytest.mark.parametrize("char", ["\x01", "\x1b", "\x7f", "\x85", "\x9b", "\n"], ids=lambda c: f"U+{ord(c):04X}")
def test_control_character_in_an_id_is_dead_lettered(live: Live, char: str) -> None:
    exchange(live, one("id", "union", "msgId", ("control", (char, "middle"))),
             one("id", "ou", "learner.student_no", ("control", (char, "middle"))))


@pytest.mark.parametrize("length", [129, 10_000, 500_000])
def test_overlong_ids_are_dead_lettered(live: Live, length: int) -> None:
    """129 characters overflow the PostgreSQL columns of 128; 500,000 make a message of about 1 MB
    whose key is as long (the dead letter may not carry either)."""
    exchange(live, *(one("id", "union", path, ("length", length)) for path in hostile.ID_PATHS["union"]),
             one("id", "ou", "learner.student_no", ("length", length)))


def test_ids_of_128_characters_and_a_name_of_64_are_processed(live: Live) -> None:
    exchange(live, hostile.ordinary("union", uid(), "COURSE_COMPLETE", edge=True),
             hostile.ordinary("ou", uid(), "course.completed", edge=True))


def test_name_over_64_characters_is_dead_lettered(live: Live) -> None:
    exchange(live, one("name", "union", "member.name", ("length", 65)),
             one("name", "ou", "learner.full_name", ("length", 65)),
             one("name", "union", "member.name", ("huge", 100_000)))


# -- operator decisions ---------------------------------------------------------------------------


def test_decision_with_a_300_character_account_or_a_nul_in_decided_by_is_dead_lettered(live: Live) -> None:
    before = live.bridge.counts()
    exchange(
        live,
        one("decision", "decisions", "", ("account of 300 characters", {"account__account": "long:300"})),
        one("decision", "decisions", "", ("NUL in decided_by", {"decided_by": "opera\x00tor-7"})),
        one("decision", "decisions", "", ("lone surrogate in decided_by", {"decided_by": "operator-\ud800"})),
    )
    after = live.bridge.counts()
    assert (after["accounts"], after["learners"]) == (before["accounts"] + 4, before["learners"] + 4), \
        "a rejected decision changed the registry (only the 4 ordinary accounts and learners may be new)"


def test_decision_on_no_open_review_item_is_dead_lettered_and_links_nothing(live: Live) -> None:
    """CONTRACT §2: a decision that names no open review item (or is not signed by a trusted key)
    is dead-lettered and changes nothing; rule 9: a decision links only as its review item
    proposed. This one is well-formed and unsigned, and names a review item that does not exist
    and two accounts that do not exist yet; when they arrive, sharing no evidence, they stay apart."""
    key = uid()
    (forged,) = hostile.Recipe("decision", "decisions", "", hostile.DECISION_ON_NO_REVIEW).build(key)
    (sent,) = live.observer.send([(forged.topic, forged.key, forged.value)])
    wait_until_consumed(live.bridge.settings, live.worker, Progress(), expected=live.bridge.sent)
    account = hostile.from_event("union", hostile.base_event("union", key), key, "the decision's account", "process")
    anchor = hostile.from_event("ou", hostile.base_event("ou", key), key, "the decision's anchor", "process")
    exchange(live, account, anchor)
    learners = {live.observer.record_of(m.event)["learner_id"] for m in (account, anchor)}
    assert len(learners) == 2, (
        "a decision on no review item, signed by nobody, linked two accounts that share no evidence "
        f"as soon as they arrived (one learner {learners})"
    )
    live.observer.wait(
        lambda: ([] if sent.coordinates in live.observer.dead else [f"{forged.label} at {sent.coordinates}"], []),
        10, f"[{live.backend}] a decision on no review item is not dead-lettered", live.worker,
    )


# -- sizes ---------------------------------------------------------------------------------------


def test_bad_message_of_900_kb_is_dead_lettered_with_its_digest_not_its_bytes(live: Live) -> None:
    bad_id = one("size", "union", "", ("bad-id", 900_000))
    missing = one("size", "ou", "", ("missing", 900_000))
    assert 890_000 < len(bad_id.value) < 910_000 and 890_000 < len(missing.value) < 910_000
    for message, sent in exchange(live, bad_id, missing)[2:4]:
        letter = letter_of(live, sent)
        assert letter["payload_sha256"] == sha256_hex(message.value)
        # Carrying 900 KB (1.2 MB in base64) would take the dead letter over the bound.
        assert letter["_size"] < len(message.value), f"the dead letter of {message.label} carries its bytes"


def test_messages_over_1_mib_are_dead_lettered_with_their_digest(live: Live) -> None:
    """tansu accepts messages of 20 MB and more, so inputs over the contract's bound can be sent
    (the test producer allows 16 MiB): a message of 1.1 MiB and one of 5 MiB, otherwise valid."""
    over = one("size", "union", "", ("valid", MiB + 100_000))
    huge = one("size", "ou", "", ("valid", 5 * MiB))
    assert len(over.value) > MiB and len(huge.value) > 5 * MiB - 1000
    for message, sent in exchange(live, over, huge)[2:4]:
        letter = letter_of(live, sent)
        assert letter["payload_sha256"] == sha256_hex(message.value)
        assert letter["_size"] <= MiB


def test_valid_message_of_900_kb_is_processed(live: Live) -> None:
    """Within the 1 MiB bound a message is input like any other, however much it pads."""
    exchange(live, one("size", "union", "", ("valid", 900_000)), one("size", "ou", "", ("valid", 900_000)))


def test_keys_that_are_not_utf8_never_become_output_keys(live: Live) -> None:
    """Output keys are plain UTF-8 strings (CONTRACT §2), the dead letter's "source key" too: a
    source key that is not UTF-8 (a lone surrogate written as its 3 bytes, stray bytes) must not be
    copied as it is. The messages themselves may be processed or dead-lettered."""
    surrogate_id = one("id", "union", "member.memberNo", ("surrogate", ("\ud800", "end")))
    wtf8 = replace(surrogate_id, key=surrogate_id.key.replace(b"?", b"\xed\xa0\x80"),
                   label=surrogate_id.label + ", its key written with the surrogate's 3 bytes")
    exchange(live, wtf8, one("key", "union", "", "not-utf8"), one("key", "ou", "", "wtf-8"))


def test_tombstones_on_input_topics_are_dead_lettered(live: Live) -> None:
    exchange(live, *(one("tombstone", platform, "", None) for platform in ("union", "ou", "decisions")))


# -- one content per event id --------------------------------------------------------------------


def test_same_id_with_other_content_in_one_batch_keeps_one_and_a_redelivery_changes_nothing(live: Live) -> None:
    pairs = [hostile.Recipe("same_id", p, "", how).build(uid()) for p in ("union", "ou")
             for how in ("other event type", "other course")]
    messages = [m for pair in pairs for m in pair.messages]
    settled = exchange(live, *messages, pairs=[(2 * i, 2 * i + 1) for i in range(len(pairs))])
    # Redeliver every content: the kept ones are duplicates and change nothing.
    kept = [(m, s) for m, s in settled[2:-2] if s.coordinates not in live.observer.dead]
    records = {m.event: dict(live.observer.record_of(m.event)) for m, _ in kept}
    resent = live.observer.send([(m.topic, m.key, m.value) for m, _ in kept])
    wait_until_consumed(live.bridge.settings, live.worker, Progress(), expected=live.bridge.sent)
    time.sleep(2)
    live.observer.refresh(500)
    for (message, _), again in zip(kept, resent):
        assert again.coordinates not in live.observer.dead, f"the redelivered {message.label} was dead-lettered"
        assert live.observer.record_of(message.event) == records[message.event], \
            f"the redelivered {message.label} changed its record"


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_id_with_other_content_keeps_the_same_content_whatever_the_order(backend: str, tmp_path: Path) -> None:
    """Two fresh bridges get the two contents of one event id in opposite orders, each content in
    a batch of its own: both keep the same content, dead-letter the other (``duplicate_event_id``)
    and end with the same records and learners."""
    pair = hostile.Recipe("same_id", "union", "", "other event type").build(uid())
    a, b = pair.messages
    assert a.event == b.event and a.status != b.status
    outcomes = {}
    (tmp_path / "ab").mkdir()
    (tmp_path / "ba").mkdir()
    with backend_database(backend, tmp_path / "ab") as url_ab, backend_database(backend, tmp_path / "ba") as url_ba:
        runs = {"A then B": start(tmp_path / "ab", url_ab), "B then A": start(tmp_path / "ba", url_ba)}
        try:
            for order, run in runs.items():
                run.backend = f"{backend}, {order}"
                first, second = (a, b) if order == "A then B" else (b, a)
                wait_ready(run.port, run.worker)
                sent_first = exchange(run, replace(first, expect="process"), around=False)[0][1]
                sent_second = run.observer.send([(second.topic, second.key, second.value)])[0]
                both = [(first, sent_first), (second, sent_second)]
                run.observer.wait(outcome_check(run.observer, both, [(0, 1)]), BOUND_S, f"[{run.backend}]", run.worker)
                assert_ready(run)
                time.sleep(1)  # anything published late would show in the comparison below
                run.observer.refresh(500)
                dropped = next(m for m, s in both if s.coordinates in run.observer.dead)
                outcomes[order] = {
                    "dead-lettered": "A" if dropped is a else "B",
                    "records": _without_versions(run.observer.records),
                    "learners": _without_versions(run.observer.identities),
                }
        finally:
            for run in runs.values():
                stop(run)
    assert outcomes["A then B"]["dead-lettered"] == outcomes["B then A"]["dead-lettered"], \
        f"which content is kept depends on the order of arrival: {outcomes}"
    assert outcomes["A then B"] == outcomes["B then A"]


def _without_versions(values: dict[str, dict | None]) -> dict[str, dict | None]:
    return {k: (None if v is None else {f: x for f, x in v.items() if f != "version"}) for k, v in values.items()}


# -- a poison that gets past validation ----------------------------------------------------------


def test_database_failing_poison_is_isolated_and_dead_lettered_not_retried_forever(live: Live) -> None:
    """Two valid events that the database refuses with a data error (a trigger, see
    ``install_insert_poison``) in one batch with 300 ordinary ones: the worker splits the failing
    batch, dead-letters the two and commits the rest, well within the bound."""
    ordinary = [hostile.ordinary("union" if n % 2 else "ou", uid()) for n in range(300)]
    poison = [one("db_poison", "union", "", "data"), one("db_poison", "ou", "", "data")]
    started = time.monotonic()
    exchange(live, *ordinary[:100], poison[0], *ordinary[100:250], poison[1], *ordinary[250:])
    print(f"[{live.backend}] 2 data-error poisons in 300 ordinary events settled in {time.monotonic() - started:.1f} s")


def test_constraint_failing_poison_is_isolated_and_dead_lettered_not_retried_forever(live: Live) -> None:
    """A valid event that breaks a database constraint every time (an integrity error, which looks
    like a lost race at first) among 100 ordinary ones: isolated and dead-lettered within the bound."""
    ordinary = [hostile.ordinary("union" if n % 2 else "ou", uid()) for n in range(100)]
    started = time.monotonic()
    exchange(live, *ordinary[:60], one("db_poison", "union", "", "constraint"), *ordinary[60:])
    print(f"[{live.backend}] a constraint poison in 100 ordinary events settled in {time.monotonic() - started:.1f} s")


# -- outputs that would exceed 1 MiB ---------------------------------------------------------------


def _long(seed: str) -> str:
    return hostile.long_text(seed, hostile.MAX_ID_CHARS)


def test_record_growing_past_1_mib_is_held_back_never_blocking_publication(live: Live) -> None:
    """6,000 events of one member and one course, with event ids of 128 characters: the record's
    ``sources`` would pass 1 MiB. It is held back, and records published after it are not."""
    key = uid()
    member = f"GHX-rec-{key}"
    events = [
        encode(union_event(_long(f"hx-rec-{key}-{n}"), "COURSE_ENROLL", member_no=member, course=f"HX-BIG-{key}",
                           mobile=f"139{hostile.next_number() % 10**8:08d}", name="张伟"))
        for n in range(6000)
    ]
    started = time.monotonic()
    mark = len(live.observer.violations)
    live.observer.send([(UNION, member.encode(), value) for value in events])
    same_learner = hostile.from_event("union", union_event(f"hx-rec-after-{key}", "COURSE_ENROLL", member_no=member,
                                                          course=f"HX-OTHER-{key}", name="张伟"), key,
                                      "the same member's next course", "process")
    exchange(live, same_learner, timeout_s=BOUND_S * 2)
    wait_until_consumed(live.bridge.settings, live.worker, Progress(), expected=live.bridge.sent)
    live.observer.refresh(500)
    print(f"[{live.backend}] 6,000 events of one record settled in {time.monotonic() - started:.1f} s; "
          f"largest record {live.observer.largest.get(catalogue.CREDIT_RECORDS.name)} bytes")
    assert_no_violations(live, mark)
    exchange(live)  # and the traffic after it flows


def test_learner_growing_past_1_mib_is_held_back_never_blocking_publication(live: Live) -> None:
    """2,400 accounts of 128 characters that share one valid resident ID (strong evidence: one
    learner, rule 8 does not apply): its identity would pass 1 MiB. It is held back, and learners
    published after it are not."""
    key = uid()
    document = resident_id("110105", "19800101", f"{int(key.split('-')[-1]) % 1000:03d}")
    messages = []
    for n in range(2400):
        member = _long(f"GHX-lrn-{key}-{n}")
        event = union_event(_long(f"hx-lrn-{key}-{n}"), "COURSE_ENROLL", member_no=member, id_card=document,
                            course=f"HX-LRN-{key}", name="张伟", mobile="13800138000")
        messages.append((UNION, member.encode(), encode(event)))
    started = time.monotonic()
    mark = len(live.observer.violations)
    live.observer.send(messages)
    wait_until_consumed(live.bridge.settings, live.worker, Progress(), expected=live.bridge.sent)
    exchange(live, timeout_s=BOUND_S * 2)
    live.observer.refresh(500)
    print(f"[{live.backend}] 2,400 accounts of one learner settled in {time.monotonic() - started:.1f} s; "
          f"largest identity {live.observer.largest.get(catalogue.LEARNER_IDENTITIES.name)} bytes")
    assert_no_violations(live, mark)


# -- identity rule 8 --------------------------------------------------------------------------------


CROWD = 2000


def test_two_thousand_accounts_sharing_a_placeholder_phone_and_a_name_are_no_learner(live: Live) -> None:
    """2,000 accounts without documents, all 王伟 with the placeholder phone 13800000000: no learner
    holds more than BRIDGE_MAX_SHARED_EVIDENCE (10) of them, one review item is raised, and the
    crowd does not slow the bridge down: the last 200 of it, sent in small batches, settle about as
    fast as 200 ordinary events sent the same way."""
    key = uid()
    crowd = [hostile.from_event("union", union_event(f"hx-crowd-{key}-{n}", "COURSE_ENROLL", member_no=f"GHC-{key}-{n}",
                                                     course=f"HX-CROWD-{key}", name="王伟", mobile="13800000000"),
                                f"{key}-{n}", f"crowd account {n}", "process")
             for n in range(CROWD)]
    started = time.monotonic()
    exchange(live, *crowd[:CROWD - 200], timeout_s=BOUND_S * 2)
    bulk_s = time.monotonic() - started
    crowd_tail_s = _trickle(live, crowd[CROWD - 200:])
    ordinary_s = _trickle(live, [hostile.ordinary("union", uid()) for _ in range(200)])
    print(f"[{live.backend}] crowd: {CROWD - 200} accounts in {bulk_s:.1f} s; the last 200, trickled in 20 "
          f"batches, settled {crowd_tail_s:.1f} s after the last send, 200 ordinary ones {ordinary_s:.1f} s")

    accounts = {f"GHC-{key}-{n}" for n in range(CROWD)}
    sizes = sorted(
        (sum(1 for a in learner["accounts"] if a["account"] in accounts), learner_id)
        for learner_id, learner in live.observer.identities.items()
        if learner is not None and learner["merged_into"] is None
    )
    biggest = sizes[-1]
    assert biggest[0] <= 10, f"learner {biggest[1]} holds {biggest[0]} accounts of the crowd by name+mobile alone"
    placed = sum(n for n, _ in sizes)
    assert placed == CROWD, f"{placed} of the {CROWD} crowd accounts belong to a live learner (rule 1: every one does)"
    items = {r["review_id"] for r in live.observer.reviews if r["account"]["account"] in accounts}
    assert len(items) == 1, f"the crowd raised {len(items)} review items; rule 8 says one"
    assert crowd_tail_s <= 3 * ordinary_s + 2, (
        f"200 more accounts of the crowd, in 20 small batches, settled {crowd_tail_s:.1f} s after the last was "
        f"sent, 200 ordinary accounts {ordinary_s:.1f} s: the crowd slows the bridge down"
    )


def _trickle(live: Live, messages: Sequence[hostile.Hostile], per_batch: int = 10, gap_s: float = 0.15) -> float:
    """Send ``messages`` a few at a time (so the worker takes them in many small batches); the
    seconds from the last send until all are settled (the backlog the batches left)."""
    sent: list[Sent] = []
    for n in range(0, len(messages), per_batch):
        chunk = messages[n : n + per_batch]
        sent += live.observer.send([(m.topic, m.key, m.value) for m in chunk])
        time.sleep(gap_s)
    last_sent = time.monotonic()
    live.observer.wait(outcome_check(live.observer, list(zip(messages, sent))), BOUND_S * 2,
                       f"[{live.backend}] {len(messages)} trickled messages", live.worker)
    return time.monotonic() - last_sent


# -- after everything ---------------------------------------------------------------------------


def test_no_message_over_1_mib_on_any_output_topic_and_the_worker_still_works(live: Live) -> None:
    """Read every output topic whole (``Bridge.topic``) after all the cases above."""
    exchange(live)
    live.worker.check_alive()
    problems = []
    for spec in catalogue.OUTPUT_TOPICS:
        for msg in live.bridge.topic(spec):
            size = len(msg.key or b"") + len(msg.value or b"")
            if size > MiB:
                problems.append(f"{spec.name}[{msg.partition}]@{msg.offset}: {size:,} bytes")
            if msg.key is not None:
                try:
                    msg.key.decode("utf-8")
                except UnicodeDecodeError:
                    problems.append(f"{spec.name}[{msg.partition}]@{msg.offset}: a key that is not UTF-8")
    assert not problems, "\n".join(problems[:30])
    assert not live.observer.violations, "\n".join(live.observer.violations[:30])
