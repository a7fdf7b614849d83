"""Identity rules (CONTRACT §3, issue 3) against a real worker, broker and database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta

import pytest

from bridge.cli import main as bridge_cli
from bridge.core.records import learner_id_for, record_id_for
from bridge.errors import EXIT_CONFIG
from tests.factories import BEIJING, OU, UNION, encode, ou_event, resident_id, union_event
from tests.integration.harness import Bridge
from topics import catalogue

pytestmark = pytest.mark.integration

T0 = datetime(2024, 4, 1, 9, 0, tzinfo=BEIJING)
D1, D2 = resident_id(serial="001"), resident_id(serial="002")


def ou_with_doc(event_id, student, doc, *, minutes=0, **kw):
    return encode(ou_event(event_id, student_no=student, document=("RESIDENT_ID", doc), when=T0 + timedelta(minutes=minutes), **kw))


def union_docless(event_id, member, *, minutes=0, **kw):
    return encode(union_event(event_id, member_no=member, when=T0 + timedelta(minutes=minutes), **kw))


def learner_of(bridge: Bridge, platform: str, account: str) -> dict:
    (learner,) = [
        l for l in bridge.live_learners().values()
        if {"platform": platform, "account": account} in l["accounts"]
    ]
    return learner


def operate_on(bridge: Bridge, monkeypatch, operator: str = "op-17") -> None:
    """Point the operator commands (run in this process) at the bridge's broker and database,
    signing as ``operator``."""
    for name, value in bridge.operator_env(operator).items():
        if name.startswith("BRIDGE_"):
            monkeypatch.setenv(name, value)


def family_phone(bridge: Bridge) -> None:
    """Two holders of different documents share a name and a mobile (one family phone); GH1, with
    no document, shares them too. A worker is started and has processed it: one review item
    (``ambiguous_match``) with both as candidates."""
    bridge.send(OU, "S1", ou_with_doc("o-1", "S1", D1))
    bridge.send(OU, "S2", ou_with_doc("o-2", "S2", D2, course="NOU-09000"))
    bridge.send(UNION, "GH1", union_docless("u-1", "GH1", minutes=5))
    bridge.start_worker()
    bridge.settle()


def method_of(learner: dict, account: str) -> str:
    return next(link["method"] for link in learner["links"] if link["account"] == account)


@pytest.mark.parametrize("docless_first", [True, False], ids=["docless-first", "documented-first"])
def test_docless_account_joins_the_one_learner_with_its_name_and_mobile(bridge: Bridge, docless_first: bool) -> None:
    # The same person; the union account has no document and writes name and phone differently.
    docless = union_docless("u-1", "GH1", name="张　伟", mobile="+86 138-0013-8000")
    documented = ou_with_doc("o-1", "S1", D1, name="张伟", phone="13800138000")
    first, second = (docless, documented) if docless_first else (documented, docless)
    bridge.send(UNION if docless_first else OU, "k", first)
    bridge.start_worker()
    bridge.settle()
    bridge.send(OU if docless_first else UNION, "k", second)
    bridge.settle()

    (learner,) = bridge.live_learners().values()
    assert learner["learner_id"] == learner_id_for("ou", "S1")  # the holder of the document
    assert method_of(learner, "GH1") == "name_mobile" and method_of(learner, "S1") == "account"
    assert {r["learner_id"] for r in bridge.records().values()} == {learner["learner_id"]}


def test_ambiguous_match_is_reviewed_then_settled_by_an_operator(bridge: Bridge, monkeypatch) -> None:
    family_phone(bridge)

    assert len(bridge.live_learners()) == 3
    assert method_of(learner_of(bridge, "union", "GH1"), "GH1") == "account"
    (review,) = bridge.reviews()
    assert review["kind"] == "ambiguous_match" and review["account"] == {"platform": "union", "account": "GH1"}
    assert review["candidates"] == sorted([learner_id_for("ou", "S1"), learner_id_for("ou", "S2")])

    operate_on(bridge, monkeypatch)
    chosen = learner_id_for("ou", "S2")
    assert bridge_cli(["review", "link", review["review_id"], "--learner", chosen, "--by", "op-17"]) == 0
    bridge.settle()

    learner = learner_of(bridge, "union", "GH1")
    assert learner["learner_id"] == chosen and method_of(learner, "GH1") == "operator"
    statuses = [r["status"] for r in bridge.reviews() if r["review_id"] == review["review_id"]]
    assert statuses[-1] == "linked"
    assert bridge_cli(["review", "link", review["review_id"], "--learner", chosen, "--by", "op-17"]) == 2

    # A redelivered decision changes nothing.
    (decision,) = bridge.topic(catalogue.DECISIONS)
    before = (bridge.records(), bridge.identities())
    bridge.send(catalogue.DECISIONS.name, decision.key, decision.value)
    bridge.settle()
    assert (bridge.records(), bridge.identities()) == before


def test_merges_rekey_records_with_tombstones_and_compose(bridge: Bridge) -> None:
    # GH9 starts alone (no document) and earns a record.
    bridge.send(UNION, "GH9", encode(union_event("u-1", "COURSE_COMPLETE", member_no="GH9", when=T0, passed=True, name=None)))
    bridge.send(UNION, "GH5", encode(union_event("u-2", member_no="GH5", id_card=D1, when=T0, name=None, course="X-1")))
    bridge.start_worker()
    bridge.settle()
    gh9, gh5 = learner_id_for("union", "GH9"), learner_id_for("union", "GH5")
    old_record = record_id_for(gh9, "union:ACFTU-SK-0012")
    assert bridge.records()[old_record]["status"] == "AWARDED"

    # GH9 shows GH5's document: GH9's learner merges into the holder of the document.
    bridge.send(UNION, "GH9", encode(union_event("u-3", member_no="GH9", id_card=D1, when=T0 + timedelta(days=1), name=None, course="X-2")))
    bridge.settle()
    latest = bridge.latest(catalogue.CREDIT_RECORDS)
    assert latest[old_record] is None  # tombstone for the old id
    moved = latest[record_id_for(gh5, "union:ACFTU-SK-0012")]
    assert moved["status"] == "AWARDED" and moved["sources"][0]["account"] == "GH9"
    identities = bridge.latest(catalogue.LEARNER_IDENTITIES)
    assert identities[gh9]["merged_into"] == gh5 and identities[gh9]["accounts"] == []
    assert {a["account"] for a in identities[gh5]["accounts"]} == {"GH5", "GH9"}

    # An open-university account that showed the same document a day before GH5 did (its event
    # arrives late): it held the document first, so its learner survives, and the merge of GH9
    # into GH5 composes into the new survivor.
    bridge.send(OU, "S1", ou_with_doc("o-1", "S1", D1, minutes=-24 * 60))
    bridge.settle()
    s1 = learner_id_for("ou", "S1")
    identities = bridge.latest(catalogue.LEARNER_IDENTITIES)
    assert identities[gh5]["merged_into"] == s1 and identities[gh9]["merged_into"] == s1
    assert {a["account"] for a in identities[s1]["accounts"]} == {"GH5", "GH9", "S1"}
    assert {r["learner_id"] for r in bridge.records().values()} == {s1}
    assert bridge.latest(catalogue.CREDIT_RECORDS)[record_id_for(gh5, "union:ACFTU-SK-0012")] is None


def test_conflicting_document_is_reviewed_never_merged(bridge: Bridge) -> None:
    bridge.send(UNION, "GH1", encode(union_event("u-1", member_no="GH1", id_card=D1, when=T0, name=None)))
    bridge.send(OU, "S2", ou_with_doc("o-1", "S2", D2, name=None))
    bridge.start_worker()
    bridge.settle()
    # The union account now arrives with the open-university learner's (different) document.
    bridge.send(UNION, "GH1", encode(union_event("u-2", member_no="GH1", id_card=D2, when=T0 + timedelta(hours=1), name=None)))
    bridge.settle()

    assert len(bridge.live_learners()) == 2
    assert learner_of(bridge, "union", "GH1")["learner_id"] != learner_of(bridge, "ou", "S2")["learner_id"]
    (review,) = bridge.reviews()
    assert review["kind"] == "conflicting_document"
    assert learner_id_for("ou", "S2") in review["candidates"]


def test_name_mobile_link_is_revisited_when_it_becomes_ambiguous(bridge: Bridge) -> None:
    bridge.send(OU, "S1", ou_with_doc("o-1", "S1", D1))
    bridge.send(UNION, "GH1", union_docless("u-1", "GH1", minutes=5))
    bridge.start_worker()
    bridge.settle()
    assert method_of(learner_of(bridge, "union", "GH1"), "GH1") == "name_mobile"
    s1 = learner_id_for("ou", "S1")
    linked_record = record_id_for(s1, "union:ACFTU-SK-0012")
    assert linked_record in bridge.records()

    # A second documented learner with the same name and mobile: the link is no longer safe.
    bridge.send(OU, "S2", ou_with_doc("o-2", "S2", D2, minutes=10, course="NOU-09000"))
    bridge.settle()
    gh1 = learner_of(bridge, "union", "GH1")
    assert gh1["learner_id"] == learner_id_for("union", "GH1") and method_of(gh1, "GH1") == "account"
    assert bridge.latest(catalogue.CREDIT_RECORDS)[linked_record] is None
    assert record_id_for(gh1["learner_id"], "union:ACFTU-SK-0012") in bridge.records()
    assert [r["kind"] for r in bridge.reviews()] == ["ambiguous_match"]


def test_explain_shows_why_without_personal_data(bridge: Bridge, monkeypatch, capsys) -> None:
    bridge.send(OU, "S1", ou_with_doc("o-1", "S1", D1))
    bridge.send(UNION, "GH1", encode(union_event("u-1", member_no="GH1", id_card=D1.lower(), when=T0)))
    bridge.start_worker()
    bridge.settle()
    operate_on(bridge, monkeypatch)
    capsys.readouterr()
    assert bridge_cli(["explain", "union:GH1"]) == 0
    text = capsys.readouterr().out
    assert "union:GH1: linked by resident_id" in text and "shared with ou:S1" in text
    assert bridge_cli(["explain", learner_id_for("ou", "S1"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {a["account"] for a in report["accounts"]} == {"ou:S1", "union:GH1"}
    for secret in (D1, D1[:17], "13800138000", "张"):
        assert secret not in text and secret not in json.dumps(report, ensure_ascii=False)


def test_production_profile_refuses_the_development_key(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env.update(BRIDGE_PROFILE="production", BRIDGE_BROKER_URL="kafka://127.0.0.1:9", BRIDGE_DATABASE_URL=f"sqlite:///{tmp_path}/x.db")
    done = subprocess.run([sys.executable, "-m", "bridge", "worker"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == EXIT_CONFIG
    assert "BRIDGE_PSEUDONYM_KEY" in done.stderr


def test_an_operator_rejection_keeps_the_account_apart(bridge: Bridge, monkeypatch) -> None:
    family_phone(bridge)
    (review,) = bridge.reviews()
    operate_on(bridge, monkeypatch, "op-3")
    assert bridge_cli(["review", "reject", review["review_id"], "--by", "op-3", "--note", "different people"]) == 0
    bridge.settle()

    assert [r["status"] for r in bridge.reviews() if r["review_id"] == review["review_id"]][-1] == "rejected"
    # The account shows up again: it still links nowhere and no new review is raised.
    bridge.send(UNION, "GH1", union_docless("u-2", "GH1", minutes=60))
    bridge.settle()
    gh1 = learner_of(bridge, "union", "GH1")
    assert gh1["learner_id"] == learner_id_for("union", "GH1") and len(gh1["accounts"]) == 1
    assert bridge_cli(["review", "list"]) == 0
    assert len(bridge.reviews()) == 2  # the item, then its decided status: no new question
