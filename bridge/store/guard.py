"""The database a worker started with is the one it writes to (issue 11).

A registry holds a random ``registry_id`` (``registry_meta``, made by revision 0003 or by
:func:`ensure_registry_id`). At start-up a worker captures a :class:`RegistryGuard`: that id
and, on SQLite, the (device, inode) of the file. :meth:`RegistryGuard.install` then checks,
inside every writer transaction right after its BEGIN, that the file is still at its path with
the same inode and that the database still holds the same id. Anything else raises
:class:`~bridge.errors.RegistryChanged`, which the worker treats as fatal: it stops without
committing offsets instead of writing identities and record versions into a database that does
not know the ones it already published.

The check costs one ``os.stat`` (SQLite) and one primary-key ``SELECT`` per writer transaction.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError

from bridge.errors import RegistryChanged
from bridge.store import schema
from bridge.store.engine import MIGRATIONS, WRITER_OPTION, current_revision, sqlite_opener, writer

#: The revision that introduced ``registry_meta`` and the registry id.
REGISTRY_ID_REVISION = "0003"

_SELECT_ID = "SELECT value FROM registry_meta WHERE name = 'registry_id'"
#: SQLSTATE of PostgreSQL's undefined_table.
_UNDEFINED_TABLE = "42P01"


class RegistryMissing(RegistryChanged):
    """At start-up: the database has no registry, but the consumer group has committed offsets,
    so the registry those offsets belong to was lost (or this is the wrong database)."""


def shown_url(url: str) -> str:
    """``url`` with its password hidden, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def read_registry_id(conn: Connection) -> str | None:
    """The database's registry id; ``None`` when it has no ``registry_meta`` table or no id row."""
    if not inspect(conn).has_table("registry_meta"):
        return None
    return conn.exec_driver_sql(_SELECT_ID).scalar()


@dataclass(frozen=True)
class RegistryState:
    """What a database holds, seen before a worker starts on it."""

    url: str
    exists: bool
    """False for a SQLite file that is not there (nothing was opened, nothing created)."""
    revision: str | None
    """The Alembic revision of its schema; ``None`` without a schema."""
    registry_id: str | None

    @property
    def predates_registry_id(self) -> bool:
        """A schema older than the registry id: a registry all the same, which 0003 gives an id."""
        if self.revision is None or self.registry_id is not None:
            return False
        script = ScriptDirectory(str(MIGRATIONS))
        return all(rev.revision != REGISTRY_ID_REVISION for rev in script.iterate_revisions(self.revision, "base"))

    @property
    def is_registry(self) -> bool:
        """The database holds a registry (with an id, or with a schema from before ids)."""
        return self.registry_id is not None or self.predates_registry_id

    def describe(self) -> str:
        if not self.exists:
            return "no database file"
        if self.revision is None:
            return "no schema"
        if self.registry_id is None:
            return f"a schema at revision {self.revision} without a registry id"
        return f"registry {self.registry_id} at revision {self.revision}"


def registry_state(engine: Engine) -> RegistryState:
    """Look at ``engine``'s database without creating or changing anything."""
    url = shown_url(engine.url.render_as_string(hide_password=False))
    opener = sqlite_opener(engine)
    if opener is not None and not opener.path.exists():
        return RegistryState(url, False, None, None)
    revision = current_revision(engine)
    with engine.connect() as conn:
        registry_id = read_registry_id(conn)
    return RegistryState(url, True, revision, registry_id)


def ensure_registry_id(engine: Engine) -> tuple[str, bool]:
    """The registry id of a migrated database, made now if its row is missing: ``(id, made)``.

    Revision 0003 makes the id; a row deleted later (a database emptied by hand) is made again
    only by a deliberate start (``bridge db upgrade``, or a first start without offsets).
    """
    with engine.connect() as conn:
        found = read_registry_id(conn)
    if found is not None:
        return found, False
    made = uuid.uuid4().hex
    try:
        with writer(engine).begin() as conn:
            # A table dropped by hand (the schema's revision says it exists) is made again too.
            schema.registry_meta.create(conn, checkfirst=True)
            conn.execute(schema.registry_meta.insert().values(name="registry_id", value=made))
    except IntegrityError:
        pass  # another worker made it first
    with engine.connect() as conn:
        found = read_registry_id(conn)
    assert found is not None
    return found, found == made


def _missing_table(exc: DBAPIError) -> bool:
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == _UNDEFINED_TABLE:
        return True
    return "no such table" in str(orig)


@dataclass(frozen=True)
class RegistryGuard:
    """The identity of the database a worker started with, and the check that it still is."""

    registry_id: str
    url: str
    """The database URL, password hidden."""
    path: Path | None = None
    """SQLite: the file."""
    file_id: tuple[int, int] | None = None
    """SQLite: the file's ``(st_dev, st_ino)`` at start-up."""
    group_id: str | None = None
    """The consumer group whose offsets would have to be reset, for the message."""

    @classmethod
    def capture(cls, engine: Engine, *, group_id: str | None = None) -> RegistryGuard:
        """Remember the registry ``engine`` opens now; :class:`RegistryMissing` when it has none."""
        url = shown_url(engine.url.render_as_string(hide_password=False))
        opener = sqlite_opener(engine)
        path = opener.path if opener is not None else None
        file_id = None
        if path is not None:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                raise RegistryMissing(f"the database file {path} does not exist: run `bridge db upgrade`") from None
            file_id = (st.st_dev, st.st_ino)
        with engine.connect() as conn:
            registry_id = read_registry_id(conn)
        if registry_id is None:
            raise RegistryMissing(f"the database at {url} has no registry id: run `bridge db upgrade`")
        return cls(registry_id, url, path, file_id, group_id)

    def changed(self, what: str) -> RegistryChanged:
        group = f"consumer group {self.group_id}" if self.group_id else "the consumer group"
        return RegistryChanged(
            f"the database at {self.url} is not the one this worker started with (registry {self.registry_id}): "
            f"{what}. The worker stops without committing offsets rather than write to another registry. "
            f"Restore the database it started with and restart the worker; or, to start a fresh registry "
            f"deliberately, run `bridge db upgrade` and reset the offsets of {group} on the input topics so "
            f"the input is replayed into it."
        )

    def check(self, conn: Connection) -> None:
        """Raise :class:`RegistryChanged` unless ``conn`` is on the database captured at start-up."""
        if self.path is not None:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                raise self.changed(f"the file {self.path} was deleted") from None
            if (st.st_dev, st.st_ino) != self.file_id:
                raise self.changed(f"the file {self.path} was replaced by another file")
        try:
            found = conn.exec_driver_sql(_SELECT_ID).scalar()
        except DBAPIError as exc:
            if not _missing_table(exc):
                raise  # the database is down or busy: retried like any database failure
            raise self.changed("its registry_meta table is gone (the database was emptied or replaced)") from None
        if found is None:
            raise self.changed("its registry id is gone (the database was emptied or replaced)")
        if found != self.registry_id:
            raise self.changed(f"it now holds registry {found}")

    def install(self, engine: Engine) -> None:
        """Check every writer transaction of ``engine`` (see :func:`bridge.store.engine.writer`).

        The check runs in the ``begin`` event, after the BEGIN (IMMEDIATE on SQLite) that
        :func:`~bridge.store.engine.build_engine` registered first, so it sees the database the
        transaction writes to. When it fails, the connection is invalidated (closed, never
        returned to the pool: it points at the wrong database, and on SQLite it holds the write
        lock) and the exception reaches the caller as it was raised: SQLAlchemy does not wrap
        exceptions of ``begin`` listeners. A SQLite file deleted under the worker fails new
        connections before any BEGIN; ``handle_error`` turns that failure of a writer connection
        into :class:`RegistryChanged` too.
        """

        def check_writer(conn: Connection) -> None:
            if not conn.get_execution_options().get(WRITER_OPTION, False):
                return
            try:
                self.check(conn)
            except BaseException as exc:
                conn.invalidate(exc if isinstance(exc, Exception) else None)
                raise

        event.listen(engine, "begin", check_writer)

        if self.path is not None:
            path = self.path

            def deleted_file(ctx: Any) -> BaseException | None:
                engine_ = ctx.engine
                if ctx.connection is not None or engine_ is None:
                    return None
                if not engine_.get_execution_options().get(WRITER_OPTION, False) or path.exists():
                    return None
                return self.changed(f"the file {path} was deleted")

            event.listen(engine, "handle_error", deleted_file)
