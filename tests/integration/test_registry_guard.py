"""The database the worker started with is the one it writes to (issue 11), with a real worker.

The registry is lost under a running worker (SQLite: its file deleted; PostgreSQL: its schema
dropped). The next message stops the worker (exit 4) without committing it; a restart refuses
because the group has committed offsets; ``bridge db upgrade`` creates a fresh registry
deliberately, and then a restart works. A first start on an empty database is covered by every
other integration test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bridge import cli
from bridge.store.engine import build_engine
from bridge.tools.topicio import group_lag
from bridge.stream.retry import FATAL_EXIT
from tests.factories import UNION, encode, union_event
from tests.integration.harness import Bridge
from topics import catalogue

pytestmark = pytest.mark.integration


def _committed(bridge: Bridge) -> int:
    inputs = [t.name for t in catalogue.INPUT_TOPICS]
    return group_lag(bridge.settings.bootstrap_servers(), bridge.settings.group_id, inputs)[0]


def _lose_the_registry(bridge: Bridge, url: str) -> None:
    if make_url(url).get_backend_name() == "sqlite":
        Path(make_url(url).database or "").unlink()  # as `rm bridge.db` would
    else:
        engine = build_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    # The harness reads the registry too: not through connections opened on the lost one.
    bridge.engine.dispose()


def _log(worker) -> str:
    return worker.log_path.read_text(errors="replace")


def test_a_registry_lost_under_a_running_worker_stops_it_and_a_restart_needs_db_upgrade(
    bridge: Bridge, database_url: str
) -> None:
    sqlite = make_url(database_url).get_backend_name() == "sqlite"
    path = Path(make_url(database_url).database or "") if sqlite else None
    for i in range(3):
        bridge.send(UNION, f"GH{i}", encode(union_event(f"u-{i}", member_no=f"GH{i}")))
    first = bridge.start_worker()
    bridge.settle(first)  # a first start on an empty database: created, and offsets committed
    done = _committed(bridge)
    assert done == 3

    _lose_the_registry(bridge, database_url)
    bridge.send(UNION, "GH9", encode(union_event("u-9", member_no="GH9")))
    bridge.flush()
    code = first.process.wait(60)
    assert code == FATAL_EXIT == cli.FATAL_EXIT
    log = _log(first)
    assert "stopping the worker" in log and "is not the one this worker started with" in log
    assert "bridge db upgrade" in log
    assert (f"the file {path} was deleted" in log) if sqlite else ("registry_meta table is gone" in log)
    assert _committed(bridge) == done  # the message met by the lost registry is not committed
    if sqlite:
        assert not path.exists()  # and no empty database took its place

    # A restart finds no registry but the group's committed offsets: refused, nothing created.
    refused = bridge.start_worker()
    assert refused.process.wait(60) == FATAL_EXIT
    log = _log(refused)
    assert "refusing to start" in log and "consumer group bridge-test has committed offsets" in log
    assert make_url(database_url).render_as_string(hide_password=True) in log
    assert "bridge db upgrade" in log and "reset the group's offsets" in log
    if sqlite:
        assert not path.exists()
    assert _committed(bridge) == done

    # `bridge db upgrade` creates a fresh registry deliberately; then the worker starts.
    upgraded = subprocess.run(
        [sys.executable, "-m", "bridge", "db", "upgrade"],
        env=bridge.env(), capture_output=True, text=True, timeout=120, cwd=os.getcwd(),
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert "schema at revision" in upgraded.stdout and "registry " in upgraded.stdout
    assert "created a fresh registry" in upgraded.stdout and "--reset-offsets" in upgraded.stdout
    again = bridge.start_worker()
    bridge.settle(again)
    assert _committed(bridge) == 4
    assert again.process.poll() is None
    # Without the offsets reset, the fresh registry holds only what came after: one account.
    assert bridge.counts()["accounts"] == 1
