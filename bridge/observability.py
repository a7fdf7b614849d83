"""Structured logs: one JSON object per line, carrying where an event came from and nothing personal.

A log line is for finding a message again, not for reading its content: it carries the event's
platform, its id and its topic coordinates (passed in ``extra``), never a name, phone or
document number. Two rules keep it so even when a caller slips:

- only the keys in :data:`CONTEXT_FIELDS` are copied from ``extra``; anything else is dropped;
- an exception logged about an event (a record with an ``event_id`` or ``offset``) keeps its type
  and stack but not its message, since a parser's or validator's message may quote the input.
"""

from __future__ import annotations

import json
import logging
import os
import traceback
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

#: ``extra`` keys copied into the JSON line: coordinates, reasons and counters only.
CONTEXT_FIELDS: tuple[str, ...] = (
    "platform",
    "event_id",
    "topic",
    "partition",
    "offset",
    "reason",
    "operation",
    "retry_in_s",
    "batch_size",
    "duration_s",
    "partitions",
    "count",
    "status",
)

#: Keys whose presence marks a record as being about one event (see the module docstring).
_EVENT_KEYS = ("event_id", "offset")


class JsonLinesFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message and its context."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_FIELDS:
            value = record.__dict__.get(key)
            if value is not None:
                line[key] = value if isinstance(value, (str, int, float, bool)) else str(value)
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, exc, tb = record.exc_info
            error: dict[str, Any] = {"type": exc_type.__name__}
            if not any(k in record.__dict__ for k in _EVENT_KEYS):
                error["message"] = str(exc)
            # Frames only (file, line, function, source line): no local values, no message.
            error["stack"] = "".join(traceback.format_tb(tb)).rstrip()
            line["error"] = error
        return json.dumps(line, ensure_ascii=False, default=str)


#: What a secret in a log line becomes.
REDACTED = "**********"


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The values of the secret settings (``SecretStr`` fields) in ``environ``: each whole value,
    and each item of a JSON list of them (the previous keys)."""
    from bridge.settings import secret_variables

    environ = os.environ if environ is None else environ
    values: list[str] = []
    for name in secret_variables():
        raw = environ.get(name, "")
        if not raw:
            continue
        values.append(raw)
        try:
            items = json.loads(raw)
        except ValueError:
            continue
        if isinstance(items, list):
            values.extend(item for item in items if isinstance(item, str))
    return values


class SecretScrubber(logging.Filter):
    """Replaces every configured secret in a record's message by :data:`REDACTED`.

    A handler filter, so it sees the records of every library: kafka-python, for one, logs its
    whole configuration (the SASL password included) when ``BRIDGE_LOG_LEVEL=DEBUG``. Without
    ``secrets`` given, it scrubs the secret settings of the environment as they are when a record
    is logged (read again only when one of those variables changed), so a handler installed
    before the settings were known still scrubs them.
    """

    def __init__(self, secrets: Iterable[str] | None = None) -> None:
        super().__init__()
        self._fixed = None if secrets is None else _longest_first(secrets)
        self._environment: tuple[str, ...] | None = None
        self._from_environment: list[str] = []

    @property
    def secrets(self) -> list[str]:
        if self._fixed is not None:
            return self._fixed
        from bridge.settings import secret_variables

        current = tuple(os.environ.get(name, "") for name in secret_variables())
        if current != self._environment:
            self._environment, self._from_environment = current, _longest_first(secret_values())
        return self._from_environment

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self.secrets
        if secrets:
            message = record.getMessage()
            if any(secret in message for secret in secrets):
                for secret in secrets:
                    message = message.replace(secret, REDACTED)
                record.msg, record.args = message, ()
        return True


def _longest_first(secrets: Iterable[str]) -> list[str]:
    # Longest first, so a secret that contains another is replaced whole; very short values
    # would redact ordinary words (and are refused as keys anyway).
    return sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)


def scrub_secrets(logger: logging.Logger | None = None) -> None:
    """Add a :class:`SecretScrubber` to every handler of ``logger`` (the root by default)."""
    scrubber = SecretScrubber()
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, SecretScrubber) for f in handler.filters):
            handler.addFilter(scrubber)


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` mapping: JSON lines on stdout at ``level``.

    Given to Faust as the app's ``logging_config``, so the worker installs it when it starts
    (Faust replaces the root handlers with whatever its worker is told to use).
    """
    return {
        "version": 1,
        # Loggers created at import time (every module's ``log``) must keep logging.
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonLinesFormatter"}},
        "filters": {"secrets": {"()": f"{__name__}.SecretScrubber"}},
        "handlers": {
            "stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout",
                       "filters": ["secrets"]}
        },
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {
            # kafka-python narrates every connection at INFO; aiokafka and Faust say what matters.
            "kafka": {"level": "WARNING"},
            "alembic": {"level": "WARNING"},
        },
    }


def configure_logging(level: str = "INFO") -> None:
    """Install :func:`logging_config` now (for commands that do not run a Faust worker)."""
    import logging.config

    logging.config.dictConfig(logging_config(level))
