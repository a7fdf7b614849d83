"""Prometheus metrics: one object over an injected registry, fed from a few named hooks.

Labels carry platforms, event types, reasons, methods, statuses, topics and partitions only:
never an account, a learner id or any personal value (unbounded or personal label values are
forbidden). Names follow Prometheus conventions: ``_total`` counters, ``_seconds`` histograms.
"""

from __future__ import annotations

import collections
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from bridge.core import platforms
from bridge.core.events import DocumentProblem, EventKind
from bridge.core.records import CreditStatus, LinkMethod, ReviewKind
from bridge.pipeline import BatchResult
from topics import catalogue

log = logging.getLogger(__name__)

#: Seconds: a batch of a few hundred events takes tens of milliseconds to a few seconds.
_BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Seconds from an event's Kafka timestamp to its publication: sub-second when caught up, up to
#: hours while a backlog drains after an outage, which the top buckets keep visible.
_END_TO_END_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
#: Seconds from an event's own time (when the learner acted, per the platform) to publication:
#: platforms deliver late and backfills replay months, so the buckets reach a quarter.
_DAY_S = 86400.0
_EVENT_AGE_BUCKETS = (1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, _DAY_S / 4, _DAY_S, 7 * _DAY_S, 30 * _DAY_S, 90 * _DAY_S)
#: Seconds: one statement-sized unit of work on a healthy database is milliseconds.
_DB_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Messages per batch, up to ten times the default batch size.
_SIZE_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000)

#: The ``status`` label of a credit-record tombstone (a retired record id).
TOMBSTONE = "tombstone"
#: The ``operation`` labels of the database metrics: the worker's units of work.
DB_OPERATIONS = ("process", "probe", "outbox_claim", "outbox_commit", "outbox_rollback", "review_count", "health_check")


class Metrics:
    """Every metric the bridge exports, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        # -- input ---------------------------------------------------------------------------
        self.consumed = Counter(
            "bridge_messages_consumed_total",
            "Input messages whose batch is durable (processed, duplicate or dead-lettered), by topic.",
            ["topic"], registry=registry,
        )
        self.events = Counter(
            "bridge_events_consumed_total", "New events processed, by platform and event type.",
            ["platform", "event_type"], registry=registry,
        )
        self.duplicates = Counter(
            "bridge_events_duplicate_total", "Redelivered events recognised and skipped.", registry=registry
        )
        self.dead_letters = Counter(
            "bridge_dead_letters_total", "Messages sent to the dead-letter topic, by source topic and reason.",
            ["topic", "reason"], registry=registry,
        )
        self.poisoned = Counter(
            "bridge_poison_messages_total",
            "Messages that passed validation but made their batch fail, isolated by splitting the batch "
            "and dead-lettered (reason unprocessable).", registry=registry,
        )
        # -- decisions -----------------------------------------------------------------------
        self.identity = Counter(
            "bridge_identity_outcomes_total", "Identity decisions, by link method or outcome (merge).",
            ["method"], registry=registry,
        )
        self.data_quality = Counter(
            "bridge_data_quality_problems_total", "Unusable identity evidence, by reason.",
            ["reason"], registry=registry,
        )
        self.reviews = Counter(
            "bridge_review_items_raised_total", "Review items raised for an operator.", registry=registry
        )
        self.decisions = Counter(
            "bridge_operator_decisions_total", "Operator decisions on review items applied.", registry=registry
        )
        self.reviews_open = Gauge(
            "bridge_review_items_open", "Review items waiting for an operator (read from the database), by kind.",
            ["kind"], registry=registry,
        )
        # -- output --------------------------------------------------------------------------
        self.published = Counter(
            "bridge_messages_published_total", "Messages the broker acknowledged, by output topic.",
            ["topic"], registry=registry,
        )
        self.credit_records = Counter(
            "bridge_credit_records_published_total",
            f"Credit records published, by status ({TOMBSTONE} for a retired record id).",
            ["status"], registry=registry,
        )
        self.held_back = Counter(
            "bridge_outputs_held_back_total",
            "Output values not published because they exceed the message bound, by topic "
            "(kept in the database as held outputs until they shrink).",
            ["topic"], registry=registry,
        )
        self.end_to_end = Histogram(
            "bridge_event_to_publication_seconds",
            "From an input message's Kafka timestamp to the publication of its batch's results.",
            ["topic"], buckets=_END_TO_END_BUCKETS, registry=registry,
        )
        self.event_age = Histogram(
            "bridge_event_age_at_publication_seconds",
            "From an event's own time (occurTime / occurred_at) to the publication of its results.",
            buckets=_EVENT_AGE_BUCKETS, registry=registry,
        )
        # -- the worker ----------------------------------------------------------------------
        self.batch_seconds = Histogram(
            "bridge_batch_duration_seconds", "Time to process, persist and publish one batch.",
            buckets=_BATCH_BUCKETS, registry=registry,
        )
        self.batch_size = Histogram(
            "bridge_batch_size_messages", "Messages per processed batch.", buckets=_SIZE_BUCKETS, registry=registry,
        )
        self.db_seconds = Histogram(
            "bridge_database_operation_duration_seconds", "Database units of work, by operation.",
            ["operation"], buckets=_DB_BUCKETS, registry=registry,
        )
        self.db_errors = Counter(
            "bridge_database_errors_total", "Database operations that failed (and were retried), by operation.",
            ["operation"], registry=registry,
        )
        self.lag = Gauge(
            "bridge_consumer_lag_messages",
            "Messages on an assigned input partition not yet committed by this worker.",
            ["topic", "partition"], registry=registry,
        )
        self.assigned = Gauge(
            "bridge_assigned_partitions", "Input partitions assigned to this worker.", registry=registry
        )
        self.rebalances = Counter(
            "bridge_rebalances_total", "Consumer-group rebalances this worker took part in.", registry=registry
        )
        self.ready = Gauge("bridge_ready", "1 when the worker is ready (see /readyz).", registry=registry)
        self.last_batch = Gauge(
            "bridge_last_batch_timestamp_seconds", "Unix time the last batch became durable.", registry=registry
        )
        self._zero_known_labels()

    def _zero_known_labels(self) -> None:
        # Series for every known label value exist from the start, reading 0: rate() and the
        # alert rules then see an increase from the first event, and dashboards show a zero.
        for platform in platforms.names():
            for kind in EventKind:
                self.events.labels(platform, kind.value)
        for method in (*(m.value for m in LinkMethod), "merge"):
            self.identity.labels(method)
        for problem in DocumentProblem:
            self.data_quality.labels(problem.value)
        for status in (*(s.value for s in CreditStatus), TOMBSTONE):
            self.credit_records.labels(status)
        for spec in catalogue.OUTPUT_TOPICS:
            self.published.labels(spec.name)
        for spec in (catalogue.CREDIT_RECORDS, catalogue.LEARNER_IDENTITIES):
            self.held_back.labels(spec.name)
        for spec in catalogue.INPUT_TOPICS:
            self.consumed.labels(spec.name)
        for operation in DB_OPERATIONS:
            self.db_errors.labels(operation)
        self.set_reviews_open({})

    # -- hooks -------------------------------------------------------------------------------

    def observe_batch(self, result: BatchResult, topics: Sequence[str], seconds: float, now: float) -> None:
        """Record what one durable batch did; ``topics`` are its messages' source topics."""
        self.batch_seconds.observe(seconds)
        self.batch_size.observe(len(topics))
        for topic, count in collections.Counter(topics).items():
            self.consumed.labels(topic).inc(count)
        for (platform, event_type), count in result.processed.items():
            self.events.labels(platform, event_type).inc(count)
        self.duplicates.inc(result.duplicates)
        for method, count in result.identity.items():
            self.identity.labels(method).inc(count)
        for reason, count in result.data_quality.items():
            self.data_quality.labels(reason).inc(count)
        self.reviews.inc(result.reviews)
        self.decisions.inc(result.decisions)
        for _msg, letter in result.dead_letters:
            self.dead_letters.labels(letter.topic, letter.reason_code).inc()
        self.last_batch.set(now)

    def observe_published_batch(
        self, sent: Iterable[tuple[str, float | None]], event_times: Iterable[datetime], now: float
    ) -> None:
        """A batch's results were published at ``now`` (epoch seconds).

        ``sent`` holds each message's ``(topic, Kafka timestamp)``; ``event_times`` the
        platforms' own times of the events processed.
        """
        for topic, timestamp in sent:
            if timestamp:  # 0 or None: the producer set no timestamp
                self.end_to_end.labels(topic).observe(max(now - timestamp, 0.0))
        for occurred in event_times:
            self.event_age.observe(max(now - occurred.timestamp(), 0.0))

    def on_published(self, topic: str, value: bytes | None) -> None:
        """One message acknowledged by the broker; credit records are counted by status."""
        self.on_published_many([(topic, value)])

    def on_published_many(self, messages: Iterable[tuple[str, bytes | None]]) -> None:
        """Messages acknowledged by the broker, counted once per label."""
        per_topic: collections.Counter[str] = collections.Counter()
        per_status: collections.Counter[str] = collections.Counter()
        for topic, value in messages:
            per_topic[topic] += 1
            if topic == catalogue.CREDIT_RECORDS.name:
                per_status[_credit_status(value)] += 1
        for topic, count in per_topic.items():
            self.published.labels(topic).inc(count)
        for status, count in per_status.items():
            self.credit_records.labels(status).inc(count)

    def on_poison(self) -> None:
        self.poisoned.inc()

    def on_held_back(self, topic: str) -> None:
        self.held_back.labels(topic).inc()

    def observe_db(self, operation: str, seconds: float, *, failed: bool) -> None:
        self.db_seconds.labels(operation).observe(seconds)
        if failed:
            self.db_errors.labels(operation).inc()

    def set_reviews_open(self, by_kind: Mapping[str, int]) -> None:
        """Open review items per kind; kinds with none read 0 rather than vanish."""
        for kind in ReviewKind:
            self.reviews_open.labels(kind.value).set(by_kind.get(kind.value, 0))

    def set_consumer_lag(self, lags: Mapping[tuple[str, int], int]) -> None:
        """Replace the lag series with ``(topic, partition) -> messages`` of the current assignment."""
        # No await between clear and set: a scrape never sees the gauge half-filled.
        self.lag.clear()
        for (topic, partition), lag in lags.items():
            self.lag.labels(topic, str(partition)).set(lag)

    def on_assigned(self, partitions: int) -> None:
        self.assigned.set(partitions)

    def on_rebalance(self) -> None:
        self.rebalances.inc()


_STATUSES = frozenset(s.value for s in CreditStatus)


_STATUS_FIELD = b'"status":"'


def _credit_status(value: bytes | None) -> str:
    if value is None:
        return TOMBSTONE
    # The bridge's own compact JSON: find the top-level field instead of parsing the whole record
    # (a quote inside a string value is escaped, so this text cannot occur inside one).
    start = value.find(_STATUS_FIELD)
    if start >= 0:
        start += len(_STATUS_FIELD)
        status = value[start:value.find(b'"', start)].decode("utf-8", "replace")
    else:
        try:
            status = json.loads(value)["status"]
        except (ValueError, KeyError, TypeError):
            status = None
    if status not in _STATUSES:
        # Bounded label values only, whatever reaches the wire.
        log.warning("published a credit record without a known status")
        return "unknown"
    return status

