"""The worker's metric and health hooks, without a broker: lag, rebalances, database, batches."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timezone
from unittest.mock import create_autospec

import faust
import pytest
from faust.transport.consumer import Consumer
from faust.types import TP
from prometheus_client import CollectorRegistry
from sqlalchemy import insert
from sqlalchemy.exc import OperationalError

from bridge.bootstrap import Runtime
from bridge.core.sealing import Sealer
from bridge.metrics import Metrics
from bridge.pipeline import BatchResult, Inbound, Pipeline, dead_letter
from bridge.settings import Settings
from bridge.store import schema
from bridge.store.engine import build_engine, upgrade
from bridge.store.uow import writing
from bridge.stream import health as health_module
from bridge.stream import retry as retry_module
from bridge.stream.handler import StreamWorker
from bridge.stream.lag import BridgeMonitor, consumer_lag
from topics import catalogue

UNION = catalogue.UNION_EVENTS.name
OU = catalogue.OU_EVENTS.name


def _consumer(assigned: set[TP], ends: dict[TP, int], positions: dict[TP, int]):
    consumer = create_autospec(Consumer, instance=True)
    consumer.assignment.return_value = assigned
    consumer.highwaters.return_value = ends
    consumer.position.side_effect = lambda tp: positions[tp]
    return consumer


def test_lag_is_end_minus_committed_or_position_for_input_partitions_only() -> None:
    u0, u1, o0, other = TP(UNION, 0), TP(UNION, 1), TP(OU, 0), TP("somebody.elses.topic", 0)
    consumer = _consumer({u0, u1, o0, other}, {u0: 100, u1: 50, o0: 7}, {u1: 50, o0: 3})
    lags = asyncio.run(consumer_lag(consumer, {u0: 60}))
    assert lags == {(UNION, 0): 40, (UNION, 1): 0, (OU, 0): 4}
    asked = set(consumer.highwaters.await_args.args)
    assert other not in asked


def test_no_assignment_means_no_lag_series() -> None:
    consumer = _consumer(set(), {}, {})
    assert asyncio.run(consumer_lag(consumer, {})) == {}
    consumer.highwaters.assert_not_awaited()


def test_monitor_counts_rebalances_and_forgets_commits_of_the_old_generation() -> None:
    registry = CollectorRegistry()
    monitor = BridgeMonitor(Metrics(registry))
    monitor.on_tp_commit({TP(UNION, 0): 10})
    assert monitor.committed() == {TP(UNION, 0): 10}
    monitor.on_rebalance_start(faust.App("test-monitor"))
    assert monitor.committed() == {}
    assert registry.get_sample_value("bridge_rebalances_total") == 1


@pytest.fixture
def runtime(sqlite_url: str) -> Runtime:
    engine = build_engine(sqlite_url)
    upgrade(engine)
    pipeline = create_autospec(Pipeline, instance=True)
    return Runtime(Settings(database_url=sqlite_url), engine, writing(engine), pipeline, Metrics(CollectorRegistry()))


def _value(runtime: Runtime, name: str, **labels: str) -> float | None:
    return runtime.metrics.registry.get_sample_value(name, labels)


def test_a_batch_is_published_then_measured(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry_module, "RETRY_FIRST_S", 0.01)
    bad = Inbound(UNION, 0, 5, b"GH9", b"{not json")
    good = Inbound(OU, 1, 9, b"S1", b"{}")
    result = BatchResult(
        dead_letters=[(bad, dead_letter(bad, "not JSON", "not_json", datetime.now(timezone.utc), Sealer.from_secret("k" * 32)))],
        processed=Counter({("ou", "enrolled"): 1}),
        event_times=[datetime(2024, 4, 1, tzinfo=timezone.utc)],
    )
    # The database fails once: retried, counted, never skipped.
    runtime.pipeline.process.side_effect = [OperationalError("SELECT", {}, Exception("locked")), result]
    sent: list[tuple[str, bytes | None]] = []

    async def send(topic: str, key: bytes | None, value: bytes | None) -> None:
        sent.append((topic, key))

    worker = StreamWorker(runtime, send)
    try:
        now = asyncio.run(_handle(worker, [bad, good]))
    finally:
        worker.close()
    assert sent == [(catalogue.DEADLETTER.name, b"GH9")]
    assert runtime.pipeline.process.call_count == 2
    assert _value(runtime, "bridge_database_errors_total", operation="process") == 1
    assert _value(runtime, "bridge_database_operation_duration_seconds_count", operation="process") == 2
    assert _value(runtime, "bridge_database_operation_duration_seconds_count", operation="outbox_claim") == 1
    assert _value(runtime, "bridge_messages_consumed_total", topic=UNION) == 1
    assert _value(runtime, "bridge_dead_letters_total", topic=UNION, reason="not_json") == 1
    assert _value(runtime, "bridge_event_to_publication_seconds_count", topic=OU) == 1
    assert 0 < _value(runtime, "bridge_event_to_publication_seconds_sum", topic=OU) < 60
    assert _value(runtime, "bridge_event_age_at_publication_seconds_count") == 1
    assert worker.health.database_ok and worker.health.last_progress >= now


async def _handle(worker: StreamWorker, batch: list[Inbound]) -> float:
    import time

    started = time.time()
    await worker.handle(batch, [started - 2.0, started - 1.0])
    return started


def test_open_reviews_are_read_from_the_database(runtime: Runtime) -> None:
    with runtime.engine.begin() as conn:
        for i, kind in enumerate(["ambiguous_match", "ambiguous_match", "conflicting_document"]):
            conn.execute(
                insert(schema.review_items).values(
                    review_id=f"rv-{i}", kind=kind, platform="union", account=f"GH{i}", candidates=[],
                    raised_at=datetime.now(timezone.utc), status="open",
                )
            )
    worker = StreamWorker(runtime, send=None)  # type: ignore[arg-type]
    try:
        asyncio.run(worker.refresh_reviews())
    finally:
        worker.close()
    assert _value(runtime, "bridge_review_items_open", kind="ambiguous_match") == 2
    assert _value(runtime, "bridge_review_items_open", kind="conflicting_document") == 1
    assert _value(runtime, "bridge_database_operation_duration_seconds_count", operation="review_count") == 1


def test_readiness_needs_the_assignment_and_the_database(runtime: Runtime, tmp_path) -> None:
    worker = StreamWorker(runtime, send=None)  # type: ignore[arg-type]
    try:
        assert worker.check_database() and not worker.is_ready()
        worker.health.assigned = True
        assert worker.is_ready()
        # A database that cannot be opened: not ready, and the failure is counted.
        unreachable = Settings(database_url=f"sqlite:///{tmp_path}/missing/dir/x.db")
        broken = build_engine(unreachable.database_url, create=False)
        worker.runtime = Runtime(unreachable, broken, writing(broken), runtime.pipeline, runtime.metrics)
        assert not worker.check_database() and not worker.is_ready()
        assert _value(runtime, "bridge_database_errors_total", operation="health_check") == 1
    finally:
        worker.close()


def test_liveness_fails_only_after_the_heartbeat_stopped(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    worker = StreamWorker(runtime, send=None)  # type: ignore[arg-type]
    try:
        assert worker.is_alive()  # before the app's timers start
        clock = [1000.0]
        monkeypatch.setattr(health_module.time, "monotonic", lambda: clock[0])
        worker.health.heartbeat = 1000.0
        clock[0] += health_module.HEARTBEAT_STALE_S - 1
        assert worker.is_alive()
        clock[0] += 2
        assert not worker.is_alive()
    finally:
        worker.close()
