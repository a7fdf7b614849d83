"""Prometheus metrics: one object over an injected registry, fed from a few named hooks.

Labels carry platforms, event kinds, reasons, methods, statuses and topics only: never an
account, a learner id or any personal value (unbounded or personal label values are forbidden).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from bridge.pipeline import BatchResult

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Every metric the bridge exports, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.events = Counter(
            "bridge_events_consumed_total", "Events processed, by platform and event kind.",
            ["platform", "kind"], registry=registry,
        )
        self.duplicates = Counter(
            "bridge_events_duplicate_total", "Redelivered events recognised and skipped.", registry=registry
        )
        self.dead_letters = Counter(
            "bridge_dead_letters_total", "Messages sent to the dead-letter topic, by reason.",
            ["topic", "reason"], registry=registry,
        )
        self.identity = Counter(
            "bridge_identity_outcomes_total", "Identity decisions, by link method or outcome.",
            ["method"], registry=registry,
        )
        self.data_quality = Counter(
            "bridge_data_quality_problems_total", "Unusable identity evidence, by reason.",
            ["reason"], registry=registry,
        )
        self.reviews = Counter(
            "bridge_review_items_raised_total", "Review items raised for an operator.", registry=registry
        )
        self.published = Counter(
            "bridge_messages_published_total", "Messages published, by output topic.",
            ["topic"], registry=registry,
        )
        self.batch_seconds = Histogram(
            "bridge_batch_duration_seconds", "Time to process and persist one batch.",
            buckets=_LATENCY_BUCKETS, registry=registry,
        )
        self.batch_size = Histogram(
            "bridge_batch_size_events", "Messages per processed batch.",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500), registry=registry,
        )
        self.db_errors = Counter(
            "bridge_database_errors_total", "Database operations that failed and were retried.",
            ["operation"], registry=registry,
        )
        self.ready = Gauge("bridge_ready", "1 when the worker is ready (see /readyz).", registry=registry)

    def observe_batch(self, result: BatchResult, size: int, seconds: float) -> None:
        """Record what one processed batch did."""
        self.batch_seconds.observe(seconds)
        self.batch_size.observe(size)
        for (platform, kind), count in result.processed.items():
            self.events.labels(platform, kind).inc(count)
        self.duplicates.inc(result.duplicates)
        for method, count in result.identity.items():
            self.identity.labels(method).inc(count)
        for reason, count in result.data_quality.items():
            self.data_quality.labels(reason).inc(count)
        self.reviews.inc(result.reviews)
        for _msg, letter in result.dead_letters:
            self.dead_letters.labels(letter.topic, letter.reason_code).inc()
