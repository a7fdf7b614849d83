"""``bridge deadletters list|show|replay`` against a real worker, broker and database (both backends).

``list`` filters the dead letters and never prints a payload; ``show`` opens one with the dead-letter
key (or a retired one) and says clearly which setting to fix when it cannot; ``replay`` re-drives
``unprocessable`` dead letters once their cause (a database trigger) is gone, giving the records and
identities of an uninterrupted run, and replaying again changes nothing. A malformed message
replayed is dead-lettered again.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from unittest import mock

import pytest
from sqlalchemy import text

from bridge.cli import main as bridge_main
from bridge.core.records import learner_id_for, record_id_for
from bridge.settings import DEVELOPMENT_DEADLETTER_KEY
from tests.factories import BEIJING, OU, UNION, encode, ou_event, resident_id, union_event
from tests.hostile import DB_POISON_PREFIX
from tests.integration.harness import Bridge, install_insert_poison, kafka_security_env
from topics import catalogue

pytestmark = pytest.mark.integration

T0 = datetime(2024, 4, 1, 9, 0, tzinfo=BEIJING)
ID_1, NAME_1, PHONE_1 = resident_id(serial="931"), "王秀英", "13912345678"
#: A union event cut short: not JSON, and holding a resident ID, a name and a mobile as text.
BROKEN = encode(union_event("u-dl-1", member_no="GHD1", id_card=ID_1, name=NAME_1, mobile=PHONE_1))[:-7]
UNKNOWN_TYPE = encode(union_event("u-dl-2", "COURSE_TELEPORT", member_no="GHD2"))
#: Not JSON and larger than a dead letter carries (about 700 KB).
TOO_LARGE = b'{"event_id": "' + b"y" * 750_000
OTHER_KEY = "Xq7Lm2Zp9Rw4Tv1Ns8Kb3Hc6Jd0Fg5Ya"


def run(bridge: Bridge, *argv: str, **env: str) -> tuple[int, str, str]:
    """``bridge ARGV`` in-process against ``bridge``'s broker, with ``env`` (``BRIDGE_*``) added."""
    out, err = io.StringIO(), io.StringIO()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    clean.update(BRIDGE_BROKER_URL=bridge.settings.broker_url or "", **kafka_security_env(bridge.settings), **env)
    with mock.patch.dict(os.environ, clean, clear=True):
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = bridge_main(list(argv))
    return code, out.getvalue(), err.getvalue()


def coordinates(letter: dict) -> str:
    return f"{letter['topic']}:{letter['partition']}:{letter['offset']}"


def where(letter: dict) -> str:
    return f"{letter['topic']}[{letter['partition']}]@{letter['offset']}"


def listed(out: str) -> set[str]:
    """The source coordinates of the dead letters ``list`` printed (the last line is the count)."""
    return {line.split()[1] for line in out.splitlines()[:-1]}


def letter_of(bridge: Bridge, value: bytes) -> dict:
    (letter,) = [d for d in bridge.dead_letters() if d["payload_sha256"] == hashlib.sha256(value).hexdigest()]
    return letter


def test_list_filters_and_show_opens_with_the_key_or_says_which_setting(bridge: Bridge) -> None:
    bridge.send(UNION, "GHD0", encode(union_event("u-dl-0", member_no="GHD0")))
    bridge.send(UNION, "GHD1", BROKEN)
    bridge.send(UNION, "GHD2", UNKNOWN_TYPE)
    bridge.send(OU, "SD3", TOO_LARGE)
    bridge.start_worker()
    bridge.settle()
    broken, unknown, large = (letter_of(bridge, v) for v in (BROKEN, UNKNOWN_TYPE, TOO_LARGE))
    assert large["payload_encrypted"] is None, "the test's large message was carried"
    secrets = [ID_1, NAME_1, PHONE_1, "y" * 50] + [d["payload_encrypted"] for d in (broken, unknown)]

    code, out, err = run(bridge, "deadletters", "list")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 4, out
    for letter, carried in ((broken, "sealed"), (unknown, "sealed"), (large, "not-carried")):
        (line,) = [l for l in lines if where(letter) in l]
        assert letter["reason_code"] in line and f"{letter['payload_bytes']} B" in line and line.endswith(carried)
    assert lines[-1].startswith("3 dead letters: ")
    assert not [s for s in secrets if s in out + err], "list printed a payload"

    letters = (broken, unknown, large)
    for codes in ([broken["reason_code"]], [unknown["reason_code"]], [broken["reason_code"], unknown["reason_code"]]):
        code, out, _ = run(bridge, "deadletters", "list", *(f"--reason-code={c}" for c in codes))
        assert code == 0 and listed(out) == {where(d) for d in letters if d["reason_code"] in codes}, out
    code, out, _ = run(bridge, "deadletters", "list", "--topic", OU)
    assert code == 0 and listed(out) == {where(large)}, out
    assert out.splitlines()[-1] == f"1 dead letter: {large['reason_code']} 1"
    now = datetime.now(BEIJING)
    for option, moment, count in (("--since", now + timedelta(hours=1), 0), ("--until", now - timedelta(hours=1), 0),
                                  ("--since", now - timedelta(hours=1), 3)):
        code, out, _ = run(bridge, "deadletters", "list", option, moment.isoformat())
        assert code == 0 and out.splitlines()[-1].startswith(f"{count} dead letter"), (option, out)
    code, out, err = run(bridge, "deadletters", "list", "--json", "--reason-code", unknown["reason_code"])
    (shown,) = [json.loads(line) for line in out.splitlines()]
    assert (shown["topic"], shown["offset"], shown["payload_carried"]) == (UNION, unknown["offset"], True)
    assert "payload_encrypted" not in shown and shown["payload_sha256"] == unknown["payload_sha256"]
    assert err.startswith("1 dead letter")

    code, out, err = run(bridge, "deadletters", "show", coordinates(broken))
    assert code == 0, err
    assert broken["reason"] in out and BROKEN.decode() in out
    # A rotation: the current key is new, the key that sealed the payload is retired.
    code, out, err = run(bridge, "deadletters", "show", coordinates(broken), BRIDGE_DEADLETTER_KEY=OTHER_KEY,
                         BRIDGE_DEADLETTER_PREVIOUS_KEYS=json.dumps([DEVELOPMENT_DEADLETTER_KEY]))
    assert code == 0 and BROKEN.decode() in out, err

    code, out, err = run(bridge, "deadletters", "show", coordinates(broken), BRIDGE_DEADLETTER_KEY=OTHER_KEY)
    assert code == 2 and broken["reason"] in out
    assert len(err.splitlines()) == 1 and "BRIDGE_DEADLETTER_KEY" in err and broken["key_id"] in err, err
    assert not [s for s in secrets if s in out + err], "a refused show printed the payload"

    code, out, err = run(bridge, "deadletters", "show", coordinates(large))
    assert code == 2 and large["reason"] in out and large["payload_sha256"] in out
    assert len(err.splitlines()) == 1 and "carries no payload" in err and str(large["offset"]) in err, err
    code, _, err = run(bridge, "deadletters", "show", f"{UNION}:0:999999")
    assert code == 2 and "no dead letter" in err


def union_complete(msg_id: str, member: str, **kw) -> bytes:
    when = T0 + timedelta(days=2)
    return encode(union_event(msg_id, "COURSE_COMPLETE", member_no=member, passed=True, score=90, when=when, **kw))


RID = resident_id(serial="932")
#: Processed before the poison trigger is installed.
FIRST = [
    (UNION, "GHR1", encode(union_event("u-r-1", member_no="GHR1", id_card=RID, name=None, mobile=None, when=T0))),
    (OU, "SO1", encode(ou_event("o-r-1", student_no="SO1", name=None, phone=None))),
]
#: Valid, but the two events with the poison prefix fail in the database while the trigger is there.
POISONED = [
    (UNION, "GHR1", union_complete(f"{DB_POISON_PREFIX}u-r-2", "GHR1", id_card=RID, name=None, mobile=None)),
    (OU, "SR1", encode(ou_event(f"{DB_POISON_PREFIX}o-r-2", student_no="SR1", document=("RESIDENT_ID", RID),
                                name=None, phone=None, course="NOU-07777"))),
    (UNION, "GHR3", encode(union_event("u-r-3", member_no="GHR3", name=None, mobile=None))),
    (UNION, "GHR4", b'{"msgId": "u-r-4", "member": '),
]
MALFORMED = POISONED[-1][2]


def feed(bridge: Bridge, messages: list[tuple[str, str, bytes]]) -> None:
    for topic, key, value in messages:
        bridge.send(topic, key, value)
    bridge.settle()


def drop_poison(bridge: Bridge) -> None:
    on = " ON credit_facts" if bridge.engine.dialect.name == "postgresql" else ""
    with bridge.engine.begin() as conn:
        conn.execute(text(f"DROP TRIGGER IF EXISTS hostile_data_poison{on}"))


def replay(bridge: Bridge, *argv: str, resent: int) -> str:
    code, out, err = run(bridge, "deadletters", "replay", *argv)
    assert code == 0, out + err
    assert f"re-sent {resent} of {resent} selected" in out, out
    bridge.sent += resent
    bridge.settle()
    return out


def output_messages(bridge: Bridge) -> dict[str, list[tuple[bytes | None, bytes | None]]]:
    return {spec.name: [(m.key, m.value) for m in bridge.topic(spec)]
            for spec in (catalogue.CREDIT_RECORDS, catalogue.LEARNER_IDENTITIES)}


def test_replay_after_a_fix_processes_the_events_once_and_a_malformed_message_fails_again(
    bridge: Bridge, tmp_path: Path
) -> None:
    reference_dir = tmp_path / "reference"
    reference_dir.mkdir()
    reference = Bridge(reference_dir, f"sqlite:///{reference_dir / 'bridge.db'}")
    try:
        reference.start_worker()
        feed(reference, FIRST)
        feed(reference, POISONED)
        expected = (reference.records(), reference.identities())
    finally:
        reference.close()

    bridge.start_worker()
    feed(bridge, FIRST)
    install_insert_poison(bridge.engine, DB_POISON_PREFIX)
    feed(bridge, POISONED)
    codes = sorted(d["reason_code"] for d in bridge.dead_letters())
    assert codes.count("unprocessable") == 2 and len(codes) == 3, codes
    learner = learner_id_for("union", "GHR1")
    record = record_id_for(learner, "union:ACFTU-SK-0012")
    assert bridge.records()[record]["status"] == "ENROLLED", "the poisoned completion was processed"
    assert {"platform": "ou", "account": "SR1"} not in bridge.identities()[learner]["accounts"]

    code, out, err = run(bridge, "deadletters", "replay", "--reason-code", "unprocessable", "--dry-run")
    assert code == 0 and "would re-send 2 of 2" in out, out + err
    drop_poison(bridge)  # the fix
    out = replay(bridge, "--reason-code", "unprocessable", resent=2)
    assert "could not re-send 0" in out
    assert bridge.records()[record]["status"] == "AWARDED"
    assert {"platform": "ou", "account": "SR1"} in bridge.identities()[learner]["accounts"]
    assert (bridge.records(), bridge.identities()) == expected, "the replay did not give an uninterrupted run's outputs"
    assert sorted(d["reason_code"] for d in bridge.dead_letters()) == codes, "a replayed event was dead-lettered"

    before = output_messages(bridge)
    replay(bridge, "--reason-code", "unprocessable", resent=2)
    assert output_messages(bridge) == before, "replaying the same selection again changed the output topics"
    assert sorted(d["reason_code"] for d in bridge.dead_letters()) == codes

    malformed = letter_of(bridge, MALFORMED)
    out = replay(bridge, coordinates(malformed), resent=1)
    assert f"re-sent {coordinates(malformed)} as {UNION}:" in out
    again = [d for d in bridge.dead_letters() if d["payload_sha256"] == malformed["payload_sha256"]]
    assert len(again) == 2, "the replayed malformed message was not dead-lettered again"
    (new,) = [d for d in again if d["offset"] != malformed["offset"]]
    # The same partition: it went back with its key.
    assert (new["topic"], new["partition"]) == (UNION, malformed["partition"])
    assert new["reason_code"] == malformed["reason_code"]
    assert (bridge.records(), bridge.identities()) == expected
