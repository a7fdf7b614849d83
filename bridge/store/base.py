"""What every repository of the store shares: one connection inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import TypeVar

from sqlalchemy import Connection

T = TypeVar("T")

#: Rows per IN list: well inside every driver's limit on bound parameters.
CHUNK = 400


def as_utc(value: datetime | None) -> datetime | None:
    """Stored times in UTC: SQLite hands back naive ones, PostgreSQL the session's time zone."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Repository:
    """Reads and writes within one open transaction of ``conn``."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.postgres = conn.dialect.name == "postgresql"
