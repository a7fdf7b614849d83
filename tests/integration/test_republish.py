"""A broker lost and restarted empty: `bridge republish` brings back everything published before.

The embedded broker keeps its topics in memory only, and a Kafka cluster can be rebuilt empty. The
registry still holds every record and identity; republishing queues their current states and the
running worker publishes them, so the compacted topics read as they did before the loss.
"""

from __future__ import annotations

import os
import time
from unittest import mock

import pytest

from bridge import cli as bridge_cli
from tests.factories import OU, UNION, ou_event, resident_id, union_event
from tests.integration.harness import Bridge

pytestmark = pytest.mark.integration


def _republish(database_url: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env["BRIDGE_DATABASE_URL"] = database_url
    with mock.patch.dict(os.environ, env, clear=True):
        return bridge_cli.main(["republish", "--page", "2"])


def test_after_the_broker_was_lost_republish_restores_the_compacted_topics(tmp_path, database_url) -> None:
    doc = resident_id(serial="771")
    before = Bridge(tmp_path / "first", database_url)
    try:
        before.start_worker()
        before.send(UNION, "GH1", union_event("u-1", "COURSE_COMPLETE", member_no="GH1", id_card=doc, passed=True))
        before.send(OU, "S1", ou_event("o-1", "course.completed", student_no="S1", document=("RESIDENT_ID", doc)))
        before.send(UNION, "GH2", union_event("u-2", member_no="GH2", name="李娜", mobile="13900000000"))
        before.settle()
        records, identities = before.records(), before.identities()
    finally:
        before.close()
    assert len(records) == 3 and identities

    # A new, empty broker; the same database.
    after = Bridge(tmp_path / "second", database_url)
    try:
        worker = after.start_worker()
        assert _republish(database_url) == 0
        deadline = time.monotonic() + 60
        while (after.records(), after.identities()) != (records, identities):
            assert time.monotonic() < deadline, f"not republished; see {worker.log_path}"
            worker.check_alive()
            time.sleep(0.5)
        # Republishing again sends the same states: subscribers see nothing new (same versions).
        assert _republish(database_url) == 0
        time.sleep(6)  # the worker's outbox sweep runs every 5 s
        assert (after.records(), after.identities()) == (records, identities)
    finally:
        after.close()
