"""The transcript view over published values: merges, totals, tolerant parsing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bridge.core.records import CreditRecord, LearnerIdentity, Source, record_id_for
from bridge.tools.transcript import BrokenMergeChain, UnknownLearner, build_transcript, parse_published, resolve_learner

T = datetime(2024, 4, 1, tzinfo=UTC)


def _learner(learner_id: str, merged_into: str | None = None) -> LearnerIdentity:
    return LearnerIdentity(learner_id=learner_id, accounts=[], links=[], merged_into=merged_into, version=1)


def _record(learner_id: str, course: str, status: str, credits: float, completed: datetime | None = T) -> CreditRecord:
    return CreditRecord(
        record_id=record_id_for(learner_id, course),
        learner_id=learner_id,
        course_key=course,
        status=status,
        credits=credits,
        hours=None,
        score=None,
        enrolled_at=None,
        completed_at=completed,
        sources=[Source(platform="ou", account="S1", event_id=f"e-{course}")],
        version=1,
        rule="ou-credits",
    )


def test_a_merged_learner_resolves_to_the_survivor_through_every_hop():
    identities = {"a": _learner("a", "b"), "b": _learner("b", "c"), "c": _learner("c")}
    learner, path = resolve_learner("a", identities)
    assert learner.learner_id == "c" and path == ("a", "b", "c")
    transcript = build_transcript("a", identities, [_record("a", "old", "AWARDED", 9), _record("c", "x", "AWARDED", 1)])
    assert transcript.learner_id == "c" and transcript.was_merged
    assert [r.course_key for r in transcript.records] == ["x"], "the merged learner's retired records stay out"


def test_unknown_learner_and_broken_chains_are_named():
    with pytest.raises(UnknownLearner) as unknown:
        resolve_learner("nobody", {})
    assert unknown.value.learner_id == "nobody"
    with pytest.raises(BrokenMergeChain, match="loops"):
        resolve_learner("a", {"a": _learner("a", "b"), "b": _learner("b", "a")})
    with pytest.raises(BrokenMergeChain, match="not on learner.identities.v1") as missing:
        resolve_learner("a", {"a": _learner("a", "b")})
    assert missing.value.path == ("a", "b")


def test_totals_add_awarded_credits_exactly_and_count_every_status():
    records = [
        _record("a", "c1", "AWARDED", 0.1),
        _record("a", "c2", "AWARDED", 0.2),
        _record("a", "c3", "FAILED", 0),
        _record("a", "c4", "ENROLLED", 0, completed=None),
    ]
    totals = build_transcript("a", {"a": _learner("a")}, records).totals()
    assert totals.awarded_credits == 0.3
    assert totals.awarded_courses == 2
    assert totals.by_status == {"ENROLLED": 1, "AWARDED": 2, "FAILED": 1, "WITHDRAWN": 0}


def test_records_are_ordered_by_completion_then_unfinished_by_course():
    late = _record("a", "late", "AWARDED", 1, completed=datetime(2024, 5, 1, tzinfo=UTC))
    early = _record("a", "early", "FAILED", 0, completed=datetime(2024, 3, 1, tzinfo=UTC))
    open_b = _record("a", "b-open", "ENROLLED", 0, completed=None)
    open_a = _record("a", "a-open", "WITHDRAWN", 0, completed=None)
    transcript = build_transcript("a", {"a": _learner("a")}, [open_b, late, open_a, early])
    assert [r.course_key for r in transcript.records] == ["early", "late", "a-open", "b-open"]


def test_json_form_names_the_request_the_survivor_and_the_totals():
    transcript = build_transcript("a", {"a": _learner("a", "b"), "b": _learner("b")}, [_record("b", "x", "AWARDED", 2)])
    data = transcript.to_json()
    assert data["requested_learner_id"] == "a" and data["learner_id"] == "b"
    assert data["merge_path"] == ["a", "b"]
    assert data["records"][0]["course_key"] == "x"
    assert data["totals"]["awarded_credits"] == 2.0


def test_published_values_with_fields_added_later_still_parse():
    value = _record("a", "x", "AWARDED", 2).model_dump(mode="json") | {"added_later": {"any": 1}}
    assert parse_published(CreditRecord, value).course_key == "x"
