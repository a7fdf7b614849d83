"""Plain Kafka I/O for tooling (demo, simulate, tests): produce, read a topic, consumer lag.

Uses kafka-python; the stream workers themselves use Faust.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import logging

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as kafka_errors

from bridge.errors import DependencyUnavailable
from bridge.kafka import kafka_python_client
from bridge.settings import Settings

#: How long a topic must stay silent, once its end offsets are reached, to count as read.
QUIET_MS = 300
#: How long a tool's client tries to reach a broker before it gives up (kafka-python's own is
#: 30 s): an unreachable broker ends a command with one line within about 10 s.
CONNECT_TIMEOUT_MS = 10_000
#: Longest a send may wait for the broker's metadata or acknowledgement (seconds).
SEND_TIMEOUT_S = 15.0


class _CancelledOnClose(logging.Filter):
    """Drops kafka-python's ERROR for a metadata refresh that closing a client cancelled.

    Nothing failed, but the line would read like an error to an operator.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not any(isinstance(arg, kafka_errors.Cancelled) for arg in args)


def quiet_kafka_close() -> None:
    """Install the filter above once (commands call it at start)."""
    cluster_log = logging.getLogger("kafka.cluster")
    if not any(isinstance(f, _CancelledOnClose) for f in cluster_log.filters):
        cluster_log.addFilter(_CancelledOnClose())


class ReadStalled(DependencyUnavailable, TimeoutError):
    """Reading a topic stopped short of its end offsets: the broker stopped answering fetches."""


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


#: Where a tool connects: the settings (with their TLS and SASL), or a bare bootstrap list.
Target = Settings | Sequence[str]


def producer(target: Target) -> KafkaProducer:
    """A producer that waits for full acknowledgement and keeps per-key order on retries."""
    return KafkaProducer(
        **kafka_python_client(target),
        acks="all",
        linger_ms=5,
        retries=5,
        max_in_flight_requests_per_connection=1,
        bootstrap_timeout_ms=CONNECT_TIMEOUT_MS,
        max_block_ms=int(SEND_TIMEOUT_S * 1000),
    )


def consumer(target: Target, **options: object) -> KafkaConsumer:
    """A consumer whose bootstrapping gives up after ``CONNECT_TIMEOUT_MS`` (``options`` as
    kafka-python's ``KafkaConsumer``)."""
    return KafkaConsumer(**kafka_python_client(target), bootstrap_timeout_ms=CONNECT_TIMEOUT_MS, **options)


def _partitions(consumer: KafkaConsumer, topics: Iterable[str]) -> list[TopicPartition]:
    tps = []
    for topic in topics:
        for partition in sorted(consumer.partitions_for_topic(topic) or ()):
            tps.append(TopicPartition(topic, partition))
    return tps


def read_topic(bootstrap: Target, topic: str, *, timeout_s: float = 10.0) -> list[Message]:
    """Every message currently on ``topic``, partition by partition, up to the end offsets."""
    return list(iter_topic(bootstrap, topic, timeout_s=timeout_s))


def iter_topic(bootstrap: Target, topic: str, *, timeout_s: float = 10.0) -> Iterator[Message]:
    """Every message of ``topic``: up to its end offsets, then on until the topic is quiet.

    Reading on past the end offsets is deliberate: the embedded broker (tansu 0.6) reports a
    partition's latest offset without its most recent produce batch until the next one arrives,
    while fetches return those messages already.
    """
    reader = consumer(bootstrap, enable_auto_commit=False, group_id=None)
    try:
        tps = _partitions(reader, [topic])
        if not tps:
            return
        reader.assign(tps)
        reader.seek_to_beginning(*tps)
        ends = reader.end_offsets(tps)
        while True:
            behind = any(reader.position(tp) < ends[tp] for tp in tps)
            batches = reader.poll(timeout_ms=int(timeout_s * 1000) if behind else QUIET_MS)
            if not batches:
                if behind:
                    raise ReadStalled(f"reading {topic} stalled before its end offsets: check the broker and try again")
                return
            for records in batches.values():
                for r in records:
                    yield Message(r.topic, r.partition, r.offset, r.key, r.value)
    finally:
        reader.close()


def compacted(messages: Iterable[Message]) -> dict[bytes | None, bytes | None]:
    """The latest value of each key (what a compacted topic converges to), tombstones included."""
    latest: dict[bytes | None, bytes | None] = {}
    for msg in messages:
        latest[msg.key] = msg.value
    return latest


def group_lag(bootstrap: Target, group_id: str, topics: Iterable[str]) -> tuple[int, int]:
    """``(committed, end)`` offsets summed over the topics' partitions for a consumer group."""
    reader = consumer(bootstrap, group_id=group_id, enable_auto_commit=False)
    try:
        tps = _partitions(reader, topics)
        ends = reader.end_offsets(tps)
        committed = sum(reader.committed(tp) or 0 for tp in tps)
        return committed, sum(ends.values())
    finally:
        reader.close()
