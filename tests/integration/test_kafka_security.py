"""Every client of the bridge over TLS (issue 12, CONTRACT §5): the admin and the tools
(kafka-python) and a whole worker (Faust/aiokafka) through a real TLS terminator in front of the
embedded broker, and a broker certificate the settings do not trust refused with a clear error.

SASL/SCRAM is tested in tests/integration/test_kafka_sasl.py.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.tools.admin import apply_topics
from bridge.cli import main as bridge_cli
from bridge.tools.demo import Progress, WorkerProcess, wait_outbox_empty, wait_until_consumed
from bridge.errors import EXIT_CONFIG, EXIT_UNAVAILABLE
from bridge.settings import Settings
from bridge.store.engine import build_engine
from bridge.tools.topicio import compacted, producer, read_topic
from tests.factories import OU, UNION, encode, ou_event, resident_id, union_event
from tests.integration.harness import free_port
from tests.integration.secure import TlsBroker, make_ca_and_server, refused_worker, stunnel_binary
from topics import catalogue

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory) -> Iterator[TlsBroker]:
    binary = stunnel_binary()
    if binary is None:
        pytest.skip("stunnel4 is not installed and cannot be (not root, or no package registry)")
    broker = TlsBroker(tmp_path_factory.mktemp("tls"), binary).start()
    try:
        yield broker
    finally:
        broker.stop()


def _settings(broker: TlsBroker, **changes) -> Settings:
    return Settings(broker_url=broker.url, kafka_security_protocol="SSL", kafka_ssl_cafile=broker.ca,
                    group_id="bridge-tls", **changes)


def _env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env.update(
        BRIDGE_BROKER_URL=settings.broker_url, BRIDGE_DATABASE_URL=f"sqlite:///{tmp_path}/bridge.db",
        BRIDGE_GROUP_ID=settings.group_id, BRIDGE_WEB_HOST="127.0.0.1", BRIDGE_WEB_PORT=str(free_port()),
        BRIDGE_KAFKA_SECURITY_PROTOCOL="SSL", BRIDGE_KAFKA_SSL_CAFILE=str(settings.kafka_ssl_cafile),
        BRIDGE_BATCH_WINDOW_S="0.1",
    )
    return env


def test_the_tools_and_a_worker_work_over_tls(tls_broker: TlsBroker, tmp_path: Path, monkeypatch, capsys) -> None:
    settings = _settings(tls_broker)
    reports = apply_topics(settings)
    assert {r.name for r in reports} == {t.name for t in catalogue.TOPICS}
    # `bridge topics apply` as an operator runs it: the settings from the environment.
    for name, value in _env(settings, tmp_path).items():
        monkeypatch.setenv(name, value)
    assert bridge_cli(["topics", "apply"]) == 0

    prod = producer(settings)
    prod.send(UNION, key=b"GH1", value=encode(union_event("u-1", member_no="GH1", id_card=resident_id(serial="401"),
                                                          event_type="COURSE_COMPLETE", passed=True, score=90)))
    prod.send(OU, key=b"S1", value=encode(ou_event("o-1", student_no="S1",
                                                  document=("RESIDENT_ID", resident_id(serial="402")))))
    prod.flush()
    prod.close()

    worker = WorkerProcess.start(_env(settings, tmp_path), tmp_path / "worker.log")
    try:
        wait_until_consumed(settings, worker, Progress(), expected=2)
        wait_outbox_empty(build_engine(f"sqlite:///{tmp_path}/bridge.db", create=False), worker)
    finally:
        worker.stop()
    records = [json.loads(v) for v in compacted(read_topic(settings, catalogue.CREDIT_RECORDS.name)).values() if v]
    assert sorted(r["status"] for r in records) == ["AWARDED", "ENROLLED"]

    # A subscriber's tool over TLS too.
    capsys.readouterr()
    assert bridge_cli(["tail", catalogue.CREDIT_RECORDS.name, "-n", "5"]) == 0
    assert "AWARDED" in capsys.readouterr().out


def test_an_untrusted_broker_certificate_is_a_clear_error(tls_broker: TlsBroker, tmp_path: Path, monkeypatch, capsys) -> None:
    other_ca, _cert, _key = make_ca_and_server(tmp_path, "other")
    settings = _settings(tls_broker)
    for name, value in _env(settings, tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BRIDGE_KAFKA_SSL_CAFILE", str(other_ca))
    started = time.monotonic()
    assert bridge_cli(["topics", "apply"]) == EXIT_UNAVAILABLE
    assert time.monotonic() - started < 60
    err = capsys.readouterr().err
    assert "BRIDGE_KAFKA_SSL_CAFILE" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2


def test_a_missing_ca_file_is_a_configuration_error(tls_broker: TlsBroker, tmp_path: Path, monkeypatch, capsys) -> None:
    settings = _settings(tls_broker)
    for name, value in _env(settings, tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BRIDGE_KAFKA_SSL_CAFILE", str(tmp_path / "nope.pem"))
    assert bridge_cli(["topics", "apply"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "BRIDGE_KAFKA_SSL_CAFILE" in err and "cannot be read" in err


def test_a_worker_that_does_not_trust_the_broker_stops_saying_why(tls_broker: TlsBroker, tmp_path: Path) -> None:
    other_ca, _cert, _key = make_ca_and_server(tmp_path, "other")
    env = _env(_settings(tls_broker), tmp_path)
    env["BRIDGE_KAFKA_SSL_CAFILE"] = str(other_ca)
    code, log = refused_worker(env, tmp_path / "refused.log")
    assert code == EXIT_UNAVAILABLE, log[-2000:]
    assert "BRIDGE_KAFKA_SSL_CAFILE" in log.splitlines()[-1]
    assert "CERTIFICATE_VERIFY_FAILED" in log  # the handshake error itself, for the operator
