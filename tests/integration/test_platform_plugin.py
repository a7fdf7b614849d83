"""A platform is one module: a fourth platform, written by this test alone, flows end to end.

The module below is everything the platform is: its topic, its parser, its credit rule. It is
named in ``BRIDGE_PLATFORM_MODULES`` (the setting for platforms that live outside this repository);
nothing else in the bridge is told about it, yet the worker subscribes to its topic, links its
accounts to the other platforms' learners, derives its records by its own rule and dead-letters
its bad messages, and the operator commands know its name.
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import adapters
from bridge.cli import main as bridge_cli
from bridge.core import platforms
from tests.factories import UNION, encode, resident_id, union_event
from tests.integration.harness import Bridge
from topics import catalogue

pytestmark = pytest.mark.integration

TOPIC = "acme.academy.events.v1"
MODULE = "acme_academy_platform"
SOURCE = f'''
"""The ACME corporate academy: an enterprise platform that lives outside the bridge."""

from datetime import datetime

from adapters import PlatformAdapter
from adapters._fields import Message
from bridge.core.credits import course_credits_rule
from bridge.core.events import CanonicalEvent, DocumentType, EventKind, Outcome
from bridge.core.normalise import person_evidence
from topics.catalogue import TopicSpec

TOPIC = TopicSpec(
    name="{TOPIC}", role="input", cleanup_policy="delete", key="the employee number",
    value_model=None, partitions=None, description="ACME academy course events.", retention_ms=None,
)
_KINDS = {{"start": EventKind.ENROLLED, "finish": EventKind.COMPLETED, "drop": EventKind.WITHDRAWN}}


def parse(value: bytes) -> CanonicalEvent:
    msg = Message.decode(value, "acme")
    kind = msg.choice("acmeAction", "the action", _KINDS, code="unknown_event_type")
    return CanonicalEvent(
        platform="acme",
        event_id=msg.required_id("acmeId", "the event id"),
        kind=kind,
        occurred_at=msg.in_window("at", datetime.fromisoformat(msg.get("at"))),
        account=msg.required_id("employee", "the employee number"),
        course_id=msg.required_id("course", "the course"),
        platform_credits=msg.required_number("credits", "the course's credits"),
        outcome=Outcome(passed=msg.required_bool("passed", "whether they passed")) if kind is EventKind.COMPLETED else None,
        person=person_evidence(
            doc_type=DocumentType.RESIDENT_ID,
            number=msg.optional_text("nationalId", "the resident ID number"),
            name=None,
            mobile=None,
        ),
    )


ADAPTER = PlatformAdapter(
    name="acme", label="ACME academy", topic=TOPIC, parse=parse, credit_rule=course_credits_rule,
    signature="acmeId",
)
'''


@pytest.fixture
def acme(tmp_path: Path) -> Iterator[Path]:
    """The fourth platform's module, importable from a directory of the test's own and registered
    in this process too (the harness creates its topics from the catalogue)."""
    home = tmp_path / "plugins"
    home.mkdir()
    (home / f"{MODULE}.py").write_text(textwrap.dedent(SOURCE), encoding="utf-8")
    sys.path.insert(0, str(home))
    try:
        adapters.load_module(MODULE)
        yield home
    finally:
        adapters.unregister("acme")
        sys.modules.pop(MODULE, None)
        sys.path.remove(str(home))


def acme_event(event_id: str, action: str, *, employee: str = "E-1001", national_id: str | None = None,
               passed: bool | None = None, day: int = 1) -> bytes:
    event = {"acmeId": event_id, "acmeAction": action, "at": f"2024-05-{day:02d}T09:00:00+08:00",
             "employee": employee, "course": "ACME-SAFETY-1", "credits": 1.5}
    if national_id is not None:
        event["nationalId"] = national_id
    if passed is not None:
        event["passed"] = passed
    return encode(event)


def test_a_platform_registered_by_one_module_flows_end_to_end(
    acme: Path, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "acme" in platforms.names()
    assert TOPIC in {t.name for t in catalogue.INPUT_TOPICS}
    doc = resident_id(serial="071")
    bridge = Bridge(tmp_path, database_url)
    try:
        bridge.send(UNION, "GH7101000001", encode(union_event("u-71", member_no="GH7101000001", id_card=doc)))
        bridge.send(TOPIC, "E-1001", acme_event("a-1", "start", national_id=doc))
        bridge.send(TOPIC, "E-1001", acme_event("a-2", "finish", national_id=doc, passed=True, day=20))
        bridge.send(TOPIC, "E-1001", acme_event("a-3", "audit", national_id=doc))  # no such action
        path = os.pathsep.join(filter(None, (str(acme), os.environ.get("PYTHONPATH"))))
        bridge.start_worker(BRIDGE_PLATFORM_MODULES=MODULE, PYTHONPATH=path)
        bridge.settle()

        (learner,) = bridge.live_learners().values()
        assert sorted((a["platform"], a["account"]) for a in learner["accounts"]) == [
            ("acme", "E-1001"), ("union", "GH7101000001")]
        acme_records = [r for r in bridge.records().values() if r["course_key"] == "acme:ACME-SAFETY-1"]
        assert [(r["status"], r["credits"], r["rule"], r["learner_id"]) for r in acme_records] == [
            ("AWARDED", 1.5, "course_credits", learner["learner_id"])]
        assert {s["platform"] for s in acme_records[0]["sources"]} == {"acme"}
        (letter,) = bridge.dead_letters()
        assert (letter["topic"], letter["offset"], letter["reason_code"]) == (TOPIC, 2, "unknown_event_type")
        assert "acme message" in letter["reason"]

        for name, value in bridge.operator_env("op-17").items():
            if name.startswith("BRIDGE_"):
                monkeypatch.setenv(name, value)
        capsys.readouterr()
        assert bridge_cli(["explain", "acme:E-1001"]) == 0
        text = capsys.readouterr().out
        assert "acme:E-1001: linked by resident_id" in text and "union:GH7101000001" in text
        assert doc not in text
    finally:
        bridge.close()


def test_a_worker_not_told_of_the_module_names_its_missing_platform(acme: Path, tmp_path: Path, sqlite_url: str) -> None:
    """Every process of a deployment must load the same platform modules: one naming a module it
    cannot import stops at start-up with the setting and the module named."""
    bridge = Bridge(tmp_path, sqlite_url)
    try:
        worker = bridge.start_worker(BRIDGE_PLATFORM_MODULES="no_such_platform_module")
        assert worker.process.wait(timeout=60) != 0
        log = worker.log_path.read_text(encoding="utf-8", errors="replace")
        assert "BRIDGE_PLATFORM_MODULES" in log and "no_such_platform_module" in log
    finally:
        bridge.close()
