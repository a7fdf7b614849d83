"""Database engine and schema migrations (Alembic), built from settings; nothing at import time."""

from __future__ import annotations

import contextlib
import sqlite3
import weakref
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy import exc as sa_errors
from sqlalchemy.engine import make_url

from bridge.errors import BridgeError, ConfigurationError, DatabaseUnavailable, DataError

MIGRATIONS = Path(__file__).with_name("migrations")

WRITER_OPTION = "bridge_writer"

#: Seconds a connection attempt to a database server may take (PostgreSQL's ``connect_timeout``),
#: unless the URL sets its own.
CONNECT_TIMEOUT_S = 10

#: How long SQLite waits for another writer (another worker or the CLI) before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000


class SQLiteOpener:
    """Opens connections to one SQLite file, creating the file only while :attr:`may_create` allows.

    SQLite creates a missing file on connect; a worker whose file was deleted would then go on
    with an empty registry. So the file is opened with ``mode=rw`` (open, never create) except
    while ``may_create`` is true: for the first connection of an engine built with
    ``create=True``, and during :func:`upgrade`. Once a connection has opened the file, the
    engine never creates it again.
    """

    def __init__(self, path: Path, *, create: bool) -> None:
        self.path = path
        self.may_create = create
        self._uri = path.as_uri()

    def __call__(self) -> sqlite3.Connection:
        mode = "rwc" if self.may_create else "rw"
        if self.may_create:
            # Only what creates the database creates its directory: a read-only command on a
            # mistyped path leaves nothing behind.
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            f"{self._uri}?mode={mode}", uri=True, check_same_thread=False, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000
        )
        self.may_create = False
        return conn


#: The opener of each SQLite file engine, by its dialect (shared by the engine's option engines
#: and kept across ``dispose()``).
_OPENERS: weakref.WeakKeyDictionary[object, SQLiteOpener] = weakref.WeakKeyDictionary()


def sqlite_opener(engine: Engine) -> SQLiteOpener | None:
    """The opener of a SQLite file engine built by :func:`build_engine`; ``None`` for others."""
    return _OPENERS.get(engine.dialect)


@contextlib.contextmanager
def creating(engine: Engine) -> Iterator[None]:
    """Let ``engine`` create its SQLite file if it is missing, for the duration of the block."""
    opener = sqlite_opener(engine)
    if opener is None:
        yield
        return
    opener.may_create = True
    try:
        yield
    finally:
        opener.may_create = False


def build_engine(url: str, *, create: bool = True) -> Engine:
    """An engine for ``url``; SQLite gets WAL mode and a busy timeout so workers can share it.

    A SQLite file is created only by the engine's first connection (with ``create``, the
    default) or by :func:`upgrade`: once the engine has opened the file, a file deleted under it
    is an error, never a new empty database. ``create=False`` leaves creating to :func:`upgrade`.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        if parsed.database and parsed.database != ":memory:" and not parsed.query:
            path = Path(parsed.database).expanduser().absolute()
            opener = SQLiteOpener(path, create=create)
            engine = create_engine(url, creator=opener)
            _OPENERS[engine.dialect] = opener
        else:
            # In memory, or a URL that sets its own SQLite options (``?mode=...&uri=true``): as given.
            if parsed.database and parsed.database != ":memory:" and not parsed.query.get("uri"):
                Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args=connect_args)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:
            # pysqlite's own transaction handling breaks SAVEPOINT; SQLAlchemy emits BEGIN itself.
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn) -> None:
            # Writers take the lock up front (IMMEDIATE): a deferred transaction that later wants
            # to write can fail with "database is locked" without waiting for the busy timeout.
            # Readers stay deferred so they do not queue behind a worker's batch.
            immediate = conn.get_execution_options().get(WRITER_OPTION, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        # psycopg 3 is the driver the project installs.
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    # Sessions in UTC, whatever the server's default: stored state text must not depend on it.
    connect_args: dict[str, object] = {"options": "-c timezone=UTC"}
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        # A server that does not answer fails a connection attempt in seconds, not the minutes of
        # the operating system's TCP timeout.
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    try:
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, connect_args=connect_args)
    except ImportError as exc:
        raise ConfigurationError(
            f"BRIDGE_DATABASE_URL needs the database driver {exc.name or parsed.get_driver_name()}, which is not "
            "installed: use postgresql+psycopg:// (installed with the bridge) or install the driver"
        ) from None


def writer(engine: Engine, *, serializable: bool = False) -> Engine:
    """The engine for transactions that write (on SQLite they take the write lock at BEGIN).

    ``serializable`` asks PostgreSQL for SERIALIZABLE isolation: two workers resolving the same
    learners at once must not both decide on a view without the other's evidence, so one of
    them fails with a serialization error and redoes its batch. SQLite serialises writers anyway.
    """
    options: dict[str, object] = {WRITER_OPTION: True}
    if serializable and engine.dialect.name == "postgresql":
        options["isolation_level"] = "SERIALIZABLE"
    return engine.execution_options(**options)


def ping(engine: Engine) -> None:
    """``SELECT 1`` on a pooled connection: raises when the database does not answer."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (idempotent; safe to run from several workers in turn).

    Creates a missing SQLite file: migrating is how a registry comes to exist.
    """
    with creating(engine):
        command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def missing_sqlite_file(url: str) -> Path | None:
    """The path of the SQLite file ``url`` names when that file does not exist; ``None`` otherwise
    (another database, in memory, or a file that is there)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    if parsed.query.get("uri"):
        return None
    path = Path(parsed.database).expanduser().absolute()
    return None if path.exists() else path


def require_existing(url: str) -> None:
    """For commands that only read: raise :class:`DatabaseUnavailable` when ``url`` names a SQLite
    file that does not exist, before anything could create it."""
    path = missing_sqlite_file(url)
    if path is not None:
        raise DatabaseUnavailable(
            f"the database {path} does not exist: check BRIDGE_DATABASE_URL (a worker's first start or "
            "`bridge db upgrade` creates it)"
        )


def database_failure(exc: sa_errors.SQLAlchemyError, url: str) -> BridgeError:
    """What a command says, in one line, when the database at ``url`` failed with ``exc``: never
    the password, never a traceback."""
    shown = safe_url(url)
    missing = missing_sqlite_file(url)
    if missing is not None:
        return DatabaseUnavailable(
            f"the database {missing} does not exist: check BRIDGE_DATABASE_URL (a worker's first start or "
            "`bridge db upgrade` creates it)"
        )
    cause = _first_line(exc, url)
    if isinstance(exc, (sa_errors.ProgrammingError, sa_errors.NoSuchTableError)) or "no such table" in cause:
        return DataError(
            f"the database at {shown} does not hold the bridge's schema ({cause}): check BRIDGE_DATABASE_URL, "
            "or run `bridge db upgrade`"
        )
    if isinstance(exc, (sa_errors.OperationalError, sa_errors.InterfaceError)):
        return DatabaseUnavailable(
            f"the database at {shown} did not answer ({cause}): check BRIDGE_DATABASE_URL and that the "
            "database is running and reachable"
        )
    if isinstance(exc, sa_errors.ArgumentError):
        return ConfigurationError(f"BRIDGE_DATABASE_URL cannot be used ({type(exc).__name__}): fix it")
    return DatabaseUnavailable(f"the database at {shown} failed ({cause}): check it and BRIDGE_DATABASE_URL")


def safe_url(url: str) -> str:
    """``url`` with its password hidden (``***``), for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa_errors.ArgumentError:
        return "BRIDGE_DATABASE_URL"


def _first_line(exc: sa_errors.SQLAlchemyError, url: str) -> str:
    """The driver's own message, first line, without the password should a driver quote it."""
    original = getattr(exc, "orig", None) or exc
    text = (str(original).strip().splitlines() or [type(original).__name__])[0].strip()
    try:
        password = make_url(url).password
    except sa_errors.ArgumentError:
        password = None
    if password:
        text = text.replace(str(password), "***")
    return f"{type(original).__name__}: {text}" if text else type(original).__name__
