"""Dead letters keep no readable personal data (CONTRACT §2, issue 12): a real worker dead-letters
bad messages holding a resident ID, a Chinese name and a mobile number; the raw bytes of
``bridge.deadletter.v1`` hold none of them in any readable form, and only the dead-letter key
opens the sealed payload back to the exact bytes sent. ``bridge deadletters show``
prints them, given the key."""

from __future__ import annotations

import base64
import hashlib
import json
import contextlib
import io
import os
from unittest import mock

import pytest

from bridge.cli import main as bridge_cli
from bridge.core.sealing import Sealer, SealError
from tests.factories import UNION, encode, resident_id, union_event
from tests.integration.harness import Bridge, open_dead_letter
from topics import catalogue

pytestmark = pytest.mark.integration

#: (key, personal values, message bytes) of each bad message.
ID_1, ID_2 = resident_id(serial="901"), resident_id(serial="902")
NAME_1, NAME_2 = "王秀英", "刘德华"
PHONE_1, PHONE_2 = "13912345678", "13712345679"
UNKNOWN_TYPE = encode(union_event("u-901", "COURSE_TELEPORT", member_no="GH9001", id_card=ID_1, name=NAME_1, mobile=PHONE_1))
BROKEN_JSON = encode(union_event("u-902", member_no="GH9002", id_card=ID_2, name=NAME_2, mobile=PHONE_2))[:-7]
MESSAGES = {b"GH9001": (UNKNOWN_TYPE, (ID_1, NAME_1, PHONE_1)), b"GH9002": (BROKEN_JSON, (ID_2, NAME_2, PHONE_2))}


def readable_forms(value: str) -> list[bytes]:
    """``value`` as a reader of the topic could find it: UTF-8, JSON-escaped, base64 (every alignment)."""
    raw = value.encode("utf-8")
    escaped = json.dumps(value, ensure_ascii=True)[1:-1]
    forms = [raw, escaped.encode("ascii"), escaped.upper().replace("\\U", "\\u").encode("ascii")]
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + raw).decode("ascii").rstrip("=")
        # Drop the characters that depend on the bytes around the value (before and after it).
        core = encoded[(pad * 4 + 2) // 3 : len(encoded) - 2]
        forms += [core.encode("ascii"), core.replace("+", "-").replace("/", "_").encode("ascii")]
    return forms


def test_dead_letters_are_sealed_and_open_only_with_the_key(bridge: Bridge) -> None:
    worker = bridge.start_worker()
    for key, (value, _) in MESSAGES.items():
        assert b"COURSE_TELEPORT" in value or not value.endswith(b"}"), "the message is not bad"
        for needle in MESSAGES[key][1]:
            assert needle.encode() in value, "the bad message does not hold the personal value as text"
        bridge.send(UNION, key, value)
    bridge.settle(worker)

    raw = bridge.topic(catalogue.DEADLETTER)
    assert sorted(m.key for m in raw) == sorted(MESSAGES), "each bad message gives one dead letter"
    for message in raw:
        sent, needles = MESSAGES[message.key]
        published = (message.key or b"") + b"\n" + message.value
        for needle in needles:
            for form in readable_forms(needle):
                assert form not in published, f"{needle!r} is readable on the dead-letter topic as {form!r}"
        assert base64.b64encode(sent) not in published, "the message's base64 is on the dead-letter topic"
        assert base64.urlsafe_b64encode(sent) not in published
        assert sent not in published

        letter = json.loads(message.value)
        assert "payload_base64" not in letter
        assert letter["payload_sha256"] == hashlib.sha256(sent).hexdigest()
        assert letter["payload_bytes"] == len(sent)
        key = bridge.settings.deadletter_key.get_secret_value()
        assert open_dead_letter(letter, Sealer.from_secret(key)) == sent
        assert letter["key_id"] == Sealer.from_secret(key).key_id

        other = "Xq7Lm2Zp9Rw4Tv1Ns8Kb3Hc6Jd0Fg5Ya"
        for stranger in (Sealer.from_secret(other), Sealer.from_secret(other, key_id=letter["key_id"])):
            with pytest.raises(SealError) as refused:
                open_dead_letter(letter, stranger)
            said = str(refused.value)
            assert letter["payload_encrypted"] not in said
            for needle in needles:
                assert needle not in said, "the error repeats the payload"

        assert shown(bridge, letter, key) == sent


def shown(bridge: Bridge, letter: dict, secret: str) -> bytes:
    """The payload ``bridge deadletters show`` prints for ``letter``, given the dead-letter key."""
    where = f"{letter['topic']}:{letter['partition']}:{letter['offset']}"
    env = {**bridge.env(), "BRIDGE_DEADLETTER_KEY": secret}
    out = io.StringIO()
    with mock.patch.dict(os.environ, env, clear=True), contextlib.redirect_stdout(out):
        assert bridge_cli(["deadletters", "show", where]) == 0
    header, _, payload = out.getvalue().partition("--- payload (")
    assert letter["reason"] in header
    kind, _, body = payload.partition("\n")
    body = body.removesuffix("\n")
    return body.encode() if "UTF-8 text" in kind else base64.b64decode(body)
