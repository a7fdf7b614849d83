"""JSON-lines logs: one object per line, event coordinates in, personal data out."""

from __future__ import annotations

import json
import logging
import logging.config

import pytest

from bridge.observability import (
    CONTEXT_FIELDS,
    REDACTED,
    JsonLinesFormatter,
    SecretScrubber,
    logging_config,
    secret_values,
)


def _record(message: str = "event failed", *, exc: BaseException | None = None, **extra: object) -> logging.LogRecord:
    exc_info = None
    if exc is not None:
        try:
            raise exc
        except BaseException as raised:  # noqa: BLE001 - building exc_info
            exc_info = (type(raised), raised, raised.__traceback__)
    record = logging.LogRecord("bridge.pipeline", logging.ERROR, __file__, 1, message, (), exc_info)
    record.__dict__.update(extra)
    return record


def _format(record: logging.LogRecord) -> dict:
    line = JsonLinesFormatter().format(record)
    assert "\n" not in line
    return json.loads(line)


def test_a_line_carries_the_event_coordinates() -> None:
    line = _format(_record(platform="union", event_id="u-1", topic="union.training.events.v1", partition=3, offset=41))
    assert line["level"] == "ERROR" and line["logger"] == "bridge.pipeline" and line["message"] == "event failed"
    assert (line["platform"], line["event_id"], line["topic"], line["partition"], line["offset"]) == (
        "union", "u-1", "union.training.events.v1", 3, 41
    )
    assert line["ts"].endswith("+00:00")


def test_extras_outside_the_context_fields_are_dropped() -> None:
    line = _format(_record(name_digest="abc", full_name="张伟", mobile="13800138000", id_card="110105194912310021"))
    assert "张伟" not in json.dumps(line, ensure_ascii=False)
    assert "13800138000" not in json.dumps(line)
    assert set(line) == {"ts", "level", "logger", "message"}
    assert {"platform", "event_id", "topic", "partition", "offset"} <= set(CONTEXT_FIELDS)


def test_an_exception_about_an_event_keeps_its_type_and_stack_but_not_its_message() -> None:
    secret = "110105194912310021"
    line = _format(_record(exc=ValueError(f"bad number {secret}"), event_id="u-1", offset=7))
    assert line["error"]["type"] == "ValueError"
    assert "test_observability.py" in line["error"]["stack"]
    assert "message" not in line["error"] and secret not in json.dumps(line)


def test_an_exception_not_about_an_event_keeps_its_message() -> None:
    line = _format(_record("database step failed", exc=ConnectionError("connection refused")))
    assert line["error"] == {"type": "ConnectionError", "message": "connection refused", "stack": line["error"]["stack"]}


def test_logging_config_installs_json_lines_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logging.config.dictConfig(logging_config("INFO"))
        logging.getLogger("bridge.worker").info("assigned %d input partitions", 6, extra={"partitions": 6})
        logging.getLogger("kafka.conn").info("connecting")  # kafka-python's chatter stays below WARNING
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [
        {"ts": lines[0]["ts"], "level": "INFO", "logger": "bridge.worker", "message": "assigned 6 input partitions",
         "partitions": 6}
    ]


def test_the_scrubber_replaces_every_configured_secret_in_any_logger_s_line() -> None:
    password, key = "sasl-Pass-9qW2", "Zk3vQ8pL1mX7nR4tB6yC0fH5"
    environ = {"BRIDGE_KAFKA_SASL_PASSWORD": password, "BRIDGE_PSEUDONYM_PREVIOUS_KEYS": json.dumps([key]),
               "BRIDGE_GROUP_ID": "not-a-secret"}
    scrubber = SecretScrubber(secret_values(environ))
    record = logging.LogRecord("kafka.admin.client", logging.DEBUG, __file__, 1,
                               "Starting with configuration: %s", ({"sasl_plain_password": password, "k": key},), None)
    assert scrubber.filter(record)
    message = record.getMessage()
    assert password not in message and key not in message
    assert message.count(REDACTED) == 2 and "sasl_plain_password" in message
    untouched = logging.LogRecord("bridge", logging.INFO, __file__, 1, "group %s", ("not-a-secret",), None)
    assert scrubber.filter(untouched) and untouched.getMessage() == "group not-a-secret"


def test_the_worker_logging_config_scrubs_secrets(monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BRIDGE_DEADLETTER_KEY", "Dl-Key-7hG2kP9sQ4")
    logging.config.dictConfig(logging_config("INFO"))
    logging.getLogger("aiokafka").warning("config %s", {"key": "Dl-Key-7hG2kP9sQ4"})
    out = capsys.readouterr().out
    assert "Dl-Key-7hG2kP9sQ4" not in out and REDACTED in out


def test_a_scrubber_installed_before_the_settings_scrubs_them_all_the_same(monkeypatch) -> None:
    # A handler kept from earlier (pytest's own, or one configured before the settings were read)
    # must scrub the secrets of the environment as it is when a record is logged.
    monkeypatch.delenv("BRIDGE_KAFKA_SASL_PASSWORD", raising=False)
    scrubber = SecretScrubber()
    monkeypatch.setenv("BRIDGE_KAFKA_SASL_PASSWORD", "late-Secret-81kq")
    record = logging.LogRecord("kafka.admin.client", logging.DEBUG, __file__, 1, "config %s",
                               ({"sasl_plain_password": "late-Secret-81kq"},), None)
    assert scrubber.filter(record) and "late-Secret-81kq" not in record.getMessage()
