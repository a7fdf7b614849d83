"""The stream worker: Faust consumes the input topics in batches and hands them to the pipeline.

Delivery is at-least-once with idempotent effects. A batch's offsets are committed only after
its effects are in the database and its dead letters and outbox rows are acknowledged by the
broker; a database or broker failure is retried with backoff, never skipped.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from bridge.bootstrap import Runtime
from bridge.pipeline import BatchResult, Inbound
from bridge.store.registry import Registry
from topics import catalogue

log = logging.getLogger(__name__)

#: Send one message; returns once the broker acknowledged it.
Send = Callable[[str, bytes | None, bytes | None], Awaitable[Any]]

#: Outbox rows published per database transaction.
OUTBOX_CHUNK = 500
#: Backoff between retries of a failed database or broker step (seconds, doubling to the cap).
RETRY_FIRST_S, RETRY_CAP_S = 0.5, 15.0


@dataclass
class Health:
    """What /healthz and /readyz report."""

    assigned: bool = False
    database_ok: bool = False
    last_progress: float = 0.0


class StreamWorker:
    """Processes batches and publishes their results; knows Faust only through ``send``."""

    def __init__(self, runtime: Runtime, send: Send) -> None:
        self.runtime = runtime
        self.pipeline = runtime.pipeline
        self.metrics = runtime.metrics
        self.send = send
        self.health = Health()
        # One thread does all database work, so a transaction never hops threads and the event
        # loop (heartbeats, web endpoints) never blocks on the database.
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bridge-db")
        self._busy = asyncio.Lock()

    async def _in_db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    async def _retrying(self, operation: str, step: Callable[[], Awaitable[Any]]) -> Any:
        delay = RETRY_FIRST_S
        while True:
            try:
                result = await step()
            except DBAPIError as exc:
                self.health.database_ok = False
                self.metrics.db_errors.labels(operation).inc()
                log.warning("database step %s failed (%s); retrying in %.1fs", operation, type(exc.orig).__name__, delay)
            except Exception as exc:  # noqa: BLE001 - broker hiccups and bugs alike: never lose the batch
                log.exception("step %s failed (%s); retrying in %.1fs", operation, type(exc).__name__, delay)
            else:
                if operation != "publish":
                    self.health.database_ok = True
                return result
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_CAP_S)

    async def handle(self, batch: Sequence[Inbound]) -> BatchResult:
        """Process, persist and publish one batch; returns only when all of it is durable."""
        async with self._busy:
            started = time.perf_counter()
            result: BatchResult = await self._retrying("process", lambda: self._in_db(self.pipeline.process, batch))
            await self._retrying("publish", lambda: self._publish_dead_letters(result))
            await self._retrying("publish", self._drain)
            self.metrics.observe_batch(result, len(batch), time.perf_counter() - started)
            self.health.last_progress = time.time()
            return result

    async def drain_outbox(self) -> None:
        """Publish what earlier batches (maybe of a crashed worker) left in the outbox."""
        async with self._busy:
            await self._retrying("publish", self._drain)

    async def _publish_dead_letters(self, result: BatchResult) -> None:
        topic = catalogue.DEADLETTER.name
        for msg, letter in result.dead_letters:
            await self.send(topic, msg.key, letter.model_dump_json().encode())
            self.metrics.published.labels(topic).inc()
            log.warning(
                "dead-lettered %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, letter.reason_code
            )

    async def _drain(self) -> None:
        while True:
            claim = await self._in_db(_Claim.open, self.runtime.engine, OUTBOX_CHUNK)
            try:
                for topic, key, value in claim.messages:
                    await self.send(topic, key.encode(), value)
                    self.metrics.published.labels(topic).inc()
            except BaseException:
                await self._in_db(claim.rollback)
                raise
            await self._in_db(claim.commit)
            if len(claim.entry_ids) < OUTBOX_CHUNK:
                return

    def check_database(self) -> bool:
        try:
            with self.runtime.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except DBAPIError:
            self.health.database_ok = False
        else:
            self.health.database_ok = True
        return self.health.database_ok

    def close(self) -> None:
        self._db.shutdown(wait=True)


class _Claim:
    """Outbox rows and their current values, held in an open transaction until published.

    The rows (and on PostgreSQL the records they publish) stay locked until the broker has
    acknowledged the messages, so a newer state of a key can never be published before an older
    one: the last message of each key on a compacted topic is its latest state.
    """

    def __init__(self, conn: Any, registry: Registry) -> None:
        self.conn = conn
        self.registry = registry
        self.entry_ids: list[int] = []
        self.messages: list[tuple[str, str, bytes | None]] = []

    @classmethod
    def open(cls, engine: Any, limit: int) -> _Claim:
        conn = engine.connect()
        conn.begin()
        claim = cls(conn, Registry(conn))
        try:
            entries = claim.registry.pending(limit)
            claim.registry.lock_records([e.key for e in entries if e.topic == catalogue.CREDIT_RECORDS.name])
            claim.registry.lock_learners([e.key for e in entries if e.topic == catalogue.LEARNER_IDENTITIES.name])
            latest: dict[tuple[str, str], None] = {}
            for entry in entries:
                claim.entry_ids.append(entry.id)
                latest[(entry.topic, entry.key)] = None
            # Several rows for one key publish one message: its current value.
            for topic, key in latest:
                claim.messages.append((topic, key, claim.registry.published_value(topic, key)))
        except BaseException:
            claim.rollback()
            raise
        return claim

    def commit(self) -> None:
        try:
            self.registry.done(self.entry_ids)
            self.conn.commit()
        finally:
            self.conn.close()

    def rollback(self) -> None:
        try:
            self.conn.rollback()
        finally:
            self.conn.close()


def build_app(runtime: Runtime) -> faust.App:
    """The Faust app of one worker: the agent over both input topics and the web endpoints."""
    settings = runtime.settings
    session_s = settings.effective_session_timeout_s
    app = faust.App(
        settings.group_id,
        broker=settings.broker_url,
        value_serializer="raw",
        key_serializer="raw",
        broker_session_timeout=session_s,
        broker_heartbeat_interval=max(session_s / 6, 0.5),
        broker_rebalance_timeout=max(session_s, 10.0),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
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
    )
    inputs = app.topic(*(t.name for t in catalogue.INPUT_TOPICS), key_serializer="raw", value_serializer="raw")

    async def send(topic: str, key: bytes | None, value: bytes | None) -> Any:
        pending = await app.producer.send(topic, key, value, None, None, None)
        return await pending

    worker = StreamWorker(runtime, send)
    app.bridge_worker = worker  # type: ignore[attr-defined]

    @app.agent(inputs, concurrency=1)
    async def consume(stream: faust.StreamT) -> None:
        async for events in stream.take_events(settings.batch_size, within=settings.batch_window_s):
            batch = [
                Inbound(e.message.topic, e.message.partition, e.message.offset, e.message.key, e.message.value)
                for e in events
            ]
            task = asyncio.ensure_future(worker.handle(batch))
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                # Stopping: Faust acks the batch on the way out, so finish it first.
                await task
                raise

    @app.on_partitions_assigned.connect
    async def _assigned(_app: Any, assigned: Any, **_: Any) -> None:
        worker.health.assigned = True
        log.info("assigned %d partitions", len(assigned))

    @app.timer(interval=5.0)
    async def _sweep() -> None:
        await worker.drain_outbox()

    @app.page("/metrics")
    async def _metrics(web: Any, request: Any) -> Any:
        runtime.metrics.ready.set(1 if worker.health.assigned and worker.health.database_ok else 0)
        return web.bytes(generate_latest(runtime.metrics.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def _healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def _readyz(web: Any, request: Any) -> Any:
        database_ok = await asyncio.get_running_loop().run_in_executor(None, worker.check_database)
        ready = worker.health.assigned and database_ok
        body = {"ready": ready, "assigned": worker.health.assigned, "database": database_ok}
        return web.json(body, status=200 if ready else 503)

    return app
