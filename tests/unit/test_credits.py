"""Credit rules (CONTRACT §4) against the pure derivation: facts in, one record state out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.core.credits import CreditFact, RecordState, credit_value, derive_record, union_credits
from bridge.core.events import EventKind, Platform
from bridge.core.records import CreditStatus, Source, record_id_for

T0 = datetime(2024, 4, 1, 1, 0, tzinfo=UTC)
LEARNER = "lrn_test"
COURSE = "digital-skills"
H = 16.0


def at(day: int) -> datetime:
    return T0 + timedelta(days=day)


def union(
    event_id: str,
    kind: EventKind,
    day: int = 0,
    *,
    hours: float = 24,
    passed: bool | None = None,
    score: float | None = None,
    account: str = "GH1",
    course_id: str = "ACFTU-SK-0012",
) -> CreditFact:
    return CreditFact(
        platform="union",
        account=account,
        event_id=event_id,
        kind=kind,
        occurred_at=at(day),
        course_id=course_id,
        hours=hours,
        passed=passed,
        score=score,
    )


def ou(
    event_id: str,
    kind: EventKind,
    day: int = 0,
    *,
    credits: float = 2.0,
    hours: float | None = 36,
    passed: bool | None = None,
    score: float | None = None,
    account: str = "S1",
    course_id: str = "NOU-08123",
) -> CreditFact:
    return CreditFact(
        platform="ou",
        account=account,
        event_id=event_id,
        kind=kind,
        occurred_at=at(day),
        course_id=course_id,
        hours=hours,
        platform_credits=credits,
        passed=passed,
        score=score,
    )


def derive(*facts: CreditFact, hours_per_credit: float = H):
    return derive_record(LEARNER, COURSE, facts, hours_per_credit)


E, C, W = EventKind.ENROLLED, EventKind.COMPLETED, EventKind.WITHDRAWN


# -- rule 2: union hours to credits ------------------------------------------------------------


@pytest.mark.parametrize(
    ("hours", "expected"),
    [(24, 1.5), (31, 1.5), (32, 2.0), (7, 0.0), (8, 0.5), (16, 1.0), (0, 0.0), (23.99, 1.0), (200, 12.5)],
)
def test_union_credits_round_down_to_half_credits(hours: float, expected: float) -> None:
    assert union_credits(hours, 16) == expected


@pytest.mark.parametrize(
    ("hours", "hours_per_credit", "expected"),
    [(24, 10, 2.0), (25, 10, 2.5), (24, 12, 2.0), (36, 18, 2.0), (35.9, 18, 1.5), (30, 12.5, 2.0), (0.3, 0.1, 3.0)],
)
def test_union_credits_use_the_configured_hours_per_credit(
    hours: float, hours_per_credit: float, expected: float
) -> None:
    assert union_credits(hours, hours_per_credit) == expected


def test_union_pass_is_worth_hours_over_h_with_its_rule() -> None:
    state = derive(union("u1", C, hours=24, passed=True))
    assert (state.status, state.credits, state.rule, state.hours) == (CreditStatus.AWARDED, 1.5, "hours/16", 24)


@pytest.mark.parametrize(("hours", "expected"), [(31, 1.5), (32, 2.0), (7, 0.0)])
def test_union_pass_rounds_down(hours: float, expected: float) -> None:
    state = derive(union("u1", C, hours=hours, passed=True))
    assert state.status is CreditStatus.AWARDED
    assert state.credits == expected


@pytest.mark.parametrize(("hours_per_credit", "credits", "rule"), [(10, 2.0, "hours/10"), (12.5, 1.5, "hours/12.5"), (20.0, 1.0, "hours/20")])
def test_custom_hours_per_credit_shows_in_credits_and_rule(hours_per_credit: float, credits: float, rule: str) -> None:
    state = derive(union("u1", C, hours=24, passed=True), hours_per_credit=hours_per_credit)
    assert (state.credits, state.rule) == (credits, rule)


# -- rule 1: open-university credits ----------------------------------------------------------


@pytest.mark.parametrize("credits", [0.5, 2.0, 3.0, 4.5])
def test_ou_pass_is_worth_the_course_credits(credits: float) -> None:
    state = derive(ou("o1", C, credits=credits, hours=1000, passed=True))
    assert (state.status, state.credits, state.rule) == (CreditStatus.AWARDED, credits, "course_credits")


def test_credit_value_of_each_platform() -> None:
    assert credit_value(ou("o1", C, credits=3.0, passed=True), 16) == (3.0, "course_credits")
    assert credit_value(union("u1", C, hours=40, passed=True), 16) == (2.5, "hours/16")


# -- rule 3: failure, and a later pass --------------------------------------------------------


def test_failed_completion_is_failed_with_no_credits() -> None:
    state = derive(union("u1", E, 0), union("u2", C, 5, passed=False, score=40))
    assert (state.status, state.credits, state.rule) == (CreditStatus.FAILED, 0.0, "failed")
    assert state.score == 40
    assert state.completed_at == at(5)


def test_ou_failure_is_failed_too() -> None:
    state = derive(ou("o1", C, 3, passed=False, score=30))
    assert (state.status, state.credits, state.rule) == (CreditStatus.FAILED, 0.0, "failed")


def test_failed_then_passed_is_awarded() -> None:
    state = derive(union("u1", C, 1, passed=False, score=50), union("u2", C, 9, passed=True, score=70))
    assert (state.status, state.credits, state.rule) == (CreditStatus.AWARDED, 1.5, "hours/16")
    assert state.completed_at == at(9)
    assert state.score == 70


def test_a_failure_after_a_pass_does_not_take_the_award_away() -> None:
    state = derive(ou("o1", C, 1, passed=True, score=80), ou("o2", C, 9, passed=False, score=20))
    assert state.status is CreditStatus.AWARDED
    assert state.credits == 2.0
    assert state.completed_at == at(1)


# -- rule 4: enrolment, withdrawal, completion without enrolment -----------------------------


def test_enrolment_only_is_enrolled() -> None:
    state = derive(union("u1", E, 2))
    assert (state.status, state.credits, state.rule) == (CreditStatus.ENROLLED, 0.0, "not_completed")
    assert state.enrolled_at == at(2)
    assert state.completed_at is None
    assert state.score is None


def test_completion_without_enrolment_is_awarded_with_no_enrolment_time() -> None:
    state = derive(union("u1", C, 4, passed=True, score=90))
    assert state.status is CreditStatus.AWARDED
    assert state.enrolled_at is None
    assert state.completed_at == at(4)
    assert state.score == 90


def test_completion_before_its_enrolment_is_still_awarded() -> None:
    state = derive(ou("o2", C, 1, passed=True), ou("o1", E, 3))
    assert state.status is CreditStatus.AWARDED
    assert (state.enrolled_at, state.completed_at) == (at(3), at(1))


def test_withdrawal_after_enrolment_is_withdrawn() -> None:
    state = derive(union("u1", E, 0), union("u2", W, 3))
    assert (state.status, state.credits, state.rule) == (CreditStatus.WITHDRAWN, 0.0, "not_completed")
    assert state.enrolled_at == at(0)


def test_cancellation_without_enrolment_is_withdrawn() -> None:
    assert derive(ou("o1", W, 3)).status is CreditStatus.WITHDRAWN


def test_re_enrolment_after_withdrawal_is_enrolled() -> None:
    state = derive(union("u1", E, 0), union("u2", W, 3), union("u3", E, 6))
    assert state.status is CreditStatus.ENROLLED
    # The record keeps the first enrolment as its start.
    assert state.enrolled_at == at(0)


def test_withdrawal_after_re_enrolment_is_withdrawn_again() -> None:
    state = derive(union("u1", E, 0), union("u2", W, 3), union("u3", E, 6), union("u4", W, 8))
    assert state.status is CreditStatus.WITHDRAWN


def test_a_late_arriving_old_withdrawal_does_not_undo_a_newer_enrolment() -> None:
    # The withdrawal happened first, whatever order the facts are handed over in.
    state = derive(union("u3", E, 6), union("u2", W, 3))
    assert state.status is CreditStatus.ENROLLED


def test_failure_after_withdrawal_is_failed() -> None:
    state = derive(union("u1", E, 0), union("u2", W, 2), union("u3", C, 5, passed=False))
    assert state.status is CreditStatus.FAILED


# -- rule 5: awarded survives a withdrawal, best score ----------------------------------------


def test_awarded_survives_a_later_withdrawal() -> None:
    state = derive(union("u1", E, 0), union("u2", C, 5, passed=True, score=88), union("u3", W, 9))
    assert (state.status, state.credits, state.score) == (CreditStatus.AWARDED, 1.5, 88)


def test_a_repeated_pass_keeps_the_best_score() -> None:
    for order in ((1, 2, 3), (3, 2, 1), (2, 3, 1)):
        scores = {1: 72, 2: 95, 3: 81}
        facts = [ou(f"o{i}", C, i, passed=True, score=scores[i]) for i in order]
        state = derive(*facts)
        assert state.score == 95
        assert state.completed_at == at(1)


def test_best_score_ignores_missing_scores() -> None:
    state = derive(union("u1", C, 1, passed=True, score=None), union("u2", C, 2, passed=True, score=61))
    assert state.score == 61


# -- rule 6: equivalent courses on both platforms ---------------------------------------------


def test_equivalent_passes_give_the_larger_value_and_both_sources() -> None:
    union_pass = union("u1", C, 1, hours=24, passed=True, score=70)  # 1.5 credits
    ou_pass = ou("o1", C, 2, credits=2.0, hours=36, passed=True, score=90)
    state = derive(union_pass, ou_pass)
    assert (state.status, state.credits, state.rule) == (CreditStatus.AWARDED, 2.0, "course_credits")
    assert state.hours == 36
    assert state.score == 90
    assert state.sources == (
        Source(platform="ou", account="S1", event_id="o1"),
        Source(platform="union", account="GH1", event_id="u1"),
    )


def test_equivalent_passes_where_the_union_course_is_worth_more() -> None:
    union_pass = union("u1", C, 1, hours=48, passed=True)  # 3.0 credits
    ou_pass = ou("o1", C, 2, credits=2.0, passed=True)
    state = derive(ou_pass, union_pass)
    assert (state.credits, state.rule, state.hours) == (3.0, "hours/16", 48)
    assert {s.platform for s in state.sources} == {"union", "ou"}


def test_an_ou_failure_beside_a_union_pass_is_awarded_at_the_union_value() -> None:
    state = derive(union("u1", C, 1, hours=24, passed=True), ou("o1", C, 2, credits=4.0, passed=False))
    assert (state.status, state.credits, state.rule) == (CreditStatus.AWARDED, 1.5, "hours/16")
    assert len(state.sources) == 2


# -- record identity and the derivation's contract --------------------------------------------


def test_record_id_is_deterministic_from_learner_and_course() -> None:
    state = derive(union("u1", E))
    assert state.record_id == record_id_for(LEARNER, COURSE)
    assert state.record_id == derive_record(LEARNER, COURSE, [union("other", C, 3, passed=True)], H).record_id
    assert state.record_id != derive_record(LEARNER, "other-course", [union("u1", E)], H).record_id
    assert state.record_id != derive_record("lrn_other", COURSE, [union("u1", E)], H).record_id


def test_to_record_carries_the_version_and_every_field() -> None:
    state = derive(union("u1", E, 0), union("u2", C, 3, passed=True, score=77))
    record = state.to_record(4)
    assert record.version == 4
    assert record.record_id == state.record_id
    assert (record.learner_id, record.course_key, record.status, record.credits) == (
        LEARNER, COURSE, CreditStatus.AWARDED, 1.5,
    )
    assert record.sources == list(state.sources)
    assert record.rule == "hours/16"


def test_no_facts_is_an_error() -> None:
    with pytest.raises(ValueError):
        derive_record(LEARNER, COURSE, [], H)


def test_a_duplicated_fact_changes_nothing() -> None:
    once = derive(union("u1", E, 0), union("u2", C, 3, passed=True))
    twice = derive(union("u1", E, 0), union("u2", C, 3, passed=True), union("u2", C, 3, passed=True))
    assert once == twice
    assert len(twice.sources) == 2


# -- order independence (rule 7 and CONTRACT §3.5) --------------------------------------------

_KINDS = st.sampled_from([E, C, W])


@st.composite
def fact_sets(draw: st.DrawFn) -> list[CreditFact]:
    """Facts of one (learner, course) with unique event ids, on either platform, any kinds."""
    n = draw(st.integers(min_value=1, max_value=8))
    facts = []
    for i in range(n):
        platform = draw(st.sampled_from(["union", "ou"]))
        kind = draw(_KINDS)
        # Few distinct days so that equal timestamps (ties) are common.
        day = draw(st.integers(min_value=0, max_value=4))
        passed = draw(st.booleans()) if kind is C else None
        score = draw(st.none() | st.integers(min_value=0, max_value=100).map(float)) if kind is C else None
        account = draw(st.sampled_from(["A1", "A2"]))
        if platform == "union":
            hours = float(draw(st.integers(min_value=0, max_value=80)))
            facts.append(union(f"e{i}", kind, day, hours=hours, passed=passed, score=score, account=account))
        else:
            credits = draw(st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0]))
            facts.append(ou(f"e{i}", kind, day, credits=credits, passed=passed, score=score, account=account))
    return facts


@settings(max_examples=300, deadline=None)
@given(facts=fact_sets(), data=st.data())
def test_record_does_not_depend_on_order_or_duplication(facts: list[CreditFact], data: st.DataObject) -> None:
    expected = derive(*facts)
    shuffled = data.draw(st.permutations(facts))
    duplicated = data.draw(st.lists(st.sampled_from(facts), max_size=6))
    assert derive(*shuffled, *duplicated) == expected


@settings(max_examples=200, deadline=None)
@given(facts=fact_sets())
def test_derived_record_keeps_its_invariants(facts: list[CreditFact]) -> None:
    state = derive(*facts)
    assert {(s.platform, s.account, s.event_id) for s in state.sources} == {
        (f.platform, f.account, f.event_id) for f in facts
    }
    assert list(state.sources) == sorted(state.sources, key=lambda s: (s.platform, s.account, s.event_id))
    passes = [f for f in facts if f.kind is C and f.passed]
    if passes:
        assert state.status is CreditStatus.AWARDED
        assert state.credits == max(credit_value(f, H)[0] for f in passes)
        assert state.credits % 0.5 == 0 or state.rule == "course_credits"
    else:
        assert state.credits == 0.0
        assert state.status is not CreditStatus.AWARDED


def test_the_fact_and_record_field_lists_are_written_once() -> None:
    """A fact's fields are the canonical event's facts plus its flattened outcome, its ledger
    columns are named as its fields, and a record state holds exactly the published record's
    fields but its id and version (plus the hidden content count)."""
    from bridge.core.events import CanonicalEvent, EventFacts
    from bridge.core.records import CreditRecord
    from bridge.store import schema
    from bridge.store.ledger import FACT_FIELDS

    assert set(EventFacts.model_fields) <= set(CanonicalEvent.model_fields)
    assert list(CreditFact.model_fields) == [*EventFacts.model_fields, "passed", "score", "contents"]
    assert set(FACT_FIELDS) <= set(schema.credit_facts.c.keys())
    assert set(RecordState.model_fields) - set(CreditRecord.model_fields) == {"extra_contents"}
    assert set(CreditRecord.model_fields) - set(RecordState.model_fields) == {"record_id", "version"}
