"""What kind of failure a step met: transient (retry), a lost race (redo soon), caused by the data
(isolate the message and dead-letter it) or fatal (stop the worker).

A worker must never retry a data failure forever: the same batch would fail the same way every
time and stop its partitions for good. It must never dead-letter a transient one either: a
database that is down for a minute would turn a minute of traffic into dead letters.
"""

from __future__ import annotations

import asyncio
import sqlite3
from enum import Enum

from sqlalchemy import exc as sa_exc

from bridge.errors import FatalError


class Failure(Enum):
    TRANSIENT = "transient"
    RACE = "race"
    DATA = "data"
    FATAL = "fatal"


#: SQLSTATEs of a transaction that lost a race with another one: serialization failure, deadlock.
RACE_STATES = frozenset({"40001", "40P01"})
#: SQLSTATE classes of a server that is away, overloaded or being stopped: connection exceptions,
#: insufficient resources, operator intervention (admin shutdown), system errors; and a lock or
#: statement timeout. Everything else the server says (data exceptions 22, integrity violations
#: 23, programming errors 42) is caused by what was sent and fails again the same way.
_TRANSIENT_CLASSES = frozenset({"08", "25", "53", "57", "58"})
_TRANSIENT_STATES = frozenset({"55P03", "57014", "40003"})
UNIQUE_VIOLATION = "23505"
#: Class 25 (invalid transaction state) includes 25006, a read-only transaction: a standby after a
#: failover, or a managed server that turned read-only as its storage filled up.
#: SQLSTATEs of a schema or privileges that do not fit the code: a wrong deployment, not bad data.
_FATAL_STATES = frozenset({"42P01", "42501", "42703"})
#: SQLite's primary result codes (``sqlite3.Error.sqlite_errorcode & 0xff``) of a database that is
#: busy, full, read-only or unreachable for now: BUSY, LOCKED, NOMEM, READONLY, INTERRUPT, IOERR,
#: FULL, CANTOPEN, PROTOCOL. CORRUPT (11) and NOTADB (26) are not the data's fault either.
_SQLITE_TRANSIENT_CODES = frozenset({5, 6, 7, 8, 9, 10, 13, 14, 15})
_SQLITE_FATAL_CODES = frozenset({11, 26})
#: Parts of SQLite's messages for a database that is busy or unreachable for now (for errors
#: that carry no result code).
_SQLITE_TRANSIENT = ("locked", "busy", "disk i/o", "unable to open", "out of memory", "interrupted",
                     "disk is full", "readonly", "read-only")


def classify(exc: BaseException) -> Failure:
    """The kind of failure ``exc`` is (see the module's docstring)."""
    if isinstance(exc, FatalError):
        return Failure.FATAL
    if isinstance(exc, sa_exc.SQLAlchemyError):
        return _classify_database(exc)
    if isinstance(exc, (ConnectionError, TimeoutError, asyncio.TimeoutError)):
        return Failure.TRANSIENT
    if isinstance(exc, OSError):
        return Failure.TRANSIENT
    # A bug, or text that an encoder refused (UnicodeEncodeError), or a value out of range:
    # the same message fails the same way next time.
    return Failure.DATA


def is_conflict(exc: BaseException) -> bool:
    """True when a transaction failed because a concurrent one won, not because the database is down."""
    return classify(exc) is Failure.RACE


def _classify_database(exc: sa_exc.SQLAlchemyError) -> Failure:
    orig = getattr(exc, "orig", None)
    if isinstance(orig, FatalError):
        return Failure.FATAL
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return Failure.TRANSIENT
    if isinstance(exc, (sa_exc.TimeoutError, sa_exc.DisconnectionError)):
        return Failure.TRANSIENT
    state = getattr(orig, "sqlstate", None)
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        if code & 0xFF in _SQLITE_TRANSIENT_CODES:
            return Failure.TRANSIENT
        if code & 0xFF in _SQLITE_FATAL_CODES:
            return Failure.FATAL
    if state in _FATAL_STATES or "no such table" in str(orig or "").lower():
        # The registry's tables are gone: the database was replaced or emptied under the worker.
        # Going on would dead-letter every message (or rebuild from nothing): stop instead.
        return Failure.FATAL
    if state:
        if state in RACE_STATES:
            return Failure.RACE
        if state == UNIQUE_VIOLATION:
            # Two workers inserting the same new row at once: the loser redoes its batch (the
            # worker allows few of these in a row: under SERIALIZABLE PostgreSQL reports most
            # such races as 40001, so a repeated one is more likely the batch's own doing).
            return Failure.RACE
        if state[:2] in _TRANSIENT_CLASSES or state in _TRANSIENT_STATES:
            return Failure.TRANSIENT
        return Failure.DATA
    if isinstance(orig, sqlite3.IntegrityError):
        # SQLite serialises writers (each takes the write lock at BEGIN) and every read of a
        # batch sees what the others committed: a constraint it breaks is its own doing.
        return Failure.DATA
    if isinstance(exc, sa_exc.IntegrityError):
        return Failure.RACE
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)):
        message = str(orig or exc).lower()
        if isinstance(orig, sqlite3.Error) and not any(part in message for part in _SQLITE_TRANSIENT):
            # "string or blob too big", "no such table" (the guard reports a replaced database
            # before this), "too many SQL variables": the batch itself is the cause.
            return Failure.DATA
        return Failure.TRANSIENT
    # DataError, ProgrammingError, StatementError wrapping an encoder's ValueError...
    return Failure.DATA
