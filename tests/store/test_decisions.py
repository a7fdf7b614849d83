"""Operator decisions are applied only as their review item allows (CONTRACT §2, rule 9).

A decision that names no review item, one already decided, another account than the item's, or a
learner that is not among the item's candidates is dead-lettered (``decision_rejected``) and
changes nothing. Even a decision that fits never joins holders of different valid documents of one
type. And before any of that, a decision must be signed by a key trusted for the operator it names:
an unsigned, forged, altered or misattributed decision is dead-lettered (``decision_unverified``)
and changes nothing; a replayed one is a duplicate and changes nothing either.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, func, select

from bridge.core.decisions import DECISION_REJECTED, DECISION_UNVERIFIED, DecisionAction, OperatorDecision
from bridge.core.records import AccountRef, learner_id_for
from bridge.core.signing import TrustedKey, TrustedKeys, key_id_of
from bridge.pipeline import Inbound, Pipeline
from bridge.store import schema as t
from tests.factories import resident_id
from tests.operators import operator_key
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
    with pipeline.units.engine.connect() as conn:
        [(review_id, candidates)] = conn.execute(select(t.review_items.c.review_id, t.review_items.c.candidates)).all()
    assert sorted(candidates) == sorted([learner_id_for("union", "GH1"), learner_id_for("ou", "S1")])
    return review_id


_offsets = iter(range(10_000))


def _unsigned(review_id: str, *, account=("union", "GH2"), anchor=("union", "GH1"), action="link",
              decision_id: str = "d-1", by: str = "operator-7", at: datetime = NOW) -> OperatorDecision:
    return OperatorDecision(
        decision_id=decision_id, review_id=review_id, action=DecisionAction(action),
        account=AccountRef(platform=account[0], account=account[1]),
        anchor=AccountRef(platform=anchor[0], account=anchor[1]) if anchor else None,
        decided_by=by, decided_at=at,
    )


def _message(decision: OperatorDecision | dict) -> Inbound:
    value = (json.dumps(decision) if isinstance(decision, dict) else decision.model_dump_json()).encode()
    review_id = decision["review_id"] if isinstance(decision, dict) else decision.review_id
    return Inbound(DECISIONS.name, 0, next(_offsets), review_id.encode(), value)


def _decision(review_id: str, *, signer: str = "operator-7", **fields) -> Inbound:
    """A decision signed by ``signer``'s key (a key the pipeline trusts for that operator)."""
    return _message(_unsigned(review_id, **fields).signed_with(operator_key(signer)))


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
    assert _learner_of(pipeline.units.engine, "union", "GH2") == _learner_of(pipeline.units.engine, "union", "GH1")
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
    before = {k: _learner_of(pipeline.units.engine, *k) for k in [("union", "GH1"), ("union", "GH2"), ("union", "GH3")]}
    decision = {
        "no such review item": _decision("rv_000000000000000000000000"),
        "another account": _decision(review_id, account=("union", "GH3")),
        "not a candidate": _decision(review_id, anchor=("union", "GH3")),
        "already decided": _decision(review_id),
    }[case]
    stored = _stored_decisions(pipeline.units.engine)
    result = pipeline.process([decision])
    [(msg, letter)] = result.dead_letters
    assert msg is decision and letter.reason_code == DECISION_REJECTED
    assert "GH" not in letter.reason and "rv_" not in letter.reason
    assert result.decisions == 0 and _stored_decisions(pipeline.units.engine) == stored
    assert {k: _learner_of(pipeline.units.engine, *k) for k in before} == before


def test_no_decision_joins_holders_of_different_valid_documents(pipeline: Pipeline, feed: Feed) -> None:
    """Rule 9: GH2 is linked to GH1's learner (D1) by an operator; GH2 then shows D2, S1's document.
    The link would now join D1's and D2's holders: it no longer holds, whatever the decision says."""
    review_id = _ambiguous(pipeline, feed)
    pipeline.process([_decision(review_id)])
    # GH2 now carries D2 itself: a link to GH1's learner would join D1 and D2. The evidence wins.
    pipeline.process([feed.union("u-4", member_no="GH2", id_card=D2, name="张伟", mobile="13800138000", when=day(5))])
    assert _learner_of(pipeline.units.engine, "union", "GH2") != _learner_of(pipeline.units.engine, "union", "GH1")


# -- signatures -----------------------------------------------------------------------------------


def _altered(decision: OperatorDecision, **changes) -> dict:
    """The JSON of a signed decision with fields changed after signing (the signature kept)."""
    fields = decision.signed_fields()
    fields.update(changes)
    return fields


def _forgeries(review_id: str) -> dict[str, Inbound | list[Inbound]]:
    good = _unsigned(review_id).signed_with(operator_key("operator-7"))
    stranger = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    return {
        "unsigned": _message(_unsigned(review_id)),
        "no signature but a key id": _message(_altered(good, signature=None)),
        "signed by an untrusted key": _message(_unsigned(review_id).signed_with(stranger)),
        "signed by another operator's key": _message(_unsigned(review_id).signed_with(operator_key("op-3"))),
        "anchor changed after signing": _message(_altered(good, anchor={"platform": "ou", "account": "S1"})),
        "operator changed after signing": _message(_altered(good, decided_by="op-3")),
        "review id changed after signing": _message(_altered(good, review_id="rv_000000000000000000000000")),
        "signature of another decision": _message(_altered(
            good, signature=_unsigned(review_id, action="reject", anchor=None)
            .signed_with(operator_key("operator-7")).signature)),
        "signature not base64": _message(_altered(good, signature="not base64!")),
        "signature truncated": _message(_altered(good, signature=good.signature[:20])),
    }


@pytest.mark.parametrize("case", list(_forgeries("rv_x")))
def test_a_decision_no_trusted_key_signed_is_dead_lettered_and_changes_nothing(
    pipeline: Pipeline, feed: Feed, case: str
) -> None:
    review_id = _ambiguous(pipeline, feed)
    before = {k: _learner_of(pipeline.units.engine, *k) for k in [("union", "GH1"), ("union", "GH2"), ("ou", "S1")]}
    msg = _forgeries(review_id)[case]
    result = pipeline.process([msg])
    [(dead, letter)] = result.dead_letters
    assert dead is msg and letter.reason_code == DECISION_UNVERIFIED
    assert "operator decision rejected" in letter.reason and "operator-7" not in letter.reason
    assert result.decisions == 0 and _stored_decisions(pipeline.units.engine) == 0
    assert {k: _learner_of(pipeline.units.engine, *k) for k in before} == before
    with pipeline.units.engine.connect() as conn:
        assert conn.execute(select(t.review_items.c.status)).scalars().all() == ["open"]
    # The genuine decision is still applied afterwards: the forgery consumed nothing.
    assert pipeline.process([_decision(review_id)]).decisions == 1


def test_a_replayed_decision_changes_nothing(pipeline: Pipeline, feed: Feed) -> None:
    review_id = _ambiguous(pipeline, feed)
    genuine = _decision(review_id)
    assert pipeline.process([genuine]).decisions == 1
    after = _learner_of(pipeline.units.engine, "union", "GH2")
    # The same bytes again (a redelivery or a replay): a duplicate, not an error, and no change.
    again = pipeline.process([Inbound(DECISIONS.name, 1, 99_999, genuine.key, genuine.value)])
    assert again.decisions == 0 and not again.dead_letters and again.duplicates == 1
    # A new, validly signed decision on the item already decided: rejected, as before.
    late = pipeline.process([_decision(review_id, action="reject", anchor=None, decision_id="d-2")])
    assert [letter.reason_code for _m, letter in late.dead_letters] == [DECISION_REJECTED]
    assert _learner_of(pipeline.units.engine, "union", "GH2") == after and _stored_decisions(pipeline.units.engine) == 1


def test_a_retired_key_verifies_only_what_was_decided_before_its_retirement(engine: Engine, feed: Feed) -> None:
    key = operator_key("operator-7")
    retired = NOW
    pipeline = make_pipeline(engine)
    pipeline.trusted_keys = TrustedKeys([TrustedKey("operator-7", key_id_of(key.public_key()), key.public_key(), retired)])
    review_id = _ambiguous(pipeline, feed)
    late = pipeline.process([_decision(review_id, at=retired + timedelta(seconds=1))])
    assert [letter.reason_code for _m, letter in late.dead_letters] == [DECISION_UNVERIFIED]
    early = pipeline.process([_decision(review_id, at=retired - timedelta(days=1), decision_id="d-2")])
    assert early.decisions == 1 and not early.dead_letters


def test_no_trusted_keys_means_no_decision_is_applied(engine: Engine, feed: Feed) -> None:
    pipeline = make_pipeline(engine)
    pipeline.trusted_keys = TrustedKeys()
    review_id = _ambiguous(pipeline, feed)
    result = pipeline.process([_decision(review_id)])
    assert [letter.reason_code for _m, letter in result.dead_letters] == [DECISION_UNVERIFIED]
    assert _stored_decisions(pipeline.units.engine) == 0


def test_an_applied_decision_keeps_the_key_that_signed_it(pipeline: Pipeline, feed: Feed) -> None:
    review_id = _ambiguous(pipeline, feed)
    pipeline.process([_decision(review_id)])
    with pipeline.units.engine.connect() as conn:
        [key_id] = conn.execute(select(t.decisions.c.key_id)).scalars().all()
    assert key_id == key_id_of(operator_key("operator-7").public_key())
