"""Operator decisions are applied only as their review item allows (CONTRACT §2, rule 9).

A decision that names no review item, one already decided, another account than the item's, or a
learner that is not among the item's candidates is dead-lettered (``decision_rejected``) and
changes nothing. Even a decision that fits never joins holders of different valid documents of one
type. (Signatures are not checked yet: that is the security issue's work.)
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import Engine, func, select

from bridge.core.decisions import DECISION_REJECTED, DecisionAction, OperatorDecision
from bridge.core.records import AccountRef, learner_id_for
from bridge.pipeline import Inbound, Pipeline
from bridge.store import schema as t
from tests.factories import resident_id
from tests.store.test_pipeline_contract import Feed, day, feed, make_pipeline  # noqa: F401 - fixture
from topics.catalogue import DECISIONS

NOW = datetime(2024, 6, 1, tzinfo=timezone.utc)
D1, D2 = resident_id(serial="881"), resident_id(serial="882")


@pytest.fixture
def pipeline(engine: Engine) -> Pipeline:
    return make_pipeline(engine)


def _ambiguous(pipeline: Pipeline, feed: Feed) -> str:
    """GH2 (no document) shares a name+mobile with two learners of different documents."""
    pipeline.process([
        feed.union("u-1", member_no="GH1", id_card=D1, name="张伟", mobile="13800138000", when=day(0)),
        feed.ou("o-1", student_no="S1", document=("RESIDENT_ID", D2), name="张伟", phone="13800138000", when=day(1)),
    ])
    pipeline.process([feed.union("u-2", member_no="GH2", id_card=None, name="张伟", mobile="13800138000", when=day(2))])
    with pipeline.engine.connect() as conn:
        [(review_id, candidates)] = conn.execute(select(t.review_items.c.review_id, t.review_items.c.candidates)).all()
    assert sorted(candidates) == sorted([learner_id_for("union", "GH1"), learner_id_for("ou", "S1")])
    return review_id


_offsets = iter(range(10_000))


def _decision(review_id: str, *, account=("union", "GH2"), anchor=("union", "GH1"), action="link",
              decision_id: str = "d-1") -> Inbound:
    decision = OperatorDecision(
        decision_id=decision_id, review_id=review_id, action=DecisionAction(action),
        account=AccountRef(platform=account[0], account=account[1]),
        anchor=AccountRef(platform=anchor[0], account=anchor[1]) if anchor else None,
        decided_by="operator-7", decided_at=NOW,
    )
    return Inbound(DECISIONS.name, 0, next(_offsets), review_id.encode(), decision.model_dump_json().encode())


def _learner_of(engine: Engine, platform: str, account: str) -> str:
    with engine.connect() as conn:
        return conn.execute(
            select(t.accounts.c.learner_id).where(t.accounts.c.platform == platform, t.accounts.c.account == account)
        ).scalar_one()


def _stored_decisions(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(t.decisions)).scalar_one()


def test_a_decision_that_fits_its_review_item_is_applied_once(pipeline: Pipeline, feed: Feed) -> None:
    review_id = _ambiguous(pipeline, feed)
    result = pipeline.process([_decision(review_id)])
    assert not result.dead_letters and result.decisions == 1
    assert _learner_of(pipeline.engine, "union", "GH2") == _learner_of(pipeline.engine, "union", "GH1")
    again = pipeline.process([_decision(review_id)])
    assert again.duplicates == 1 and not again.dead_letters


@pytest.mark.parametrize(
    "case",
    ["no such review item", "another account", "not a candidate", "already decided"],
)
def test_a_decision_that_does_not_fit_is_dead_lettered_and_changes_nothing(
    pipeline: Pipeline, feed: Feed, case: str
) -> None:
    review_id = _ambiguous(pipeline, feed)
    pipeline.process([feed.union("u-3", member_no="GH3", id_card=resident_id(serial="883"), when=day(3))])
    if case == "already decided":
        pipeline.process([_decision(review_id, action="reject", anchor=None, decision_id="d-0")])
    before = {k: _learner_of(pipeline.engine, *k) for k in [("union", "GH1"), ("union", "GH2"), ("union", "GH3")]}
    decision = {
        "no such review item": _decision("rv_000000000000000000000000"),
        "another account": _decision(review_id, account=("union", "GH3")),
        "not a candidate": _decision(review_id, anchor=("union", "GH3")),
        "already decided": _decision(review_id),
    }[case]
    stored = _stored_decisions(pipeline.engine)
    result = pipeline.process([decision])
    [(msg, letter)] = result.dead_letters
    assert msg is decision and letter.reason_code == DECISION_REJECTED
    assert "GH" not in letter.reason and "rv_" not in letter.reason
    assert result.decisions == 0 and _stored_decisions(pipeline.engine) == stored
    assert {k: _learner_of(pipeline.engine, *k) for k in before} == before


def test_no_decision_joins_holders_of_different_valid_documents(pipeline: Pipeline, feed: Feed) -> None:
    """Rule 9: GH2 is linked to GH1's learner (D1) by an operator; GH2 then shows D2, S1's document.
    The link would now join D1's and D2's holders: it no longer holds, whatever the decision says."""
    review_id = _ambiguous(pipeline, feed)
    pipeline.process([_decision(review_id)])
    # GH2 now carries D2 itself: a link to GH1's learner would join D1 and D2. The evidence wins.
    pipeline.process([feed.union("u-4", member_no="GH2", id_card=D2, name="张伟", mobile="13800138000", when=day(5))])
    assert _learner_of(pipeline.engine, "union", "GH2") != _learner_of(pipeline.engine, "union", "GH1")
