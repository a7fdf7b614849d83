"""Nothing lost, nothing doubled (issue 5): faults against a real worker, broker and database.

Each test sends the same simulated traffic to a bridge that suffers a fault and compares the
final compacted output topics with those of an uninterrupted run, versions included (they count
the events behind each value, so they do not depend on batches or order), and checks that along
each key's history a version never goes back (but after a tombstone) and one version has one
content.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from functools import cache

import pytest

from bridge.tools import simulate
from bridge.tools.topicio import group_lag
from tests.integration.harness import Bridge
from topics import catalogue

pytestmark = pytest.mark.integration

COUNT = 2500
SEED = 11


@cache
def traffic() -> tuple[list[simulate.SimMessage], simulate.Expectation]:
    return simulate.generate(COUNT, seed=SEED)


def send_all(bridge: Bridge) -> None:
    messages, _ = traffic()
    for msg in messages:
        bridge.send(msg.topic, msg.key, msg.value)
    bridge.flush()


def final_state(bridge: Bridge) -> dict[str, dict]:
    return {"records": bridge.records(), "learners": bridge.live_learners()}


def assert_versions_consistent(bridge: Bridge) -> None:
    for spec in (catalogue.CREDIT_RECORDS, catalogue.LEARNER_IDENTITIES):
        seen: dict[bytes, tuple[int, bytes]] = {}
        for msg in bridge.topic(spec):
            if msg.value is None:
                seen.pop(msg.key, None)  # after a tombstone a key starts afresh
                continue
            version = json.loads(msg.value)["version"]
            if msg.key in seen:
                last_version, last_value = seen[msg.key]
                assert version >= last_version, f"{spec.name} {msg.key!r}: version went back"
                if version == last_version:
                    assert msg.value == last_value, f"{spec.name} {msg.key!r}: two contents for one version"
            seen[msg.key] = (version, msg.value)


def committed(bridge: Bridge) -> int:
    return group_lag(bridge.settings.bootstrap_servers(), bridge.settings.group_id, [t.name for t in catalogue.INPUT_TOPICS])[0]


def wait_for_progress(bridge: Bridge, at_least: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while committed(bridge) < at_least:
        assert time.monotonic() < deadline, "the worker made no progress"
        time.sleep(0.2)


@pytest.fixture
def make_bridge(tmp_path, database_url) -> Iterator:
    made: list[Bridge] = []

    def make(name: str, url: str | None = None) -> Bridge:
        bridge = Bridge(tmp_path / name, url or database_url, batch_size=100)
        made.append(bridge)
        return bridge

    yield make
    for bridge in made:
        bridge.close()


@pytest.fixture
def reference(tmp_path_factory) -> dict[str, dict]:
    """The outcome of an uninterrupted run (computed once per session and backend-independent)."""
    return _reference(str(tmp_path_factory.getbasetemp()))


@cache
def _reference(base: str) -> dict[str, dict]:
    from pathlib import Path

    work = Path(base) / "reference"
    bridge = Bridge(work, f"sqlite:///{work / 'bridge.db'}", batch_size=100)
    try:
        send_all(bridge)
        bridge.start_worker()
        bridge.settle()
        return final_state(bridge)
    finally:
        bridge.close()


def test_sigkill_mid_stream_loses_and_doubles_nothing(make_bridge, reference) -> None:
    bridge = make_bridge("crash")
    send_all(bridge)
    first = bridge.start_worker(BRIDGE_BATCH_SIZE="50")
    wait_for_progress(bridge, COUNT // 3)
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    bridge.start_worker()
    bridge.settle()
    assert final_state(bridge) == reference
    assert_versions_consistent(bridge)


def test_sigterm_finishes_in_flight_work_and_exits_within_the_bound(make_bridge, reference) -> None:
    bridge = make_bridge("graceful")
    send_all(bridge)
    worker = bridge.start_worker(BRIDGE_BATCH_SIZE="50", BRIDGE_SHUTDOWN_TIMEOUT_S="20")
    wait_for_progress(bridge, COUNT // 4)
    started = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    code = worker.process.wait(60)
    assert time.monotonic() - started < 20 + 5, "the worker overran its shutdown bound"
    assert code == 0
    # What it committed is durable: a new worker finishes the rest with nothing lost or doubled.
    bridge.start_worker()
    bridge.settle()
    assert final_state(bridge) == reference
    assert_versions_consistent(bridge)


def test_two_workers_one_stopped_midway_give_the_same_result(make_bridge, reference) -> None:
    bridge = make_bridge("pair")
    first = bridge.start_worker(BRIDGE_BATCH_SIZE="50")
    second = bridge.start_worker(BRIDGE_BATCH_SIZE="50")
    time.sleep(8)  # both joined: the group's second join round takes one session timeout
    send_all(bridge)
    wait_for_progress(bridge, COUNT // 3)
    first.process.send_signal(signal.SIGTERM)
    first.process.wait(60)
    bridge.settle(second)
    assert final_state(bridge) == reference
    assert_versions_consistent(bridge)


def test_broker_frozen_longer_than_the_session_timeout(make_bridge, reference) -> None:
    bridge = make_bridge("stall")
    send_all(bridge)
    worker = bridge.start_worker(BRIDGE_BATCH_SIZE="50")
    wait_for_progress(bridge, COUNT // 4)
    bridge.broker.pause()
    time.sleep(10)  # the dev session timeout is 6 s
    bridge.broker.resume()
    bridge.settle(worker)
    assert worker.process.poll() is None, "the worker died instead of recovering"
    assert final_state(bridge) == reference
    assert_versions_consistent(bridge)


@pytest.mark.postgres
def test_postgres_restart_mid_stream(make_bridge, reference, database_url) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("restarts the PostgreSQL server")
    bridge = make_bridge("pg-restart")
    send_all(bridge)
    port = bridge.env()["BRIDGE_WEB_PORT"]
    worker = bridge.start_worker(BRIDGE_BATCH_SIZE="50", BRIDGE_WEB_PORT=port)
    wait_for_progress(bridge, COUNT // 4)
    cluster = _pg_cluster()
    subprocess.run(["pg_ctlcluster", *cluster, "stop", "-m", "fast"], check=True)
    try:
        time.sleep(3)
        with pytest.raises(urllib.error.HTTPError) as not_ready:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10)
        assert not_ready.value.code == 503
        progress_while_down = committed(bridge)
        time.sleep(3)
        assert committed(bridge) == progress_while_down, "offsets committed while the database was down"
    finally:
        subprocess.run(["pg_ctlcluster", *cluster, "start"], check=True)
    bridge.settle(worker)
    assert worker.process.poll() is None
    assert final_state(bridge) == reference
    assert_versions_consistent(bridge)


def _pg_cluster() -> list[str]:
    line = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True).stdout.split()
    return line[:2]


@pytest.mark.postgres
def test_sigterm_while_the_database_is_down_exits_within_the_bound(make_bridge, reference, database_url) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("stops the PostgreSQL server")
    messages, _ = traffic()
    half = len(messages) // 2
    bridge = make_bridge("bounded-stop")
    for msg in messages[:half]:
        bridge.send(msg.topic, msg.key, msg.value)
    bridge.flush()
    port = bridge.env()["BRIDGE_WEB_PORT"]
    worker = bridge.start_worker(BRIDGE_BATCH_SIZE="50", BRIDGE_SHUTDOWN_TIMEOUT_S="8", BRIDGE_WEB_PORT=port)
    # The first half done (a fast worker can finish all it was sent before its first commit);
    # the second half arrives only once the database is down, so a batch is surely in hand.
    wait_for_progress(bridge, half)
    cluster = _pg_cluster()
    subprocess.run(["pg_ctlcluster", *cluster, "stop", "-m", "fast"], check=True)
    try:
        for msg in messages[half:]:
            bridge.send(msg.topic, msg.key, msg.value)
        bridge.flush()
        deadline = time.monotonic() + 60
        while not (_readyz(port).get("failing") or "").startswith("process"):
            assert time.monotonic() < deadline, "the worker never tried to persist a batch"
            time.sleep(0.2)
        started = time.monotonic()
        worker.process.send_signal(signal.SIGTERM)
        code = worker.process.wait(60)
        assert time.monotonic() - started < 8 + 5
    finally:
        subprocess.run(["pg_ctlcluster", *cluster, "start"], check=True)
    assert code == 3  # overran the bound: exited without committing what was not durable
    bridge.start_worker()
    bridge.settle()
    assert final_state(bridge) == reference
    assert_versions_consistent(bridge)


def _readyz(port: str) -> dict:
    """The worker's /readyz body, whether it answers 200 or 503."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as not_ready:
        return json.loads(not_ready.read())
    except (urllib.error.URLError, ConnectionError):
        return {}


def test_tens_of_thousands_of_mixed_good_and_bad_messages(make_bridge, database_url) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("volume is the point here, not the backend (covered by the store contract tests)")
    import random

    messages, expected = simulate.generate(20_000, seed=3, malformed_ratio=0.25, duplicate_ratio=0.02)
    noise = random.Random(5)
    junk = [bytes(noise.randrange(256) for _ in range(noise.randrange(0, 300))) for _ in range(1000)]
    bridge = make_bridge("volume")
    worker = bridge.start_worker(BRIDGE_BATCH_SIZE="500")
    topics = [t.name for t in catalogue.PLATFORM_TOPICS]
    for n, msg in enumerate(messages):
        bridge.send(msg.topic, msg.key, msg.value)
        if n % 20 == 0 and junk:
            bridge.send(topics[n % len(topics)], b"junk", junk.pop())
    bridge.settle(worker)

    assert worker.process.poll() is None, "the worker crashed"
    letters = bridge.dead_letters()
    assert len(letters) == expected.malformed + 1000
    assert all(letter["reason"] and letter["payload_encrypted"] is not None for letter in letters)
    counts = bridge.counts()
    assert counts["events"] == expected.events
    assert counts["outbox_pending"] == 0
