"""The stream worker's Faust app: the agent over the input topics, its timers and web pages.

This module assembles the parts in :mod:`bridge.stream` (one job each): the agent hands each
batch to :class:`~bridge.stream.handler.StreamWorker`, which processes, persists and publishes it
before Faust commits its offsets. ``bridge worker`` (:func:`bridge.cli.cmd_worker`) runs the app.

Each worker serves ``/metrics``, ``/healthz`` (the event loop and the app's timers run) and
``/readyz`` (the group answered with an assignment and the database answers).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path
from typing import Any

import faust

from bridge.bootstrap import Runtime
from bridge.core.records import MESSAGE_BOUND
from bridge.kafka import faust_kwargs
from bridge.observability import logging_config
from bridge.pipeline import Inbound
from bridge.settings import Settings
from bridge.stream import LOGGER
from bridge.stream.handler import StreamWorker
from bridge.stream.health import HEARTBEAT_S, REVIEW_INTERVAL_S
from bridge.stream.lag import LAG_INTERVAL_S, BridgeMonitor, consumer_lag
from bridge.stream.tuning import tune_fetch_wait
from bridge.stream.web import add_pages
from topics import catalogue

__all__ = ["build_app", "faust_settings"]

log = logging.getLogger(LOGGER)

#: How often the outbox is swept for what no batch published (a crashed worker's rows, say).
SWEEP_INTERVAL_S = 5.0

_INPUT_TOPICS = frozenset(t.name for t in catalogue.INPUT_TOPICS)


def faust_settings(settings: Settings) -> dict[str, Any]:
    """The keyword arguments of the worker's ``faust.App`` (the benchmark's Faust baseline uses them too)."""
    session_s = settings.effective_session_timeout_s
    return dict(
        broker=settings.broker_url,
        value_serializer="raw",
        key_serializer="raw",
        broker_session_timeout=session_s,
        broker_heartbeat_interval=max(session_s / 6, 0.5),
        broker_rebalance_timeout=max(session_s, 10.0),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # The message bound itself (Faust's default is 1,000,000): a value the outbox let through
        # (at most OUTPUT_VALUE_BOUND with its key) fits with the record's framing.
        producer_max_request_size=MESSAGE_BOUND,
        processing_guarantee="at_least_once",
        topic_allow_declare=False,
        topic_disable_leader=True,
        store="memory://",
        datadir=str(Path(tempfile.gettempdir()) / f"bridge-faust-{settings.group_id}"),
        web_enabled=True,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        web_in_thread=False,
        loghandlers=[],
        # TLS and SASL (BRIDGE_KAFKA_*): the same settings as every other client of the bridge.
        **faust_kwargs(settings),
    )


def build_app(runtime: Runtime) -> faust.App:
    """The Faust app of one worker: the agent over both input topics, its timers and web pages."""
    settings = runtime.settings
    metrics = runtime.metrics
    app = faust.App(
        settings.group_id,
        **faust_settings(settings),
        # The Faust worker installs this when it starts: JSON lines on stdout.
        logging_config=logging_config(settings.log_level),
    )
    monitor = BridgeMonitor(metrics)
    app.monitor = monitor
    inputs = app.topic(*(t.name for t in catalogue.INPUT_TOPICS), key_serializer="raw", value_serializer="raw")

    async def send(topic: str, key: bytes | None, value: bytes | None) -> Any:
        return await app.producer.send(topic, key, value, None, None, None)

    worker = StreamWorker(runtime, send)
    app.bridge_worker = worker  # type: ignore[attr-defined]

    @app.agent(inputs, concurrency=1)
    async def consume(stream: faust.StreamT) -> None:
        async for events in stream.take_events(settings.batch_size, within=settings.batch_window_s):
            batch = [
                Inbound(e.message.topic, e.message.partition, e.message.offset, e.message.key, e.message.value)
                for e in events
            ]
            task = asyncio.ensure_future(worker.handle(batch, [e.message.timestamp for e in events]))
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                # Stopping: Faust acks the batch on the way out, so finish it first.
                await task
                raise

    @app.on_partitions_revoked.connect
    async def _revoked(_app: Any, revoked: Any, **_: Any) -> None:
        worker.health.assigned = False
        log.info("partitions revoked: rebalancing", extra={"partitions": len(revoked)})

    @app.on_partitions_assigned.connect
    async def _assigned(_app: Any, assigned: Any, **_: Any) -> None:
        tune_fetch_wait(app, settings.fetch_max_wait_ms)
        partitions = sum(1 for tp in assigned if tp.topic in _INPUT_TOPICS)
        worker.health.assigned = True
        worker.health.partitions = partitions
        metrics.on_assigned(partitions)
        log.info("assigned %d input partitions", partitions, extra={"partitions": partitions})

    @app.timer(interval=SWEEP_INTERVAL_S)
    async def _sweep() -> None:
        await worker.drain_outbox()

    @app.timer(interval=HEARTBEAT_S)
    async def _heartbeat() -> None:
        worker.health.beat()

    @app.timer(interval=LAG_INTERVAL_S)
    async def _lag() -> None:
        try:
            lags = await consumer_lag(app.consumer, monitor.committed())
        except Exception as exc:  # noqa: BLE001 - mid-rebalance or broker away: try again next tick
            log.debug("consumer lag not measured (%s)", type(exc).__name__)
        else:
            metrics.set_consumer_lag(lags)
            worker.health.pending = sum(lags.values())

    @app.timer(interval=REVIEW_INTERVAL_S)
    async def _reviews() -> None:
        await worker.refresh_reviews()

    add_pages(app, worker)
    return app
