"""The harness's Kafka I/O (aiokafka): preload, paced sending, committed offsets, reading outputs.

The embedded broker (tansu) answers ListOffsets(latest) with less than the true end of a
partition, so nothing here trusts end offsets: the ends of the inputs come from the producer's
acknowledgements, and outputs are read until an expected count or until they stay quiet.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bridge.tools.simulate import SimMessage

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Produced:
    """An input message as the broker acknowledged it; ``timestamp_ms`` is its CreateTime."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int


@dataclass(frozen=True)
class Consumed:
    """An output message; ``timestamp_ms`` is the CreateTime its producer (the system) stamped."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    headers: tuple[tuple[str, bytes], ...]
    received: float

    def header(self, name: str) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)


def ends_of(produced: Iterable[Produced]) -> dict[tuple[str, int], int]:
    """The end offset (last offset + 1) of every partition written to."""
    ends: dict[tuple[str, int], int] = {}
    for p in produced:
        ends[(p.topic, p.partition)] = max(ends.get((p.topic, p.partition), 0), p.offset + 1)
    return ends


async def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()


async def preload(bootstrap: str, messages: Sequence[SimMessage], progress: Progress) -> list[Produced]:
    """Send ``messages`` as fast as the broker takes them (batched), waiting for every ack."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        pending = []
        for i, msg in enumerate(messages, start=1):
            pending.append(await producer.send(msg.topic, msg.value, key=msg.key))
            if i % 5000 == 0:
                progress(f"preloading input: {i}/{len(messages)} messages")
        acks = await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return [Produced(a.topic, a.partition, a.offset, a.timestamp) for a in acks]


async def paced(bootstrap: str, messages: Sequence[SimMessage], rate: float, progress: Progress) -> list[Produced]:
    """Send ``messages`` at ``rate`` per second, each as soon as its slot comes (no batching wait).

    Pacing is against the start time, so a late wake-up is caught up instead of drifting.
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    try:
        pending = []
        start = time.monotonic()
        for i, msg in enumerate(messages):
            wait = start + i / rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            pending.append(await producer.send(msg.topic, msg.value, key=msg.key))
            if (i + 1) % 1000 == 0:
                progress(f"sending at {rate:g}/s: {i + 1}/{len(messages)} messages")
        acks = await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return [Produced(a.topic, a.partition, a.offset, a.timestamp) for a in acks]


class Committed:
    """Reads a consumer group's committed offsets, over one connection for many reads."""

    def __init__(self, bootstrap: str, group_id: str) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False)

    async def __aenter__(self) -> Committed:
        await self.consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.consumer.stop()

    async def of(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The committed offset of each partition (0 where the group committed nothing)."""
        found = {}
        for topic, partition in partitions:
            offset = await self.consumer.committed(TopicPartition(topic, partition))
            found[(topic, partition)] = offset or 0
        return found


async def read_all(
    bootstrap: str, topics: Sequence[str], *, expected: int | None, quiet_s: float = 3.0, timeout_s: float = 120.0
) -> list[Consumed]:
    """Every message on ``topics``: until ``expected`` were read, or none came for ``quiet_s``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = []
        for topic in topics:
            for partition in sorted(consumer.partitions_for_topic(topic) or await _partitions(consumer, topic)):
                tps.append(TopicPartition(topic, partition))
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        found: list[Consumed] = []
        deadline = time.monotonic() + timeout_s
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            if expected is not None and len(found) >= expected:
                break
            if expected is None and time.monotonic() - last_new > quiet_s:
                break
            if expected is not None and time.monotonic() - last_new > max(quiet_s, 10.0):
                break  # fewer than expected: the caller reports the shortfall
            batches = await consumer.getmany(timeout_ms=500)
            now = time.time()
            for records in batches.values():
                for r in records:
                    found.append(Consumed(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp,
                                          tuple(r.headers or ()), now))
                    last_new = time.monotonic()
        return found
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka has no public refresh
    return consumer.partitions_for_topic(topic) or set()
