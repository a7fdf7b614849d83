"""The metrics object on a fresh registry: names, labels and what each hook records."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta, timezone

from prometheus_client import CollectorRegistry

from bridge.metrics import TOMBSTONE, Metrics
from bridge.core.sealing import Sealer
from bridge.pipeline import BatchResult, Inbound, dead_letter
from topics import catalogue

UNION = catalogue.UNION_EVENTS.name
NOW = 1_800_000_000.0

#: Issue 6's metrics, by the name each is exported under.
REQUIRED = {
    "events consumed per platform and event type": ("bridge_events_consumed_total", {"platform", "event_type"}),
    "dead letters by reason": ("bridge_dead_letters_total", {"reason"}),
    "identity outcomes by method": ("bridge_identity_outcomes_total", {"method"}),
    "data-quality problems by reason": ("bridge_data_quality_problems_total", {"reason"}),
    "review items open": ("bridge_review_items_open", set()),
    "credit records published by status": ("bridge_credit_records_published_total", {"status"}),
    "event time to publication": ("bridge_event_to_publication_seconds", set()),
    "latency per batch": ("bridge_batch_duration_seconds", set()),
    "consumer lag per partition": ("bridge_consumer_lag_messages", {"topic", "partition"}),
    "database operation latency": ("bridge_database_operation_duration_seconds", {"operation"}),
    "database errors": ("bridge_database_errors_total", {"operation"}),
    "rebalances": ("bridge_rebalances_total", set()),
}
#: Label names that could carry a person or an account; none may exist.
PERSONAL = ("account", "learner", "name", "phone", "mobile", "member", "student", "document", "id_card", "key")


def _metrics() -> tuple[Metrics, CollectorRegistry]:
    registry = CollectorRegistry()
    return Metrics(registry), registry


def _wrappers(metrics: Metrics) -> dict[str, object]:
    from prometheus_client.metrics import MetricWrapperBase

    return {
        m._name + ("_total" if m._type == "counter" else ""): m  # noqa: SLF001
        for m in vars(metrics).values()
        if isinstance(m, MetricWrapperBase)
    }


def test_every_required_metric_is_exported_with_its_labels() -> None:
    metrics, _ = _metrics()
    wrappers = _wrappers(metrics)
    for what, (name, labels) in REQUIRED.items():
        assert name in wrappers, f"{what}: {name} is not exported"
        assert labels <= set(wrappers[name]._labelnames), what  # noqa: SLF001


def test_names_follow_prometheus_conventions_and_labels_carry_nothing_personal() -> None:
    metrics, registry = _metrics()
    for name, wrapper in _wrappers(metrics).items():
        assert name.startswith("bridge_")
        if wrapper._type == "counter":  # noqa: SLF001
            assert name.endswith("_total")
        if wrapper._type == "histogram" and "seconds" in wrapper._documentation.lower():  # noqa: SLF001
            assert name.endswith("_seconds")
        for label in wrapper._labelnames:  # noqa: SLF001
            assert not any(word in label for word in PERSONAL), f"{name} has label {label}"
    # A second object on its own registry does not collide: the registry is injected, not global.
    Metrics(CollectorRegistry())


def test_known_label_values_start_at_zero() -> None:
    _, registry = _metrics()
    assert registry.get_sample_value("bridge_events_consumed_total", {"platform": "ou", "event_type": "completed"}) == 0
    assert registry.get_sample_value("bridge_credit_records_published_total", {"status": TOMBSTONE}) == 0
    assert registry.get_sample_value("bridge_database_errors_total", {"operation": "process"}) == 0
    assert registry.get_sample_value("bridge_review_items_open", {"kind": "ambiguous_match"}) == 0


def test_observe_batch_records_what_the_batch_did() -> None:
    metrics, registry = _metrics()
    bad = Inbound(UNION, 2, 41, b"GH1", b"{not json")
    result = BatchResult(
        dead_letters=[(bad, dead_letter(bad, "not JSON", "not_json", datetime.now(timezone.utc), Sealer.from_secret("k" * 32)))],
        processed=Counter({("union", "enrolled"): 2, ("ou", "completed"): 1}),
        duplicates=1,
        identity=Counter({"resident_id": 1, "account": 2}),
        data_quality=Counter({"bad_checksum": 1}),
        reviews=1,
        decisions=2,
    )
    metrics.observe_batch(result, [UNION] * 4 + [catalogue.OU_EVENTS.name], 0.25, NOW)
    value = registry.get_sample_value
    assert value("bridge_events_consumed_total", {"platform": "union", "event_type": "enrolled"}) == 2
    assert value("bridge_messages_consumed_total", {"topic": UNION}) == 4
    assert value("bridge_events_duplicate_total") == 1
    assert value("bridge_dead_letters_total", {"topic": UNION, "reason": "not_json"}) == 1
    assert value("bridge_identity_outcomes_total", {"method": "account"}) == 2
    assert value("bridge_data_quality_problems_total", {"reason": "bad_checksum"}) == 1
    assert value("bridge_review_items_raised_total") == 1
    assert value("bridge_operator_decisions_total") == 2
    assert value("bridge_batch_duration_seconds_sum") == 0.25
    assert value("bridge_batch_size_messages_sum") == 5
    assert value("bridge_last_batch_timestamp_seconds") == NOW


def test_publication_latencies_from_kafka_timestamps_and_event_times() -> None:
    metrics, registry = _metrics()
    occurred = datetime.fromtimestamp(NOW, timezone.utc) - timedelta(days=2)
    metrics.observe_published_batch([(UNION, NOW - 1.5), (UNION, None), (UNION, 0.0)], [occurred], NOW)
    assert registry.get_sample_value("bridge_event_to_publication_seconds_count", {"topic": UNION}) == 1
    assert registry.get_sample_value("bridge_event_to_publication_seconds_sum", {"topic": UNION}) == 1.5
    assert registry.get_sample_value("bridge_event_age_at_publication_seconds_sum") == 2 * 86400


def test_published_credit_records_are_counted_by_status() -> None:
    metrics, registry = _metrics()
    records = catalogue.CREDIT_RECORDS.name
    metrics.on_published(records, json.dumps({"record_id": "r1", "status": "AWARDED"}).encode())
    metrics.on_published(records, None)
    metrics.on_published(records, b"not json")
    metrics.on_published(records, json.dumps({"status": "GH2101000123"}).encode())  # never a label value
    metrics.on_published(catalogue.REVIEW.name, b"{}")
    value = registry.get_sample_value
    assert value("bridge_credit_records_published_total", {"status": "AWARDED"}) == 1
    assert value("bridge_credit_records_published_total", {"status": TOMBSTONE}) == 1
    assert value("bridge_credit_records_published_total", {"status": "unknown"}) == 2
    assert value("bridge_credit_records_published_total", {"status": "GH2101000123"}) is None
    assert value("bridge_messages_published_total", {"topic": records}) == 4
    assert value("bridge_messages_published_total", {"topic": catalogue.REVIEW.name}) == 1


def test_a_batch_of_compact_records_is_counted_by_status() -> None:
    metrics, registry = _metrics()
    records = catalogue.CREDIT_RECORDS.name
    # What the bridge sends: compact JSON. A quote in a string value is escaped, so a lookalike of
    # the status field inside one is not read as the status.
    decoy = json.dumps({"record_id": 'r2"status":"AWARDED', "status": "FAILED"}, separators=(",", ":")).encode()
    metrics.on_published_many([
        (records, b'{"record_id":"r1","learner_id":"l1","status":"ENROLLED","credits":0.0}'),
        (records, decoy),
        (records, None),
        (catalogue.LEARNER_IDENTITIES.name, b'{"learner_id":"l1"}'),
    ])
    value = registry.get_sample_value
    assert value("bridge_credit_records_published_total", {"status": "ENROLLED"}) == 1
    assert value("bridge_credit_records_published_total", {"status": "FAILED"}) == 1
    assert value("bridge_credit_records_published_total", {"status": "AWARDED"}) == 0
    assert value("bridge_credit_records_published_total", {"status": TOMBSTONE}) == 1
    assert value("bridge_messages_published_total", {"topic": records}) == 3
    assert value("bridge_messages_published_total", {"topic": catalogue.LEARNER_IDENTITIES.name}) == 1


def test_lag_series_follow_the_assignment() -> None:
    metrics, registry = _metrics()
    metrics.set_consumer_lag({(UNION, 0): 5, (UNION, 1): 0})
    metrics.set_consumer_lag({(UNION, 1): 7})
    assert registry.get_sample_value("bridge_consumer_lag_messages", {"topic": UNION, "partition": "0"}) is None
    assert registry.get_sample_value("bridge_consumer_lag_messages", {"topic": UNION, "partition": "1"}) == 7


def test_gauges_and_database_hooks() -> None:
    metrics, registry = _metrics()
    metrics.set_reviews_open({"conflicting_document": 3})
    metrics.observe_db("process", 0.02, failed=False)
    metrics.observe_db("process", 0.5, failed=True)
    metrics.on_rebalance()
    metrics.on_assigned(6)
    value = registry.get_sample_value
    assert value("bridge_review_items_open", {"kind": "conflicting_document"}) == 3
    assert value("bridge_review_items_open", {"kind": "ambiguous_match"}) == 0
    assert value("bridge_database_operation_duration_seconds_count", {"operation": "process"}) == 2
    assert value("bridge_database_errors_total", {"operation": "process"}) == 1
    assert value("bridge_rebalances_total") == 1
    assert value("bridge_assigned_partitions") == 6
