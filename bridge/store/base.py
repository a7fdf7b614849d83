"""What every repository of the store shares: one connection inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from typing import TypeVar

from sqlalchemy import ColumnElement, Connection, and_, false, or_

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


def pairs_in(first: ColumnElement, second: ColumnElement, pairs: Iterable[tuple[str, str]]) -> ColumnElement[bool]:
    """``(first, second) IN pairs`` written so that indexes are used.

    SQLite plans a row-value ``IN (VALUES ...)`` as a scan of the whole table (measured: 4 s for
    200 accounts among a million), while one ``second IN (...)`` per value of ``first`` is an
    index search. The first column has few values (platforms, document kinds).
    """
    grouped: dict[str, list[str]] = {}
    for a, b in pairs:
        grouped.setdefault(a, []).append(b)
    if not grouped:
        return false()
    return or_(*(and_(first == a, second.in_(sorted(set(bs)))) for a, bs in sorted(grouped.items())))


class Repository:
    """Reads and writes within one open transaction of ``conn``."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.postgres = conn.dialect.name == "postgresql"
