"""The subscriber commands' printing and argument handling (no broker: see the integration tests)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bridge import cli
from bridge.commands.subscriber import Shown, format_message, format_transcript
from bridge.core.records import AccountRef, CreditRecord, LearnerIdentity, Source, record_id_for
from bridge.errors import EXIT_CONFIG
from bridge.tools.transcript import build_transcript


def _shown(key: bytes | None, value: bytes | None) -> Shown:
    return Shown("credit.records.v1", 3, 17, 1714095000000, key, value)


def test_a_value_is_printed_as_pretty_json_under_its_position_and_key():
    text = format_message(_shown(b"cr_1", json.dumps({"record_id": "cr_1", "course_key": "数字"}).encode()))
    lines = text.splitlines()
    assert lines[0] == "--- credit.records.v1  partition 3  offset 17  2024-04-26T01:30:00Z"
    assert lines[1] == "key: cr_1"
    assert json.loads("\n".join(lines[2:])) == {"record_id": "cr_1", "course_key": "数字"}
    assert '"course_key": "数字"' in text and text.endswith("}\n\n")


def test_a_tombstone_is_unmistakable():
    text = format_message(_shown(b"cr_1", None))
    assert "TOMBSTONE (null value): key cr_1 is deleted" in text


def test_bytes_that_are_not_json_are_shown_not_crashed_on():
    text = format_message(Shown("union.training.events.v1", 0, 1, None, None, b"\xff\xfe{"))
    assert "key: (none)" in text and "not UTF-8 JSON (3 bytes)" in text
    assert "offset 1\n" in text, "no timestamp is printed when the broker gave none"


def test_transcript_table_shows_merge_records_and_totals():
    def record(course: str, status: str, credits: float, score: float | None) -> CreditRecord:
        return CreditRecord(
            record_id=record_id_for("lrn_b", course), learner_id="lrn_b", course_key=course, status=status,
            credits=credits, hours=None, score=score, enrolled_at=None,
            completed_at=datetime(2024, 4, 26, 1, 30, tzinfo=UTC) if status != "ENROLLED" else None,
            sources=[Source(platform="union", account="GH1", event_id="u-1"), Source(platform="union", account="GH1", event_id="u-2"),
                     Source(platform="ou", account="S1", event_id="o-1")],
            version=1, rule="hours/16",
        )
    identities = {
        "lrn_a": LearnerIdentity(learner_id="lrn_a", accounts=[], links=[], merged_into="lrn_b", version=2),
        "lrn_b": LearnerIdentity(
            learner_id="lrn_b", accounts=[AccountRef(platform="ou", account="S1"), AccountRef(platform="union", account="GH1")],
            links=[], merged_into=None, version=3,
        ),
    }
    transcript = build_transcript("lrn_a", identities, [record("union:C1", "AWARDED", 1.5, 86.5), record("ou:C2", "ENROLLED", 0, None)])
    text = format_transcript(transcript)
    assert text.startswith("lrn_a was merged into lrn_b: showing lrn_b.\nLearner lrn_b (accounts: ou S1, union GH1)")
    header = next(line for line in text.splitlines() if line.startswith("course_key"))
    assert header.split() == ["course_key", "status", "credits", "score", "completed_at", "sources"]
    row = next(line for line in text.splitlines() if line.startswith("union:C1"))
    assert row.split(maxsplit=5) == ["union:C1", "AWARDED", "1.5", "86.5", "2024-04-26T01:30:00Z", "union:GH1, ou:S1"]
    assert "Awarded: 1.5 credits in 1 course (1 enrolled, 0 failed, 0 withdrawn)" in text


def test_commands_without_a_broker_say_which_setting_to_set(monkeypatch, capsys):
    monkeypatch.delenv("BRIDGE_BROKER_URL", raising=False)
    for argv in (["tail", "credit.records.v1"], ["transcript", "lrn_x"], ["export", "lrn_x", "--format", "clr"]):
        assert cli.main(argv) == EXIT_CONFIG
        assert "BRIDGE_BROKER_URL" in capsys.readouterr().err


def test_tail_names_the_known_topics_for_an_unknown_one(monkeypatch, capsys):
    monkeypatch.setenv("BRIDGE_BROKER_URL", "kafka://127.0.0.1:1")
    assert cli.main(["tail", "credit.records.v2"]) == 2
    assert "credit.records.v1" in capsys.readouterr().err


def test_export_refuses_an_issuer_that_is_not_a_url(monkeypatch, capsys):
    monkeypatch.setenv("BRIDGE_BROKER_URL", "kafka://127.0.0.1:1")
    assert cli.main(["export", "lrn_x", "--format", "xapi", "--issuer-url", "example.org"]) == 2
    assert "http(s) URL" in capsys.readouterr().err


def test_limit_must_be_positive(capsys):
    with pytest.raises(SystemExit):
        cli.main(["tail", "credit.records.v1", "--limit", "0"])
    assert "at least 1" in capsys.readouterr().err
