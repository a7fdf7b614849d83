"""``bridge backfill`` (issue 15, CONTRACT §5) against a real worker, broker and database.

The platforms' history loaded from files while the live stream runs ends exactly where the plain
stream ends (records and identities, versions included); a second run changes nothing; an
interrupted run continues from its checkpoint; bad lines are dead-lettered with file and line.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
from pathlib import Path

from unittest import mock

import pytest

from bridge.tools import backfill as backfill_module
from bridge.tools.backfill import Checkpoint, topic_of
from bridge.cli import main as bridge_cli
from bridge.tools.topicio import compacted
from tests.integration.harness import Bridge
from tests.integration.test_faults import (  # noqa: F401 - fixtures
    assert_versions_consistent,
    final_state,
    make_bridge,
    reference,
    traffic,
)
from topics import catalogue

pytestmark = pytest.mark.integration


def _split(tmp_path: Path) -> tuple[list, list[Path]]:
    """Every other message for the live stream; the rest in export files: one each for the union
    and the open university (gzip-compressed), each with a malformed line, and a file of every
    platform (all of the other platforms' lines) with a line of none."""
    messages, _ = traffic()
    live = messages[1::2]
    history = messages[0::2]
    union = tmp_path / "union-history.jsonl"
    ou = tmp_path / "ou-history.jsonl.gz"
    mixed = tmp_path / "mixed.jsonl"
    union_lines = [m.value for m in history if m.topic == catalogue.UNION_EVENTS.name]
    ou_lines = [m.value for m in history if m.topic == catalogue.OU_EVENTS.name]
    others = [m.value for m in history if m.topic not in (catalogue.UNION_EVENTS.name, catalogue.OU_EVENTS.name)]
    assert others  # the vocational platform's
    mixed.write_bytes(b"\n".join([union_lines.pop(), b"not json at all", ou_lines.pop(), *others]) + b"\n")
    union.write_bytes(b"\n".join(union_lines[:10] + [b'{"not": "an event"}'] + union_lines[10:]) + b"\n")
    with gzip.open(ou, "wb") as out:
        out.write(b"\n".join(ou_lines[:5] + [b"\xff\xfe not json"] + ou_lines[5:]) + b"\n\n")
    return live, [union, ou, mixed]


def _backfill(bridge: Bridge, *argv: str) -> tuple[int, str]:
    """``bridge backfill ARGV`` in this process, with the settings of the bridge's workers."""
    err = io.StringIO()
    with mock.patch.dict(os.environ, bridge.env(), clear=True), contextlib.redirect_stderr(err):
        code = bridge_cli(["backfill", *argv])
    return code, err.getvalue()


def _live_bytes(bridge: Bridge) -> dict[str, dict[bytes, bytes]]:
    """The current value of every live key of the compacted topics, as published (bytes)."""
    live = {}
    for spec in (catalogue.CREDIT_RECORDS, catalogue.LEARNER_IDENTITIES):
        values = {k: v for k, v in compacted(bridge.topic(spec)).items() if v is not None}
        if spec is catalogue.LEARNER_IDENTITIES:  # merged-away learners are redirects, kept in any order
            values = {k: v for k, v in values.items() if json.loads(v)["merged_into"] is None}
        live[spec.name] = values
    return live


def _outputs(bridge: Bridge) -> tuple[dict, dict]:
    return bridge.latest(catalogue.CREDIT_RECORDS), bridge.latest(catalogue.LEARNER_IDENTITIES)


def test_backfill_beside_the_live_stream_ends_as_the_plain_stream(make_bridge, reference, tmp_path) -> None:
    live, files = _split(tmp_path)
    bridge = make_bridge("backfill")
    bridge.start_worker()
    for msg in live:
        bridge.send(msg.topic, msg.key, msg.value)
    bridge.flush()
    state = tmp_path / "state"
    code, err = _backfill(bridge, *map(str, files), "--state-dir", str(state), "--batch-size", "300")
    assert code == 0, err
    assert "== backfill summary ==" in err
    bridge.settle()
    assert final_state(bridge) == reference
    assert_versions_consistent(bridge)
    # Byte for byte: the live values on the compacted topics are those of the plain stream.
    plain = make_bridge("plain", f"sqlite:///{tmp_path / 'plain.db'}")  # outputs do not depend on the backend
    for msg in traffic()[0]:
        plain.send(msg.topic, msg.key, msg.value)
    plain.start_worker()
    plain.settle()
    assert _live_bytes(bridge) == _live_bytes(plain)

    # The bad lines: dead-lettered with their file and line number, nothing readable.
    letters = {(d["source_file"], d["offset"]): d for d in bridge.dead_letters() if d.get("source_file")}
    union_letter = letters[("union-history.jsonl", 11)]
    assert union_letter["reason_code"] == "missing_field" and union_letter["partition"] == -1
    assert union_letter["topic"] == catalogue.UNION_EVENTS.name
    assert letters[("ou-history.jsonl.gz", 6)]["topic"] == catalogue.OU_EVENTS.name
    assert letters[("ou-history.jsonl.gz", 6)]["reason_code"] == "not_utf8"
    assert letters[("mixed.jsonl", 2)]["reason_code"] == "unknown_platform"
    assert all(letter["payload_encrypted"] for letter in letters.values())

    # A second run skips what its checkpoints say is loaded; without them it reloads and changes nothing.
    before = _outputs(bridge)
    code, err = _backfill(bridge, *map(str, files), "--state-dir", str(state))
    assert code == 0 and "already loaded before" in err and " 0 lines" in err, err
    code, err = _backfill(bridge, *map(str, files), "--state-dir", str(tmp_path / "fresh-state"))
    assert code == 0, err
    bridge.settle()
    assert _outputs(bridge) == before
    assert final_state(bridge) == reference


def test_an_interrupted_backfill_continues_from_its_checkpoint(make_bridge, reference, tmp_path, monkeypatch) -> None:
    messages, _ = traffic()
    path = tmp_path / "all.jsonl"
    path.write_bytes(b"\n".join(m.value for m in messages) + b"\n")
    bridge = make_bridge("resume")
    state = tmp_path / "state"
    commits = 0
    original = backfill_module.Backfill._commit

    async def failing(self, batch, summary, checkpoint):
        nonlocal commits
        commits += 1
        if commits == 4:
            raise KeyboardInterrupt  # the operator pressed Ctrl-C during the fourth batch
        await original(self, batch, summary, checkpoint)

    monkeypatch.setattr(backfill_module.Backfill, "_commit", failing)
    code, _err = _backfill(bridge, str(path), "--state-dir", str(state), "--batch-size", "250")
    assert code == 130
    assert Checkpoint(state, path).load().line == 750
    monkeypatch.setattr(backfill_module.Backfill, "_commit", original)

    code, err = _backfill(bridge, str(path), "--state-dir", str(state), "--batch-size", "250")
    assert code == 0, err
    assert "750 already loaded before" in err and f"{len(messages) - 750:,} lines" in err
    bridge.start_worker()  # nothing on the input topics: the worker only publishes what is queued
    bridge.settle()
    assert final_state(bridge) == reference


def test_the_platform_of_a_line_is_told_from_its_content() -> None:
    messages, _ = traffic()
    for msg in messages[:200]:
        expected = msg.topic if _is_object(msg.value) else None
        assert topic_of(msg.value) in (expected, None)
    assert topic_of(b'{"msgId": "u-1"}') == catalogue.UNION_EVENTS.name
    assert topic_of(b'{"event_id": "o-1"}') == catalogue.OU_EVENTS.name
    assert topic_of(b'{"msgId": "u-1", "event_id": "o-1"}') is None
    assert topic_of(b"[1, 2]") is None and topic_of(b"\xff") is None and topic_of(b"[" * 100_000) is None
    assert topic_of(b'{"msgId": "' + b"x" * 1_048_577 + b'"}') is None


def _is_object(value: bytes) -> bool:
    try:
        return isinstance(json.loads(value), dict)
    except ValueError:
        return False
