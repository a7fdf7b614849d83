"""The registry guard (issue 11): a worker writes only to the database it started with.

On both backends: the same database passes; a replaced or emptied one raises ``RegistryChanged``
(unwrapped, through the engine and through the pipeline); a deleted SQLite file raises it too and
is not created again. And start-up: a database without a registry is created only when the
consumer group has no committed offsets.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

import bridge.tools.admin
from bridge.bootstrap import Runtime, build_runtime
from bridge.errors import FatalError, RegistryChanged
from bridge.pipeline import Inbound
from bridge.settings import Settings
from bridge.store.engine import build_engine, current_revision, head_revision, upgrade, writer
from bridge.store.guard import RegistryGuard, RegistryMissing, ensure_registry_id, registry_state
from tests.factories import UNION, union_event


def _is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _path(url: str) -> Path:
    return Path(make_url(url).database or "")


@pytest.fixture
def guarded(database_url: str) -> Iterator[tuple[Engine, RegistryGuard]]:
    """A migrated engine whose writer transactions are checked by a guard captured now."""
    engine = build_engine(database_url, create=False)
    upgrade(engine)
    guard = RegistryGuard.capture(engine, group_id="bridge-test")
    guard.install(engine)
    try:
        yield engine, guard
    finally:
        engine.dispose()


def _write(engine: Engine) -> None:
    with writer(engine, serializable=True).begin() as conn:
        conn.execute(text("SELECT 1"))


def _replace_registry(database_url: str) -> None:
    """Put another registry where the first one was (as a restore of the wrong backup would)."""
    if _is_sqlite(database_url):
        path = _path(database_url)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    else:
        other = build_engine(database_url)
        with other.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        other.dispose()
    other = build_engine(database_url, create=False)
    upgrade(other)
    other.dispose()


def test_the_same_database_passes(guarded: tuple[Engine, RegistryGuard]) -> None:
    engine, guard = guarded
    for _ in range(3):
        _write(engine)
    with engine.connect() as conn:  # readers are not checked
        conn.execute(text("SELECT 1"))
    assert len(guard.registry_id) == 32


def test_a_replaced_database_raises_registry_changed(guarded: tuple[Engine, RegistryGuard], database_url: str) -> None:
    engine, guard = guarded
    _write(engine)
    _replace_registry(database_url)
    with pytest.raises(RegistryChanged) as raised:
        _write(engine)
    message = str(raised.value)
    assert guard.registry_id in message
    assert "bridge db upgrade" in message and "reset the offsets of consumer group bridge-test" in message
    assert ("replaced by another file" in message) if _is_sqlite(database_url) else ("now holds registry" in message)
    # Every later writer transaction fails too (the pool holds no connection that would pass).
    with pytest.raises(RegistryChanged):
        _write(engine)


def test_a_failed_check_leaves_no_lock_or_transaction_behind(
    guarded: tuple[Engine, RegistryGuard], database_url: str
) -> None:
    engine, _guard = guarded
    _write(engine)
    other = build_engine(database_url)
    with other.begin() as o:
        o.execute(text("UPDATE registry_meta SET value = 'another'"))
    # The explicit form the worker's outbox claim uses: connect, then begin.
    conn = writer(engine).connect()
    with pytest.raises(RegistryChanged):
        conn.begin()
    # Not even closed yet, the failed connection holds no lock and no open transaction.
    try:
        if _is_sqlite(database_url):
            raw = sqlite3.connect(_path(database_url), timeout=0.5)
            raw.execute("BEGIN IMMEDIATE")
            raw.rollback()
            raw.close()
        else:
            with other.connect() as o:
                open_transactions = o.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state LIKE 'idle in transaction%'"
                )).scalar()
            assert open_transactions == 0
    finally:
        conn.close()
        other.dispose()


@pytest.mark.parametrize("change", ["row changed", "row deleted", "table recreated", "table dropped"])
def test_a_changed_registry_row_or_table_raises(
    guarded: tuple[Engine, RegistryGuard], database_url: str, change: str
) -> None:
    engine, guard = guarded
    statements = {
        "row changed": ["UPDATE registry_meta SET value = 'another' WHERE name = 'registry_id'"],
        "row deleted": ["DELETE FROM registry_meta"],
        "table recreated": [
            "DROP TABLE registry_meta",
            "CREATE TABLE registry_meta (name VARCHAR(64) PRIMARY KEY, value VARCHAR(256) NOT NULL)",
        ],
        "table dropped": ["DROP TABLE registry_meta"],
    }[change]
    other = build_engine(database_url)
    with other.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    other.dispose()
    with pytest.raises(RegistryChanged) as raised:
        _write(engine)
    assert guard.registry_id in str(raised.value)


def test_a_database_that_is_down_is_not_a_changed_registry(guarded: tuple[Engine, RegistryGuard], monkeypatch) -> None:
    """Only a missing table or id means another database; other failures are retried as before."""
    engine, guard = guarded

    class Down(Exception):
        pass

    def failing(conn, statement, *args, **kwargs):
        raise OperationalError(statement, {}, Down("server closed the connection unexpectedly"))

    with engine.connect() as conn:
        monkeypatch.setattr(type(conn), "exec_driver_sql", failing)
        with pytest.raises(OperationalError):
            guard.check(conn)


@pytest.mark.parametrize("pool", ["pooled connection", "new connection"])
def test_a_deleted_sqlite_file_raises_registry_changed_and_is_not_created(sqlite_url: str, pool: str) -> None:
    engine = build_engine(sqlite_url, create=False)
    upgrade(engine)
    RegistryGuard.capture(engine).install(engine)
    _write(engine)
    path = _path(sqlite_url)
    path.unlink()
    if pool == "new connection":
        engine.dispose()
    with pytest.raises(RegistryChanged) as raised:
        _write(engine)
    assert not isinstance(raised.value, OperationalError)
    assert f"the file {path} was deleted" in str(raised.value)
    # Readers get SQLite's own error; nothing creates the file again.
    engine.dispose()
    with pytest.raises(OperationalError):
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    assert not path.exists()
    engine.dispose()


def test_an_engine_creates_its_sqlite_file_only_once(sqlite_url: str) -> None:
    path = _path(sqlite_url)
    engine = build_engine(sqlite_url)  # the default: the first connection may create the file
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert path.exists()
    engine.dispose()
    path.unlink()
    with pytest.raises(OperationalError):
        engine.connect()
    assert not path.exists()
    lazy = build_engine(sqlite_url, create=False)
    with pytest.raises(OperationalError):
        lazy.connect()
    assert not path.exists()
    upgrade(lazy)  # migrating is what creates a registry
    assert current_revision(lazy) == head_revision()
    lazy.dispose()
    engine.dispose()


def _settings(database_url: str, **extra) -> Settings:
    return Settings(database_url=database_url, group_id="bridge-test", **extra)


def _inbound(msg_id: str, offset: int) -> Inbound:
    value = json.dumps(union_event(msg_id)).encode()
    return Inbound(UNION, 0, offset, b"GH2101000123", value)


def test_registry_changed_reaches_the_pipeline_caller_unwrapped(database_url: str) -> None:
    runtime: Runtime = build_runtime(_settings(database_url))
    try:
        assert runtime.guard is not None
        runtime.pipeline.process([_inbound("m-1", 0)])
        _replace_registry(database_url)
        with pytest.raises(RegistryChanged) as raised:
            runtime.pipeline.process([_inbound("m-2", 1)])
        assert type(raised.value) is RegistryChanged
        assert isinstance(raised.value, FatalError)
    finally:
        runtime.engine.dispose()


# -- start-up ---------------------------------------------------------------------------------


@pytest.fixture
def group_offsets(monkeypatch) -> dict[tuple[str, int], int]:
    """What the broker answers for the group's committed offsets (no broker is asked)."""
    offsets: dict[tuple[str, int], int] = {}
    monkeypatch.setattr(bridge.tools.admin, "committed_offsets", lambda settings, topics: dict(offsets))
    return offsets


def test_a_first_start_creates_the_registry(database_url: str, group_offsets) -> None:
    runtime = build_runtime(_settings(database_url, broker_url="kafka://127.0.0.1:1"))
    try:
        assert current_revision(runtime.engine) == head_revision()
        assert runtime.guard is not None and registry_state(runtime.engine).registry_id == runtime.guard.registry_id
    finally:
        runtime.engine.dispose()


@pytest.mark.parametrize("before", ["no schema", "schema without registry id", "schema without registry_meta"])
def test_a_start_without_registry_but_with_committed_offsets_is_refused(
    database_url: str, group_offsets, before: str
) -> None:
    if before != "no schema":
        engine = build_engine(database_url)
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM registry_meta" if before.endswith("id") else "DROP TABLE registry_meta"))
        engine.dispose()
    group_offsets[(UNION, 0)] = 42
    with pytest.raises(RegistryMissing) as raised:
        build_runtime(_settings(database_url, broker_url="kafka://127.0.0.1:1"))
    message = str(raised.value)
    assert "\n" not in message
    assert "consumer group bridge-test has committed offsets" in message
    assert "bridge db upgrade" in message and "reset the group's offsets" in message
    assert make_url(database_url).render_as_string(hide_password=True) in message
    if make_url(database_url).password:
        assert f":{make_url(database_url).password}@" not in message and ":***@" in message
    if _is_sqlite(database_url) and before == "no schema":
        assert not _path(database_url).exists()  # refused without creating the file
    # `bridge db upgrade` (the deliberate way) creates the registry; the worker then starts.
    engine = build_engine(database_url, create=False)
    upgrade(engine)
    registry_id, made = ensure_registry_id(engine)
    assert made == (before != "no schema")
    engine.dispose()
    runtime = build_runtime(_settings(database_url, broker_url="kafka://127.0.0.1:1"))
    assert runtime.guard is not None and runtime.guard.registry_id == registry_id
    runtime.engine.dispose()


def test_a_schema_from_before_registry_ids_is_upgraded_whatever_the_offsets(database_url: str, group_offsets) -> None:
    engine = build_engine(database_url)
    upgrade(engine, "0002")
    engine.dispose()
    group_offsets[(UNION, 0)] = 42
    runtime = build_runtime(_settings(database_url, broker_url="kafka://127.0.0.1:1"))
    try:
        assert current_revision(runtime.engine) == head_revision()
        assert runtime.guard is not None
    finally:
        runtime.engine.dispose()


def test_an_existing_registry_starts_without_asking_the_broker(database_url: str, monkeypatch) -> None:
    engine = build_engine(database_url)
    upgrade(engine)
    engine.dispose()

    def unreachable(settings, topics):
        raise AssertionError("the broker was asked")

    monkeypatch.setattr(bridge.tools.admin, "committed_offsets", unreachable)
    runtime = build_runtime(_settings(database_url, broker_url="kafka://127.0.0.1:1"))
    runtime.engine.dispose()


def test_guard_cost_is_one_stat_and_one_primary_key_select(sqlite_url: str, monkeypatch) -> None:
    """The check adds one ``os.stat`` and one statement to a writer transaction, no more."""
    engine = build_engine(sqlite_url, create=False)
    upgrade(engine)
    RegistryGuard.capture(engine).install(engine)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda conn, cursor, statement, *a: statements.append(statement))
    stats: list[object] = []
    real_stat = os.stat

    def counting_stat(path, *args, **kwargs):
        stats.append(path)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counting_stat)
    _write(engine)
    monkeypatch.undo()
    assert statements == ["BEGIN IMMEDIATE", "SELECT value FROM registry_meta WHERE name = 'registry_id'", "SELECT 1"]
    assert len([p for p in stats if str(p) == str(_path(sqlite_url))]) == 1
    engine.dispose()
