"""JSON-lines logs: one object per line, event coordinates in, personal data out."""

from __future__ import annotations

import json
import logging
import logging.config

import pytest

from bridge.observability import CONTEXT_FIELDS, JsonLinesFormatter, logging_config


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
