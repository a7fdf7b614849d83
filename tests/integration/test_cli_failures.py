"""Commands that fail clearly against Kafka (issue 15): an unreachable broker ends every tool with one
line, the right exit code and no traceback within seconds (not kafka-python's 30 s); and
``bridge tail | head`` ends quietly. The failures that need no broker are in
tests/unit/test_cli_failures.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert

from bridge.tools.admin import apply_topics
from bridge.tools.broker import EmbeddedBroker, free_port
from bridge.errors import EXIT_BROKEN_PIPE, EXIT_UNAVAILABLE
from bridge.settings import Settings
from bridge.store import schema as t
from bridge.store.engine import build_engine, upgrade
from bridge.tools.topicio import producer
from tests.operators import write_keys
from topics import catalogue

pytestmark = pytest.mark.integration

PASSWORD = "Zq7-unreachable-broker-password-Wx"
#: Generous: each command gives up after about 10 s (15 s for the admin client), and they run at once.
BOUND_S = 40.0


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("BRIDGE_")}
    env.update(settings)
    return env


def _start(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen[str], float]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bridge", *argv], env=env, cwd=cwd, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    return process, time.monotonic()


@pytest.fixture
def registry_with_an_open_review(tmp_path: Path) -> tuple[str, Path]:
    """A SQLite registry with one open review item whose candidate has an account, and a signing key."""
    url = f"sqlite:///{tmp_path / 'bridge.db'}"
    engine = build_engine(url)
    try:
        upgrade(engine)
        now = datetime(2024, 4, 1, tzinfo=UTC)
        with engine.begin() as conn:
            conn.execute(insert(t.accounts).values(
                platform="ou", account="S2", learner_id="lrn_candidate", method="document", linked_at=now,
                event_id="o-1", first_at=now, first_event_id="o-1",
            ))
            conn.execute(insert(t.review_items).values(
                review_id="rv_unreachable", kind="ambiguous_match", platform="union", account="GH1",
                candidates=["lrn_candidate"], raised_at=now, event_id="u-1", status="open",
            ))
    finally:
        engine.dispose()
    _trusted, signing = write_keys(tmp_path / "operators")
    return url, signing["op-17"]


def test_an_unreachable_broker_ends_every_tool_with_one_line(tmp_path: Path, registry_with_an_open_review) -> None:
    url, signing_key = registry_with_an_open_review
    port = free_port()  # nothing listens there
    env = _env(
        BRIDGE_BROKER_URL=f"kafka://127.0.0.1:{port}",
        BRIDGE_DATABASE_URL=url,
        BRIDGE_OPERATOR_SIGNING_KEY=str(signing_key),
        # A password in the settings must never be printed, whatever fails.
        BRIDGE_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        BRIDGE_KAFKA_SASL_MECHANISM="SCRAM-SHA-256",
        BRIDGE_KAFKA_SASL_USERNAME="operator",
        BRIDGE_KAFKA_SASL_PASSWORD=PASSWORD,
    )
    commands = [
        ["tail", catalogue.CREDIT_RECORDS.name],
        ["transcript", "lrn_candidate"],
        ["export", "lrn_candidate", "--format", "clr"],
        ["simulate", "--count", "5"],
        ["review", "link", "rv_unreachable", "--learner", "lrn_candidate", "--by", "op-17"],
        ["review", "reject", "rv_unreachable", "--by", "op-17"],
        ["topics", "apply"],
        ["topics", "apply", "--check"],
    ]
    # At once: each waits for its own timeout, and nothing else.
    started = [(argv, *_start(argv, env, tmp_path)) for argv in commands]
    for argv, process, began in started:
        out, err = process.communicate(timeout=120)
        took = time.monotonic() - began
        assert process.returncode == EXIT_UNAVAILABLE, (argv, process.returncode, err)
        assert took < BOUND_S, (argv, took)
        lines = err.strip().splitlines()
        assert len(lines) == 1, (argv, err)
        line = lines[0]
        assert "Traceback" not in err and line.startswith("bridge: "), (argv, err)
        assert f"no Kafka broker answered at 127.0.0.1:{port}" in line and "BRIDGE_BROKER_URL" in line, (argv, line)
        assert PASSWORD not in out + err, argv
        if argv[0] == "review":
            assert "the decision was not published" in line, line
        if argv[0] != "topics":
            assert out == "", (argv, out)
    # The refused decisions left the review open: nothing was decided.
    engine = build_engine(url, create=False)
    try:
        with engine.connect() as conn:
            assert conn.execute(t.review_items.select()).one().status == "open"
    finally:
        engine.dispose()


def test_a_worker_with_an_unreachable_broker_stops_with_one_line(tmp_path: Path) -> None:
    env = _env(
        BRIDGE_BROKER_URL=f"kafka://127.0.0.1:{free_port()}",
        BRIDGE_DATABASE_URL=f"sqlite:///{tmp_path / 'bridge.db'}",
        BRIDGE_WEB_PORT=str(free_port()),
    )
    process, began = _start(["worker"], env, tmp_path)
    _out, err = process.communicate(timeout=120)
    assert process.returncode == EXIT_UNAVAILABLE, err
    assert time.monotonic() - began < BOUND_S
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "no Kafka broker answered" in err


@pytest.fixture(scope="module")
def broker_with_messages(tmp_path_factory) -> Iterator[str]:
    """An embedded broker whose credit.records.v1 holds far more than a pipe's buffer."""
    with EmbeddedBroker(log_dir=tmp_path_factory.mktemp("broker")) as broker:
        settings = Settings(broker_url=broker.url)
        apply_topics(settings, [catalogue.CREDIT_RECORDS])
        send = producer(settings)
        try:
            filler = "x" * 1000
            for n in range(600):
                value = json.dumps({"record_id": f"cr_{n}", "note": filler}).encode()
                send.send(catalogue.CREDIT_RECORDS.name, key=f"cr_{n}".encode(), value=value)
            send.flush()
        finally:
            send.close()
        yield broker.url


@pytest.mark.parametrize("options", [["--from-beginning"], ["-n", "500"]])
def test_tail_into_head_ends_quietly(broker_with_messages: str, tmp_path: Path, options: list[str]) -> None:
    env = _env(BRIDGE_BROKER_URL=broker_with_messages)
    tail = subprocess.Popen(
        [sys.executable, "-m", "bridge", "tail", catalogue.CREDIT_RECORDS.name, *options],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    head = subprocess.Popen(["head", "-1"], stdin=tail.stdout, stdout=subprocess.PIPE)
    assert tail.stdout is not None
    tail.stdout.close()  # only head reads it now: when head exits, tail's writes fail
    first, _ = head.communicate(timeout=60)
    _, err = tail.communicate(timeout=60)
    assert first.decode().startswith(f"--- {catalogue.CREDIT_RECORDS.name}  partition ")
    assert err.decode() == "", err.decode()
    assert tail.returncode in (0, EXIT_BROKEN_PIPE)
