"""Secrets never appear in logs, errors or ``/metrics`` (issue 12): a real worker at DEBUG level,
given distinctive keys and a password, processing good and bad traffic."""

from __future__ import annotations

import urllib.request

import pytest

from bridge.tools.broker import free_port
from tests.factories import OU, UNION, encode, ou_event, resident_id, union_event
from tests.integration.harness import Bridge
from topics import catalogue

pytestmark = pytest.mark.integration

SECRETS = {
    "BRIDGE_PSEUDONYM_KEY": "Pk7wQ2zLx9Rv4Tn8Yb3Mc6Hd1Jf5Gs0Ua",
    "BRIDGE_DEADLETTER_KEY": "Dl4Xe9Wq2Rt7Yu1Io6Pa3Sd8Fg5Hj0Kz",
    "BRIDGE_KAFKA_SASL_PASSWORD": "Sp3Vb8Nm1Qw6Er9Ty2Ui5Op0As4Df7Gh",
}


def test_no_secret_reaches_the_logs_the_metrics_or_the_topics(bridge: Bridge) -> None:
    port = free_port()
    worker = bridge.start_worker(BRIDGE_WEB_PORT=str(port), BRIDGE_LOG_LEVEL="DEBUG", **SECRETS)
    bridge.send(UNION, "GH1", encode(union_event("u-1", member_no="GH1", id_card=resident_id(serial="301"))))
    bridge.send(OU, "S1", encode(ou_event("o-1", student_no="S1", document=("RESIDENT_ID", resident_id(serial="302")))))
    bridge.send(UNION, "GH2", b'{"msgId": "u-2", "memberNo": ')  # bad input: a dead letter is made and sealed
    bridge.settle(worker)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as response:
        ready = response.read().decode()
    assert bridge.dead_letters(), "the bad message was not dead-lettered"
    published = b"".join((m.value or b"") + (m.key or b"") for spec in catalogue.TOPICS for m in bridge.topic(spec))
    worker.stop()
    log = worker.log_path.read_text(errors="replace")
    assert "DEBUG" in log or "INFO" in log, "the worker wrote no log to check"
    for name, secret in SECRETS.items():
        for part in (secret, secret[:12], secret[-12:]):
            assert part not in log, f"{name} appears in the worker's log"
            assert part not in metrics, f"{name} appears on /metrics"
            assert part not in ready, f"{name} appears on /readyz"
            assert part.encode() not in published, f"{name} appears on a topic"

