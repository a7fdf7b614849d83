"""A real worker after real traffic: every metric an operator relies on is exported and plausible."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import BEIJING, OU, UNION, encode, ou_event, resident_id, union_event
from tests.integration.harness import Bridge, free_port
from topics import catalogue

pytestmark = pytest.mark.integration

T0 = datetime(2024, 4, 1, 9, 0, tzinfo=BEIJING)
#: Longest wait for the periodic gauges (lag every 5 s, open reviews every 15 s) to catch up.
GAUGE_WAIT_S = 45.0

Samples = dict[str, list[tuple[dict[str, str], float]]]


@pytest.fixture
def bridge(tmp_path, sqlite_url) -> Iterator[Bridge]:
    b = Bridge(tmp_path, sqlite_url)
    try:
        yield b
    finally:
        b.close()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _scrape(base: str) -> tuple[str, Samples]:
    status, body = _get(f"{base}/metrics")
    assert status == 200
    text = body.decode()
    samples: Samples = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name].append((sample.labels, sample.value))
    return text, samples


def _value(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(v for have, v in samples.get(name, []) if all(have.get(k) == w for k, w in labels.items()))


def _send_traffic(bridge: Bridge) -> dict[str, object]:
    rid, other = resident_id(), resident_id(serial="011")
    bad_checksum = rid[:-1] + ("0" if rid[-1] != "0" else "1")
    messages = [
        (UNION, "GH1", encode(union_event("u-1", member_no="GH1", id_card=rid, when=T0))),
        (UNION, "GH1", encode(union_event("u-2", "COURSE_COMPLETE", member_no="GH1", id_card=rid, passed=True,
                                          score=90, when=T0 + timedelta(days=30)))),
        (OU, "S1", encode(ou_event("o-1", student_no="S1", document=("RESIDENT_ID", rid), when=T0))),
        (OU, "S1", encode(ou_event("o-2", "course.completed", student_no="S1", document=("RESIDENT_ID", rid),
                                   status="FAILED", when=T0 + timedelta(days=20)))),
        # An invalid resident ID: a data-quality problem, the event still counts.
        (UNION, "GH2", encode(union_event("u-3", member_no="GH2", id_card=bad_checksum, name="李四",
                                          mobile="13900139000", when=T0))),
        # The same account with a different valid document: a review item, never a merge.
        (UNION, "GH1", encode(union_event("u-4", member_no="GH1", id_card=other, course="ACFTU-SK-0099",
                                          when=T0 + timedelta(days=1)))),
        # A redelivery and a message that is not JSON.
        (UNION, "GH1", encode(union_event("u-1", member_no="GH1", id_card=rid, when=T0))),
        (UNION, "GH9", b"{not json"),
    ]
    for topic, key, value in messages:
        bridge.send(topic, key, value)
    bridge.flush()
    return {"count": len(messages), "personal": [rid, other, bad_checksum, "13800138000", "13900139000",
                                                   "张", "李四", "GH1", "GH2", "GH9", "S1"]}


def test_a_running_worker_exports_every_operational_metric(bridge: Bridge) -> None:
    sent = _send_traffic(bridge)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.time()
    worker = bridge.start_worker(BRIDGE_WEB_PORT=str(port))
    bridge.settle(worker)
    elapsed = time.time() - started

    # The periodic gauges catch up within a few of their intervals.
    deadline = time.monotonic() + GAUGE_WAIT_S
    while True:
        text, samples = _scrape(base)
        lag_series = samples.get("bridge_consumer_lag_messages", [])
        caught_up = lag_series and all(v == 0 for _, v in lag_series)
        if caught_up and _value(samples, "bridge_review_items_open") >= 1:
            break
        assert time.monotonic() < deadline, f"gauges did not catch up: lag {lag_series}, see {worker.log_path}"
        time.sleep(1.0)

    # Input: every message, by topic; new events by platform and event type; the redelivery.
    assert _value(samples, "bridge_messages_consumed_total") == sent["count"]
    assert _value(samples, "bridge_events_consumed_total", platform="union", event_type="enrolled") == 3
    assert _value(samples, "bridge_events_consumed_total", platform="union", event_type="completed") == 1
    assert _value(samples, "bridge_events_consumed_total", platform="ou", event_type="enrolled") == 1
    assert _value(samples, "bridge_events_consumed_total", platform="ou", event_type="completed") == 1
    assert _value(samples, "bridge_events_duplicate_total") == 1
    # Dead letters by reason; data quality by reason; identity outcomes by method; reviews.
    assert _value(samples, "bridge_dead_letters_total", topic=UNION, reason="not_json") == 1
    assert _value(samples, "bridge_data_quality_problems_total", reason="bad_checksum") == 1
    # GH1, S1 and GH2 were each placed with a learner; which method is the identity rules' business.
    assert _value(samples, "bridge_identity_outcomes_total") >= 3
    assert {labels["method"] for labels, _ in samples["bridge_identity_outcomes_total"]} >= {"account", "resident_id"}
    assert _value(samples, "bridge_review_items_raised_total") == 1
    assert _value(samples, "bridge_review_items_open", kind="conflicting_document") == 1
    # Output: credit records by status, every output message by topic.
    assert _value(samples, "bridge_credit_records_published_total", status="AWARDED") >= 1
    assert _value(samples, "bridge_credit_records_published_total", status="ENROLLED") >= 1
    assert _value(samples, "bridge_messages_published_total", topic=catalogue.DEADLETTER.name) == 1
    assert _value(samples, "bridge_messages_published_total", topic=catalogue.REVIEW.name) == 1
    assert _value(samples, "bridge_messages_published_total", topic=catalogue.CREDIT_RECORDS.name) >= 3
    # Latency: every message's Kafka timestamp to publication, within this test's run time.
    count = _value(samples, "bridge_event_to_publication_seconds_count")
    total = _value(samples, "bridge_event_to_publication_seconds_sum")
    assert count == sent["count"]
    assert 0 < total / count < elapsed + 5
    assert _value(samples, "bridge_event_age_at_publication_seconds_count") == 6  # events processed
    assert _value(samples, "bridge_batch_duration_seconds_count") >= 1
    assert 0 < _value(samples, "bridge_batch_duration_seconds_sum") < elapsed
    assert _value(samples, "bridge_batch_size_messages_sum") == sent["count"]
    # The database: every unit of work timed, none failed.
    assert _value(samples, "bridge_database_operation_duration_seconds_count", operation="process") >= 1
    assert _value(samples, "bridge_database_operation_duration_seconds_count", operation="outbox_claim") >= 1
    assert _value(samples, "bridge_database_operation_duration_seconds_count", operation="review_count") >= 1
    assert samples["bridge_database_errors_total"] and _value(samples, "bridge_database_errors_total") == 0
    # The consumer: one worker holds every input partition, caught up; it joined the group once.
    partitions = sum(bridge.settings.topic_partitions for _ in catalogue.INPUT_TOPICS)
    assert _value(samples, "bridge_assigned_partitions") == partitions
    assert len(samples["bridge_consumer_lag_messages"]) == partitions
    assert {labels["topic"] for labels, _ in samples["bridge_consumer_lag_messages"]} == {
        t.name for t in catalogue.INPUT_TOPICS
    }
    assert _value(samples, "bridge_rebalances_total") >= 1
    assert _value(samples, "bridge_ready") == 1
    assert _value(samples, "bridge_last_batch_timestamp_seconds") >= started

    # No personal value, account number or learner id anywhere in the exposition.
    for value in sent["personal"]:
        assert value not in text
    label_names = {name for series in samples.values() for labels, _ in series for name in labels}
    assert label_names <= {"topic", "partition", "platform", "event_type", "reason", "method", "kind", "status",
                           "operation", "le"}

    status, body = _get(f"{base}/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, body = _get(f"{base}/readyz")
    assert status == 200
    assert json.loads(body) == {
        "ready": True, "assigned": True, "partitions": partitions, "database": True, "pending": 0, "failing": None,
    }
