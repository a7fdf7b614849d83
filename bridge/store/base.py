"""What every repository of the store shares: one connection inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from typing import TypeVar

from sqlalchemy import ColumnElement, Connection, Table, and_, any_, bindparam, false, insert, or_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError

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


def members(column: ColumnElement, values: Iterable[object], postgres: bool) -> ColumnElement[bool]:
    """``column IN values``; on PostgreSQL ``column = ANY(:array)``, one parameter however many values.

    An expanding ``IN`` renders one parameter per value at every execution and gives every list
    length a statement of its own; the array form is one statement, prepared once (measured: 3.6
    against 0.95 ms of client CPU for 400 keys, and the same index search on the server).
    """
    if postgres:
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(list(values))


def pairs_in(first: ColumnElement, second: ColumnElement, pairs: Iterable[tuple[str, str]],
             postgres: bool = False) -> ColumnElement[bool]:
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
    return or_(*(and_(first == a, members(second, sorted(set(bs)), postgres)) for a, bs in sorted(grouped.items())))


def bulk_insert(conn: Connection, table: Table, rows: Sequence[dict[str, object]]) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``table``: one ``COPY`` on PostgreSQL, one
    ``executemany`` elsewhere.

    psycopg runs an ``executemany`` as one execution per row on the server; ``COPY`` streams the
    rows into one (measured on 1,000 facts: 72 against 26 ms, and 40 against 12.5 ms of client
    CPU). Values pass through the columns' bind processors, as SQLAlchemy would.
    """
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table), list(rows))
        return
    names = list(rows[0])
    processors = [table.c[name].type.bind_processor(conn.dialect) for name in names]
    prepare = conn.dialect.identifier_preparer
    columns = ", ".join(prepare.quote(name) for name in names)
    statement = f"COPY {prepare.format_table(table)} ({columns}) FROM STDIN"
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    driver_error = conn.dialect.loaded_dbapi.Error
    try:
        with dbapi.cursor() as cursor:
            # The COPY bypasses SQLAlchemy's execution: tell the engine's cursor listeners (statement
            # counters, loggers) that one statement runs, as an executemany would have.
            conn.dispatch.before_cursor_execute(conn, cursor, statement, list(rows), None, True)
            with cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row([row[name] if process is None else process(row[name])
                                    for name, process in zip(names, processors)])
    except driver_error as exc:
        # Wrapped as SQLAlchemy wraps a failed statement, so that the worker tells a lost race
        # (serialization failure: retry) from bad data (isolate) exactly as for any other.
        raise DBAPIError.instance(statement, None, exc, driver_error, dialect=conn.dialect) from exc


class Repository:
    """Reads and writes within one open transaction of ``conn``."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.postgres = conn.dialect.name == "postgresql"
