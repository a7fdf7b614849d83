"""Every client of the bridge against a broker that requires SASL/SCRAM (issue 12, CONTRACT §5).

The broker is the embedded tansu behind a SCRAM gate (``tests/integration/sasl_proxy.py``: tansu
0.6 cannot require authentication itself), and for SASL_SSL behind stunnel too. A worker, the
topic administration, the producer of the harness, an operator's signed decision and a
subscriber's tools all authenticate (SCRAM-SHA-512 and -256); a wrong password is one clear
line, from a command and from a worker, never a hang and never the password.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest

from bridge.cli import main as bridge_cli
from bridge.core.records import learner_id_for
from bridge.errors import EXIT_CONFIG
from tests.integration.harness import Bridge, kafka_security_env
from tests.integration.secure import SaslBroker, refused_worker, stunnel_binary
from tests.integration.test_identity import family_phone, learner_of, method_of, operate_on
from topics import catalogue

pytestmark = pytest.mark.integration

WORKER, OPERATOR = "bridge-worker", "bridge-operator"
PASSWORDS = {WORKER: "worker-pass-Vb83kQz1", OPERATOR: "operator-pass-Hn27xWd4"}
WRONG = "not-the-password-Zx81"


@pytest.fixture(params=["SASL_PLAINTEXT", "SASL_SSL"])
def sasl_broker(request, tmp_path) -> Iterator[SaslBroker]:
    stunnel = None
    if request.param == "SASL_SSL":
        stunnel = stunnel_binary()
        if stunnel is None:
            pytest.skip("stunnel4 is not installed and cannot be (not root, or no package registry)")
    broker = SaslBroker(tmp_path / "broker", dict(PASSWORDS), stunnel).start()
    try:
        yield broker
    finally:
        broker.stop()


def _security(broker: SaslBroker, user: str, password: str) -> dict:
    # Both mechanisms are exercised: SHA-512 in the clear, SHA-256 over TLS.
    mechanism = "SCRAM-SHA-256" if broker.stunnel else "SCRAM-SHA-512"
    settings = broker.settings(user, password, mechanism)
    fields = ("kafka_security_protocol", "kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password",
              "kafka_ssl_cafile")
    return {name: getattr(settings, name) for name in fields}


def test_a_worker_an_operator_and_the_tools_work_over_sasl(sasl_broker: SaslBroker, tmp_path: Path, monkeypatch,
                                                          capsys) -> None:
    bridge = Bridge(tmp_path / "bridge", f"sqlite:///{tmp_path}/bridge.db", broker=sasl_broker,
                    **_security(sasl_broker, WORKER, PASSWORDS[WORKER]))
    try:
        family_phone(bridge)  # topics applied, events produced, a worker ran: all authenticated
        (review,) = bridge.reviews()

        # The operator signs and publishes a decision as the operators' Kafka user.
        operate_on(bridge, monkeypatch)
        for name, value in kafka_security_env(bridge.settings.with_overrides(
                kafka_sasl_username=OPERATOR, kafka_sasl_password=PASSWORDS[OPERATOR])).items():
            monkeypatch.setenv(name, value)
        chosen = learner_id_for("ou", "S2")
        assert bridge_cli(["review", "link", review["review_id"], "--learner", chosen, "--by", "op-17"]) == 0
        bridge.settle()
        learner = learner_of(bridge, "union", "GH1")
        assert learner["learner_id"] == chosen and method_of(learner, "GH1") == "operator"

        # A subscriber's tools.
        capsys.readouterr()
        assert bridge_cli(["tail", catalogue.LEARNER_IDENTITIES.name, "--from-beginning", "-n", "50"]) == 0
        assert chosen in capsys.readouterr().out
        assert bridge_cli(["transcript", chosen, "--json"]) == 0
        transcript = json.loads(capsys.readouterr().out)
        assert transcript["learner_id"] == chosen
        assert {"platform": "union", "account": "GH1"} in transcript["accounts"]
        assert bridge_cli(["export", chosen, "--format", "xapi"]) == 0
        assert chosen in "".join(capsys.readouterr())  # read over SASL; nothing completed to export

        # The tools that write: simulated traffic, a backfill, and dead letters read back.
        assert bridge_cli(["simulate", "--count", "40", "--seed", "3"]) == 0
        history = tmp_path / "history.jsonl"
        history.write_bytes(b'{"msgId": "u-sasl-1"}\n')  # a bad line: dead-lettered with file and line
        for name, value in bridge.env().items():
            if name.startswith("BRIDGE_") and "KAFKA" not in name:
                monkeypatch.setenv(name, value)
        assert bridge_cli(["backfill", str(history), "--state-dir", str(tmp_path / "state")]) == 0
        capsys.readouterr()
        assert bridge_cli(["deadletters", "list", "--json"]) == 0
        listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert any(d["partition"] == -1 and d["offset"] == 1 and d["reason_code"] == "missing_field" for d in listed)
    finally:
        bridge.close()
    users = {user for user, ok in sasl_broker.gate.attempts if ok}
    assert users == {WORKER, OPERATOR}
    assert not [user for user, ok in sasl_broker.gate.attempts if not ok]


def test_a_wrong_password_is_one_clear_line(sasl_broker: SaslBroker, tmp_path: Path, monkeypatch, capsys) -> None:
    settings = sasl_broker.settings(OPERATOR, WRONG)
    for name, value in kafka_security_env(settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BRIDGE_BROKER_URL", settings.broker_url)
    for argv in (["topics", "apply"], ["tail", catalogue.CREDIT_RECORDS.name, "-n", "1"]):
        capsys.readouterr()
        started = time.monotonic()
        assert bridge_cli(argv) == EXIT_CONFIG, argv
        assert time.monotonic() - started < 60
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err
        assert "refused the credentials" in err and "BRIDGE_KAFKA_SASL_PASSWORD" in err, err
        assert WRONG not in err and "Traceback" not in err
    assert (OPERATOR, False) in sasl_broker.gate.attempts


def test_debug_logs_of_a_command_never_show_the_password(sasl_broker: SaslBroker, monkeypatch, caplog,
                                                          capsys) -> None:
    settings = sasl_broker.settings(OPERATOR, PASSWORDS[OPERATOR])
    for name, value in kafka_security_env(settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BRIDGE_BROKER_URL", settings.broker_url)
    monkeypatch.setenv("BRIDGE_LOG_LEVEL", "DEBUG")
    caplog.set_level(logging.DEBUG)
    assert bridge_cli(["topics", "apply", "--check"]) in (0, 1)
    assert "sasl_plain_password" in caplog.text  # kafka-python logged its configuration...
    assert PASSWORDS[OPERATOR] not in caplog.text  # ...without the password
    captured = capsys.readouterr()
    assert PASSWORDS[OPERATOR] not in captured.out + captured.err


def test_a_worker_with_a_wrong_password_stops_saying_why(sasl_broker: SaslBroker, tmp_path: Path) -> None:
    # A registry that exists already: the worker goes straight to its Kafka clients.
    bridge = Bridge(tmp_path / "bridge", f"sqlite:///{tmp_path}/bridge.db", broker=sasl_broker,
                    **_security(sasl_broker, WORKER, PASSWORDS[WORKER]))
    try:
        with mock.patch.dict(os.environ, bridge.env(), clear=True):
            assert bridge_cli(["db", "upgrade"]) == 0
        env = bridge.env(BRIDGE_KAFKA_SASL_PASSWORD=WRONG)
    finally:
        bridge.broker = _Kept()  # the broker is the fixture's to stop
        bridge.close()
    code, log = refused_worker(env, tmp_path / "refused.log")
    assert code == EXIT_CONFIG, log[-2000:]
    last = log.strip().splitlines()[-1]
    assert "refused the credentials" in last and "BRIDGE_KAFKA_SASL_PASSWORD" in last, last
    assert WRONG not in log


class _Kept:
    def stop(self) -> None:
        pass
