"""One batch of input in, processed, persisted and published: the stream worker's own job.

Delivery is at-least-once with idempotent effects. :meth:`StreamWorker.handle` returns only when
the batch's effects are in the database and its dead letters and outbox rows are acknowledged by
the broker, so its offsets may be committed then; a database or broker failure is retried with
backoff (:mod:`bridge.stream.retry`), never skipped. A message that makes its batch fail is found
by splitting the batch and dead-lettered, while the rest is committed.

It knows Faust only through ``send``: the backfill drives it too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from bridge.bootstrap import Runtime
from bridge.core.records import DeadLetter
from bridge.pipeline import BatchResult, Inbound
from bridge.stream import LOGGER
from bridge.stream.dbthread import DatabaseThread
from bridge.stream.health import Health, check_database, refresh_reviews
from bridge.stream.publisher import Publisher, Send
from bridge.stream.retry import DataFailure, Retrier

log = logging.getLogger(LOGGER)


class StreamWorker:
    """Processes batches and publishes their results; knows Faust only through ``send``."""

    def __init__(self, runtime: Runtime, send: Send) -> None:
        self.runtime = runtime
        self.pipeline = runtime.pipeline
        self.metrics = runtime.metrics
        self.send = send
        self.health = Health()
        self.db = DatabaseThread(self.metrics)
        self.retrying = Retrier(self.health)
        self.publisher = Publisher(send, self.metrics, self.db, runtime.units)
        self._busy = asyncio.Lock()

    async def handle(self, batch: Sequence[Inbound], sent_at: Sequence[float | None] | None = None) -> BatchResult:
        """Process, persist and publish one batch; returns only when all of it is durable.

        ``sent_at`` holds the messages' Kafka timestamps (epoch seconds), for the
        event-to-publication latency.
        """
        async with self._busy:
            started = time.perf_counter()
            self.health.batch_started = time.monotonic()
            result = await self._process(batch)
            await self.retrying("publish", lambda: self.publisher.dead_letters(result.dead_letters))
            await self.retrying("publish", self.publisher.drain)
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

    async def _process(self, batch: Sequence[Inbound]) -> BatchResult:
        """Process ``batch``; a part that fails because of its data is split until the messages
        responsible are found, and those are dead-lettered while the rest is committed."""
        try:
            return await self.retrying(
                "process", lambda: self.db.run("process", self.pipeline.process, batch), isolate=True
            )
        except DataFailure as failure:
            if len(batch) == 1:
                msg = batch[0]
                # Before blaming the message: can the database take any write at all now? A
                # database that is full or read-only fails every message alike. Once it can, the
                # message is tried once more (it may have failed only for the database's sake).
                await self.retrying("probe", lambda: self.db.run("probe", self.pipeline.probe))
                try:
                    return await self.retrying(
                        "process", lambda: self.db.run("process", self.pipeline.process, batch), isolate=True
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

    async def publish_dead_letters(self, letters: list[tuple[Inbound, DeadLetter]]) -> None:
        """Publish dead letters made outside a batch (a backfill's lines of no known platform)."""
        await self.retrying("publish", lambda: self.publisher.dead_letters(letters))

    async def drain_outbox(self) -> None:
        """Publish what earlier batches (maybe of a crashed worker) left in the outbox."""
        async with self._busy:
            await self.retrying("publish", self.publisher.drain)

    async def refresh_reviews(self) -> None:
        """Read the open review items per kind into their gauge (:func:`~bridge.stream.health.refresh_reviews`)."""
        await refresh_reviews(self.health, self.metrics, self.db, self.runtime.units.reader())

    def check_database(self) -> bool:
        """Whether the database answers now (see :func:`~bridge.stream.health.check_database`)."""
        return check_database(self.health, self.metrics, self.runtime.engine)

    def is_alive(self) -> bool:
        return self.health.alive()

    def not_ready_because(self) -> str | None:
        """Why the worker is not ready, or ``None`` when it is."""
        return self.health.not_ready_because(self.runtime.settings.stall_timeout_s)

    def is_ready(self) -> bool:
        return self.not_ready_because() is None

    def close(self) -> None:
        self.db.close()
