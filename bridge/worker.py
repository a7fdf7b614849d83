"""The stream worker: Faust consumes the input topics in batches and hands them to the pipeline.

Delivery is at-least-once with idempotent effects. A batch's offsets are committed only after
its effects are in the database and its dead letters and outbox rows are acknowledged by the
broker; a database or broker failure is retried with backoff, never skipped.

Each worker serves ``/metrics``, ``/healthz`` (the event loop and the app's timers run) and
``/readyz`` (the group answered with an assignment and the database answers).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import os
import random
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import faust
from faust.sensors.monitor import Monitor
from faust.types import TP
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from bridge.bootstrap import Runtime
from bridge.errors import EXIT_FATAL, EXIT_SHUTDOWN_OVERRUN
from bridge.core.records import DEADLETTER_KEY_BOUND, MESSAGE_BOUND, OUTPUT_VALUE_BOUND, DeadLetter
from bridge.failures import RACE_STATES, UNIQUE_VIOLATION, Failure, classify
from bridge.kafka import faust_kwargs
from bridge.metrics import Metrics
from bridge.observability import logging_config
from bridge.pipeline import BatchResult, Inbound
from bridge.settings import Settings
from bridge.store import schema
from bridge.store.engine import writer
from bridge.store.registry import Registry
from topics import catalogue

log = logging.getLogger(__name__)

#: Queue one message for sending; returns an awaitable that resolves when the broker acknowledged
#: it (or ``None`` when the send was already acknowledged). Messages queued in turn keep their
#: order within a partition, so a batch's messages are queued first and awaited together.
Send = Callable[[str, bytes | None, bytes | None], Awaitable[Awaitable[Any] | None]]

#: Longest pause before redoing a batch that lost a race with another worker, and how many races
#: in a row are retried that quickly.
CONFLICT_RETRY_S, MAX_QUICK_RACES = 0.2, 20
#: How many unique violations in a row count as lost races (see bridge.failures).
MAX_UNIQUE_RACES = 3
#: Exit code of a worker that overran its shutdown bound (distinct from Faust's own codes).
SHUTDOWN_OVERRUN_EXIT = EXIT_SHUTDOWN_OVERRUN
#: Exit code of a worker stopped by a fatal condition (a replaced database, say).
FATAL_EXIT = EXIT_FATAL
#: Outbox rows published per database transaction.
OUTBOX_CHUNK = 500
#: Backoff between retries of a failed database or broker step (seconds, doubling to the cap).
RETRY_FIRST_S, RETRY_CAP_S = 0.5, 15.0
#: How often the heartbeat timer ticks, and how long without a tick /healthz calls the worker dead:
#: far beyond any pause of a healthy loop (the database runs in its own thread), well within the
#: liveness probe's patience.
HEARTBEAT_S, HEARTBEAT_STALE_S = 1.0, 30.0
#: Consumer lag is read from the broker (one ListOffsets request) this often; Prometheus scrapes
#: every 15-30 s, so a fresher value would never be seen.
LAG_INTERVAL_S = 5.0
#: Open review items are counted in the database this often (the backlog changes by the hour;
#: the same read keeps an idle worker's readiness current between probes).
REVIEW_INTERVAL_S = 15.0
#: Longest wait for one consumer call (highwaters, position) while measuring lag.
LAG_CALL_TIMEOUT_S = 10.0

_INPUT_TOPICS = frozenset(t.name for t in catalogue.INPUT_TOPICS)


def is_conflict(exc: SQLAlchemyError) -> bool:
    """True when a transaction failed because a concurrent one won, not because the database is down."""
    return classify(exc) is Failure.RACE


class DataFailure(Exception):
    """A step failed because of the data it was given (its ``__cause__``): retrying cannot help."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(type(cause).__name__)
        self.cause_name = type(getattr(cause, "orig", None) or cause).__name__


@dataclass
class Health:
    """What /healthz and /readyz report."""

    assigned: bool = False
    """The group answered with this worker's assignment (maybe empty) since the last revocation."""
    partitions: int = 0
    database_ok: bool = False
    last_progress: float = 0.0
    heartbeat: float | None = None
    """``time.monotonic()`` of the last heartbeat tick; ``None`` until the app's timers run."""
    loop_lag_s: float = 0.0
    batch_started: float | None = None
    """``time.monotonic()`` when the batch in hand was taken up; ``None`` between batches."""
    failing: str | None = None
    """The step that failed last and why (an exception's class), until a step succeeds again."""
    pending: int = 0
    """Messages waiting on this worker's input partitions, as last measured."""
    idle_since: float = field(default_factory=time.monotonic)
    """``time.monotonic()`` of the last finished batch (or of the start)."""

    def stalled(self, bound_s: float, now: float | None = None) -> str | None:
        """Why the worker makes no progress, if it has made none for longer than ``bound_s``."""
        now = time.monotonic() if now is None else now
        if self.batch_started is not None and now - self.batch_started > bound_s:
            why = f", failing at {self.failing}" if self.failing else ""
            return f"one batch has been in hand for {now - self.batch_started:.0f} s{why}"
        if self.batch_started is None and self.pending > 0 and now - self.idle_since > bound_s:
            return f"{self.pending} messages wait and no batch finished for {now - self.idle_since:.0f} s"
        return None


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

    async def _in_db(self, operation: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn`` in the database thread, timed and counted as ``operation``."""
        return await asyncio.get_running_loop().run_in_executor(self._db, _timed, self.metrics, operation, fn, *args)

    async def _retrying(self, operation: str, step: Callable[[], Awaitable[Any]], *, isolate: bool = False) -> Any:
        """Run ``step`` until it succeeds, retrying what is transient.

        With ``isolate``, a failure caused by the data (see :mod:`bridge.failures`) is raised as
        :class:`DataFailure` for the caller to isolate; without it (publishing), every failure is
        retried. A fatal one stops the worker.
        """
        delay, races = RETRY_FIRST_S, 0
        while True:
            try:
                result = await step()
            except Exception as exc:  # noqa: BLE001 - each kind of failure is handled below
                kind = classify(exc)
                cause = type(getattr(exc, "orig", None) or exc).__name__
                self.health.failing = f"{operation}: {cause}"
                if kind is Failure.FATAL:
                    self.fatal(exc)
                if kind is Failure.RACE:
                    races += 1
                    state = getattr(getattr(exc, "orig", None), "sqlstate", None)
                    unique = state == UNIQUE_VIOLATION
                    # A race that keeps being lost is no race (a constraint the batch breaks
                    # every time, say): after a bound it is treated as caused by the data.
                    if races <= (MAX_UNIQUE_RACES if unique else MAX_QUICK_RACES):
                        # Another worker changed the same learners first: redo the batch on
                        # what it committed, soon (jittered so two workers do not collide again).
                        log.info("database step %s lost a race with another worker (%s); retrying", operation,
                                 cause, extra={"operation": operation})
                        await asyncio.sleep(random.uniform(0.01, CONFLICT_RETRY_S))
                        continue
                    # A serialization failure is never the data's fault, however often it comes
                    # (busy workers on one crowd): from now on it backs off. A constraint that
                    # keeps failing is the batch's own.
                    kind = Failure.TRANSIENT if state in RACE_STATES else Failure.DATA
                if kind is Failure.DATA and isolate:
                    raise DataFailure(exc) from exc
                if isinstance(exc, SQLAlchemyError):
                    self.health.database_ok = False
                    log.warning(
                        "database step %s failed (%s); retrying in %.1fs", operation, cause, delay,
                        extra={"operation": operation, "retry_in_s": delay},
                    )
                else:
                    log.warning(
                        "step %s failed (%s); retrying in %.1fs", operation, cause, delay,
                        exc_info=kind is Failure.DATA,
                        extra={"operation": operation, "retry_in_s": delay},
                    )
            else:
                if operation != "publish":
                    self.health.database_ok = True
                self.health.failing = None
                return result
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_CAP_S)

    def fatal(self, exc: BaseException) -> None:
        """Stop the process at once, committing nothing: what is not durable is redelivered to
        the next worker. Used when going on would corrupt what the bridge publishes."""
        log.critical("stopping the worker: %s", exc, extra={"operation": "fatal"})
        logging.shutdown()
        os._exit(FATAL_EXIT)

    async def _process(self, batch: Sequence[Inbound]) -> BatchResult:
        """Process ``batch``; a part that fails because of its data is split until the messages
        responsible are found, and those are dead-lettered while the rest is committed."""
        try:
            return await self._retrying(
                "process", lambda: self._in_db("process", self.pipeline.process, batch), isolate=True
            )
        except DataFailure as failure:
            if len(batch) == 1:
                msg = batch[0]
                # Before blaming the message: can the database take any write at all now? A
                # database that is full or read-only fails every message alike. Once it can, the
                # message is tried once more (it may have failed only for the database's sake).
                await self._retrying("probe", lambda: self._in_db("probe", self.pipeline.probe))
                try:
                    return await self._retrying(
                        "process", lambda: self._in_db("process", self.pipeline.process, batch), isolate=True
                    )
                except DataFailure as again:
                    failure = again
                log.error(
                    "message isolated as the cause of a failing batch (%s); dead-lettered", failure.cause_name,
                    exc_info=failure.__cause__,
                    extra={"topic": msg.topic, "partition": msg.partition, "offset": msg.offset},
                )
                self.metrics.on_poison()
                return self.pipeline.poisoned(msg, failure.__cause__)
            log.warning(
                "a batch of %d messages failed because of its data (%s); splitting it to find the cause",
                len(batch), failure.cause_name, extra={"operation": "process", "messages": len(batch)},
            )
            middle = len(batch) // 2
            result = await self._process(batch[:middle])
            return result.merge(await self._process(batch[middle:]))

    async def handle(self, batch: Sequence[Inbound], sent_at: Sequence[float | None] | None = None) -> BatchResult:
        """Process, persist and publish one batch; returns only when all of it is durable.

        ``sent_at`` holds the messages' Kafka timestamps (epoch seconds), for the
        event-to-publication latency.
        """
        async with self._busy:
            started = time.perf_counter()
            self.health.batch_started = time.monotonic()
            result = await self._process(batch)
            await self._retrying("publish", lambda: self._publish_dead_letters(result))
            await self._retrying("publish", self._drain)
            now = time.time()
            topics = [m.topic for m in batch]
            self.metrics.observe_batch(result, topics, time.perf_counter() - started, now)
            self.metrics.observe_published_batch(zip(topics, sent_at or ()), result.event_times, now)
            self.health.last_progress = now
            self.health.batch_started = None
            self.health.idle_since = time.monotonic()
            if result.reviews:
                await self.refresh_reviews()
            return result

    async def publish_dead_letters(self, letters: list[tuple[Inbound, DeadLetter]]) -> None:
        """Publish dead letters made outside a batch (a backfill's lines of no known platform)."""
        await self._retrying("publish", lambda: self._publish_dead_letters(BatchResult(dead_letters=letters)))

    async def drain_outbox(self) -> None:
        """Publish what earlier batches (maybe of a crashed worker) left in the outbox."""
        async with self._busy:
            await self._retrying("publish", self._drain)

    async def _publish_dead_letters(self, result: BatchResult) -> None:
        topic = catalogue.DEADLETTER.name
        acks = []
        for msg, letter in result.dead_letters:
            value = letter.model_dump_json().encode()
            acks.append(await self.send(topic, deadletter_key(msg.key), value))
            self.metrics.on_published(topic, value)
            log.warning(
                "dead-lettered %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, letter.reason_code,
                extra={"topic": msg.topic, "partition": msg.partition, "offset": msg.offset,
                       "reason": letter.reason_code},
            )
        await _acknowledged(acks)

    async def _drain(self) -> None:
        while True:
            claim = await self._in_db("outbox_claim", _Claim.open, self.runtime.engine, OUTBOX_CHUNK)
            try:
                acks = [await self.send(topic, key.encode(), value) for topic, key, value in claim.messages]
                await _acknowledged(acks)
                self.metrics.on_published_many((topic, value) for topic, _key, value in claim.messages)
                for topic in claim.held:
                    self.metrics.on_held_back(topic)
            except BaseException:
                await self._in_db("outbox_rollback", claim.rollback)
                raise
            await self._in_db("outbox_commit", claim.commit)
            if len(claim.entry_ids) < OUTBOX_CHUNK:
                return

    async def refresh_reviews(self) -> None:
        """Read the open review items per kind into their gauge (one small query).

        Runs every few seconds, so it also keeps ``database_ok`` current on an idle worker.
        """
        try:
            counts = await self._in_db("review_count", _open_reviews, self.runtime.engine)
        except SQLAlchemyError as exc:
            self.health.database_ok = False
            log.warning(
                "could not count open review items (%s)", type(getattr(exc, "orig", None) or exc).__name__,
                extra={"operation": "review_count"},
            )
        except Exception:  # noqa: BLE001 - a gauge must never take the worker down
            log.exception("could not count open review items", extra={"operation": "review_count"})
        else:
            self.health.database_ok = True
            self.metrics.set_reviews_open(counts)

    def check_database(self) -> bool:
        """``SELECT 1`` on a pooled connection; runs outside the database thread, so a long batch
        never delays the answer."""
        try:
            _timed(self.metrics, "health_check", _select_one, self.runtime.engine)
        except SQLAlchemyError:
            self.health.database_ok = False
        else:
            self.health.database_ok = True
        return self.health.database_ok

    def is_alive(self) -> bool:
        """False once the heartbeat has started and then stopped (the app's timers no longer run)."""
        beat = self.health.heartbeat
        return beat is None or time.monotonic() - beat < HEARTBEAT_STALE_S

    def not_ready_because(self) -> str | None:
        """Why the worker is not ready, or ``None`` when it is."""
        if not self.health.assigned:
            return "no partitions assigned yet (joining the consumer group or rebalancing)"
        if not self.health.database_ok:
            return "the database does not answer"
        stalled = self.health.stalled(self.runtime.settings.stall_timeout_s)
        if stalled:
            return f"no progress: {stalled}"
        return None

    def is_ready(self) -> bool:
        return self.not_ready_because() is None

    def close(self) -> None:
        self._db.shutdown(wait=True)


def deadletter_key(key: bytes | None) -> bytes | None:
    """The key of a dead letter: the source key, or its digest when it is too long to carry or
    not UTF-8."""
    if key is None:
        return None
    if len(key) <= DEADLETTER_KEY_BOUND:
        try:
            key.decode("utf-8")
        except UnicodeDecodeError:
            pass  # output keys are UTF-8 text (CONTRACT §2)
        else:
            return key
    return b"sha256:" + hashlib.sha256(key).hexdigest().encode("ascii")


async def _acknowledged(acks: list[Awaitable[Any] | None]) -> None:
    """Wait for every broker acknowledgement; the first failure is raised (and the step retried)."""
    pending = [ack for ack in acks if ack is not None]
    if pending:
        await asyncio.gather(*pending)


def _timed(metrics: Metrics, operation: str, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, its duration and (for a database failure) an error counted as ``operation``."""
    started = time.perf_counter()
    failed = False
    try:
        return fn(*args)
    except SQLAlchemyError:
        failed = True
        raise
    finally:
        metrics.observe_db(operation, time.perf_counter() - started, failed=failed)


def _select_one(engine: Any) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _open_reviews(engine: Any) -> dict[str, int]:
    items = schema.review_items
    with engine.connect() as conn:
        rows = conn.execute(
            select(items.c.kind, func.count()).where(items.c.status == "open").group_by(items.c.kind)
        ).all()
    return {kind: count for kind, count in rows}


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
        #: The topic of each value held back for exceeding the message bound.
        self.held: list[str] = []

    @classmethod
    def open(cls, engine: Any, limit: int) -> _Claim:
        conn = writer(engine).connect()
        conn.begin()
        claim = cls(conn, Registry(conn))
        try:
            entries = claim.registry.pending(limit)
            claim.registry.lock_records([e.key for e in entries if e.topic == catalogue.CREDIT_RECORDS.name])
            claim.registry.lock_learners([e.key for e in entries if e.topic == catalogue.LEARNER_IDENTITIES.name])
            # Several rows for one key publish its current value once, after the tombstone that a
            # record's restart asked for, if any.
            restart: dict[tuple[str, str], bool] = {}
            for entry in entries:
                claim.entry_ids.append(entry.id)
                restart[(entry.topic, entry.key)] = restart.get((entry.topic, entry.key), False) or entry.tombstone
            values = claim.registry.published_values(list(restart))
            now = datetime.now(timezone.utc)
            for (topic, key), tombstone_first in restart.items():
                value = values[(topic, key)]
                if value is not None and len(value) + len(key) > OUTPUT_VALUE_BOUND:
                    # CONTRACT §2: never sent. The last value published stays the current one
                    # downstream until this one shrinks; operators see it among held outputs.
                    claim.registry.hold(topic, key, len(value), now)
                    claim.held.append(topic)
                    log.error(
                        "held back the value of %s on %s: %d bytes exceed the message bound", key, topic, len(value),
                        extra={"topic": topic, "size": len(value)},
                    )
                    continue
                if tombstone_first:
                    claim.messages.append((topic, key, None))
                claim.messages.append((topic, key, value))
            claim.registry.release((topic, key) for topic, key, _ in claim.messages)
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


#: Python collects its youngest generation every 700 allocations, and every 100th collection walks
#: the whole heap. A batch allocates hundreds of thousands of short-lived rows and models, so with
#: the defaults the collector took a quarter of the pipeline's time (measured: 3,600 -> 4,800
#: events/s in-process). Cycles are rare here: collecting less often costs little memory.
GC_THRESHOLDS = (10_000, 10, 10)


def tune_gc() -> None:
    """Freeze what start-up built (modules, the app, the engine: never garbage) out of the
    collector's sight, and collect young objects less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class BridgeWorker(faust.Worker):
    """A Faust worker whose stop after SIGTERM or SIGINT is bounded.

    Faust stops gracefully: the batch in flight finishes, its offsets are committed and the
    worker leaves the group. Should that take longer than ``shutdown_timeout_s`` (a database
    that does not answer, a broker that is gone), the process exits anyway. Nothing is lost
    then: offsets are committed only for durable work, so the rest is redelivered.
    """

    def __init__(self, app: faust.App, *, shutdown_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._shutdown_bound = shutdown_timeout_s
        self._watchdog: threading.Timer | None = None

    def _schedule_shutdown(self, signum: Any) -> None:
        if self._watchdog is None:
            self._watchdog = threading.Timer(self._shutdown_bound, self._overran)
            self._watchdog.daemon = True
            self._watchdog.start()
        super()._schedule_shutdown(signum)

    def _overran(self) -> None:
        log.error(
            "the worker did not stop within %.0f s (BRIDGE_SHUTDOWN_TIMEOUT_S); exiting now, "
            "uncommitted work will be redelivered to the next worker",
            self._shutdown_bound,
        )
        logging.shutdown()
        os._exit(SHUTDOWN_OVERRUN_EXIT)


class BridgeMonitor(Monitor):
    """Faust's monitor, also feeding rebalances and committed offsets to the bridge's metrics.

    Faust calls ``on_rebalance_start`` from the consumer's thread when the group starts a
    rebalance (including the first join) and ``on_tp_commit`` after each offset commit.
    """

    def __init__(self, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics

    def on_rebalance_start(self, app: Any) -> dict:
        # Faust's monitor also forgets the committed offsets here: they may be stale for a
        # partition that comes back after another worker held it.
        state = super().on_rebalance_start(app)
        self.metrics.on_rebalance()
        return state

    def committed(self) -> dict[TP, int]:
        """Offsets this worker committed since the last rebalance.

        A copy: Faust calls ``on_rebalance_start`` from the consumer's thread.
        """
        return self.tp_committed_offsets.copy()


async def consumer_lag(consumer: Any, committed: dict[TP, int]) -> dict[tuple[str, int], int]:
    """Lag of each assigned input partition: its end offset minus what this worker committed.

    A partition without a commit since the last rebalance falls back to the consumer's position,
    which Faust set to the group's committed offset when the partition was assigned.
    """
    tps = [tp for tp in consumer.assignment() if tp.topic in _INPUT_TOPICS]
    if not tps:
        return {}
    ends = await asyncio.wait_for(consumer.highwaters(*tps), LAG_CALL_TIMEOUT_S)
    lags: dict[tuple[str, int], int] = {}
    for tp in tps:
        end = ends.get(tp)
        done = committed.get(tp)
        if done is None:
            done = await asyncio.wait_for(consumer.position(tp), LAG_CALL_TIMEOUT_S)
        if end is not None and done is not None:
            lags[(tp.topic, tp.partition)] = max(end - done, 0)
    return lags


def _tune_fetch_wait(app: faust.App, wait_ms: int) -> None:
    """Set the consumer's fetch wait, which Faust 0.15 hard-codes to 1,500 ms.

    An idle fetch waits that long for data, and the embedded broker holds fetches for much of
    it, which puts a floor of about a second under the latency of a quiet stream (measured in
    bench/RESULTS.md). Best effort: if Faust's internals move, the hard-coded wait stays.
    """
    fetcher = getattr(getattr(getattr(app.consumer, "_thread", None), "_consumer", None), "_fetcher", None)
    if fetcher is not None and hasattr(fetcher, "_fetch_max_wait_ms"):
        fetcher._fetch_max_wait_ms = wait_ms
    else:
        log.warning("could not set the consumer's fetch wait (Faust internals changed?); it stays at 1500 ms")


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
        _tune_fetch_wait(app, settings.fetch_max_wait_ms)
        partitions = sum(1 for tp in assigned if tp.topic in _INPUT_TOPICS)
        worker.health.assigned = True
        worker.health.partitions = partitions
        metrics.on_assigned(partitions)
        log.info("assigned %d input partitions", partitions, extra={"partitions": partitions})

    @app.timer(interval=5.0)
    async def _sweep() -> None:
        await worker.drain_outbox()

    @app.timer(interval=HEARTBEAT_S)
    async def _heartbeat() -> None:
        now = time.monotonic()
        if worker.health.heartbeat is not None:
            worker.health.loop_lag_s = max(now - worker.health.heartbeat - HEARTBEAT_S, 0.0)
        worker.health.heartbeat = now

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

    @app.page("/metrics")
    async def _metrics(web: Any, request: Any) -> Any:
        metrics.ready.set(1 if worker.is_ready() else 0)
        return web.bytes(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def _healthz(web: Any, request: Any) -> Any:
        alive = worker.is_alive()
        body = {"status": "ok" if alive else "stalled", "loop_lag_seconds": round(worker.health.loop_lag_s, 3)}
        return web.json(body, status=200 if alive else 503)

    @app.page("/readyz")
    async def _readyz(web: Any, request: Any) -> Any:
        database_ok = await asyncio.get_running_loop().run_in_executor(None, worker.check_database)
        reason = worker.not_ready_because()
        metrics.ready.set(0 if reason else 1)
        body = {
            "ready": reason is None,
            "assigned": worker.health.assigned,
            "partitions": worker.health.partitions,
            "database": database_ok,
            "pending": worker.health.pending,
            "failing": worker.health.failing,
        }
        if reason:
            body["reason"] = reason
        return web.json(body, status=503 if reason else 200)

    return app
