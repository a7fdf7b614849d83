"""Only operators decide (issue 12, CONTRACT §2): on a real worker, broker and database, a forged,
unsigned, altered, misattributed, replayed or mismatched decision changes nothing and is
dead-lettered with a reason; a decision signed by a trusted operator is applied once, and
``bridge explain`` shows it with the key that signed it."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bridge.cli import main as bridge_cli
from bridge.core.decisions import DECISION_REJECTED, DECISION_UNVERIFIED, DecisionAction, OperatorDecision
from bridge.core.records import AccountRef, learner_id_for
from bridge.core.signing import key_id_of
from bridge.errors import EXIT_CONFIG
from tests.integration.harness import Bridge
from tests.integration.test_identity import family_phone, learner_of, operate_on
from tests.operators import operator_key
from topics import catalogue

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)


def _decision(review_id: str, *, account=("union", "GH1"), anchor=("ou", "S2"), by="op-17",
              action="link", decision_id="dc_forged") -> OperatorDecision:
    return OperatorDecision(
        decision_id=decision_id, review_id=review_id, action=DecisionAction(action),
        account=AccountRef(platform=account[0], account=account[1]),
        anchor=AccountRef(platform=anchor[0], account=anchor[1]) if anchor else None,
        decided_by=by, decided_at=NOW,
    )


def _altered(decision: OperatorDecision, **changes) -> bytes:
    fields = decision.signed_fields()
    fields.update(changes)
    return json.dumps(fields).encode()


def _explain(subject: str, capsys) -> dict:
    capsys.readouterr()
    assert bridge_cli(["explain", subject, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_forged_and_mismatched_decisions_change_nothing_on_a_real_worker(bridge: Bridge, monkeypatch, capsys) -> None:
    family_phone(bridge)
    (review,) = bridge.reviews()
    review_id = review["review_id"]
    before = bridge.identities()
    assert len(bridge.live_learners()) == 3

    stranger = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    genuine = _decision(review_id).signed_with(operator_key("op-17"))
    attacks = {
        # The attack of the issue: an invented review item, "nobody", linking two document holders.
        "the issue's forgery": (_decision("rv_invented", account=("ou", "S2"), anchor=("ou", "S1"), by="nobody")
                                .model_dump_json().encode(), DECISION_UNVERIFIED),
        "unsigned, on the real item": (_decision(review_id).model_dump_json().encode(), DECISION_UNVERIFIED),
        "signed by an untrusted key": (_decision(review_id).signed_with(stranger).model_dump_json().encode(),
                                       DECISION_UNVERIFIED),
        "another operator's key": (_decision(review_id).signed_with(operator_key("op-3")).model_dump_json().encode(),
                                   DECISION_UNVERIFIED),
        "anchor changed after signing": (_altered(genuine, anchor={"platform": "ou", "account": "S1"}),
                                         DECISION_UNVERIFIED),
        "validly signed, another account than the item's": (
            _decision(review_id, account=("ou", "S1"), decision_id="dc_mismatch").signed_with(operator_key("op-17"))
            .model_dump_json().encode(), DECISION_REJECTED),
        "validly signed, an anchor outside the candidates": (
            _decision(review_id, anchor=("union", "GH1"), decision_id="dc_outside").signed_with(operator_key("op-17"))
            .model_dump_json().encode(), DECISION_REJECTED),
        "validly signed, on an invented item": (
            _decision("rv_invented", decision_id="dc_invented").signed_with(operator_key("op-17"))
            .model_dump_json().encode(), DECISION_REJECTED),
    }
    for label, (value, _code) in attacks.items():
        bridge.send(catalogue.DECISIONS.name, review_id, value)
    bridge.settle()

    assert bridge.identities() == before, "a forged or mismatched decision changed an identity"
    assert [r["status"] for r in bridge.reviews()] == ["open"]
    letters = [letter for letter in bridge.dead_letters() if letter["topic"] == catalogue.DECISIONS.name]
    assert sorted(letter["reason_code"] for letter in letters) == sorted(code for _v, code in attacks.values())
    for letter in letters:
        assert "nothing was changed" in letter["reason"] or "not signed" in letter["reason"]
        assert "nobody" not in letter["reason"] and "op-17" not in letter["reason"]

    # The genuine decision, made with the command, is applied; its replay changes nothing.
    operate_on(bridge, monkeypatch, "op-17")
    chosen = learner_id_for("ou", "S2")
    assert bridge_cli(["review", "link", review_id, "--learner", chosen, "--by", "op-17"]) == 0
    bridge.settle()
    assert learner_of(bridge, "union", "GH1")["learner_id"] == chosen
    applied = bridge.identities()
    [published] = [m for m in bridge.topic(catalogue.DECISIONS) if json.loads(m.value).get("decision_id", "").startswith("dc_")
                   and json.loads(m.value)["decision_id"] not in {"dc_forged", "dc_mismatch", "dc_outside", "dc_invented"}]
    bridge.send(catalogue.DECISIONS.name, published.key, published.value)
    bridge.settle()
    assert bridge.identities() == applied

    [decision] = _explain("union:GH1", capsys)["decisions"]
    assert decision["decided_by"] == "op-17" and decision["action"] == "link"
    assert decision["signed_with"] == key_id_of(operator_key("op-17").public_key())
    assert decision["anchor"] is not None and decision["account"] == "union:GH1"
    # The anchor's learner shows the decision too: it bears on its account.
    assert [d["decision_id"] for d in _explain(chosen, capsys)["decisions"]] == [decision["decision_id"]]


def test_review_commands_refuse_to_publish_what_the_workers_would_not_apply(bridge: Bridge, monkeypatch, capsys) -> None:
    family_phone(bridge)
    (review,) = bridge.reviews()
    operate_on(bridge, monkeypatch, "op-17")
    # Signing as op-17 while claiming to be op-3: refused before anything is published.
    assert bridge_cli(["review", "reject", review["review_id"], "--by", "op-3"]) == EXIT_CONFIG
    assert "trusted for operator op-17" in capsys.readouterr().err
    # No signing key: refused, saying what to set.
    monkeypatch.delenv("BRIDGE_OPERATOR_SIGNING_KEY")
    assert bridge_cli(["review", "reject", review["review_id"], "--by", "op-17"]) == EXIT_CONFIG
    assert "BRIDGE_OPERATOR_SIGNING_KEY" in capsys.readouterr().err
    assert bridge.topic(catalogue.DECISIONS) == []
