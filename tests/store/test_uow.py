"""The unit of work, on every backend: one transaction, its repositories on one connection, commit
at the end of the block, rollback when it raises, readers that never commit, and the kind of
transaction its factory asks for."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select

from bridge.errors import RegistryChanged
from bridge.store import schema as t
from bridge.store.guard import RegistryGuard, ensure_registry_id
from bridge.store.uow import UnitOfWorkFactory, reading, writing
from topics import catalogue

TOPIC = catalogue.LEARNER_IDENTITIES.name


def _queued(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(t.outbox)).scalar_one()


def test_a_block_commits_when_it_ends(engine: Engine) -> None:
    with writing(engine)() as uow:
        uow.outbox.enqueue(TOPIC, "lrn_1")
    assert _queued(engine) == 1


def test_a_block_that_raises_rolls_back_and_the_exception_goes_on(engine: Engine) -> None:
    with pytest.raises(LookupError), writing(engine)() as uow:
        uow.outbox.enqueue(TOPIC, "lrn_1")
        raise LookupError("failed half-way")
    assert _queued(engine) == 0
    assert engine.pool.checkedout() == 0  # the connection went back


def test_a_reader_never_commits(engine: Engine) -> None:
    with reading(engine)() as uow:
        uow.outbox.enqueue(TOPIC, "lrn_1")
    assert _queued(engine) == 0


def test_a_transaction_held_open_is_committed_or_rolled_back_explicitly(engine: Engine) -> None:
    units = writing(engine)
    kept = units().begin()
    kept.outbox.enqueue(TOPIC, "lrn_1")
    kept.commit()
    dropped = units().begin()
    dropped.outbox.enqueue(TOPIC, "lrn_2")
    dropped.rollback()
    with reading(engine)() as uow:
        assert [e.key for e in uow.outbox.pending(10)] == ["lrn_1"]
    assert engine.pool.checkedout() == 0


def test_every_repository_works_on_the_unit_of_works_connection(engine: Engine) -> None:
    with writing(engine)() as uow:
        repositories = [uow.identity, uow.learners, uow.decisions, uow.ledger, uow.contents, uow.reviews,
                        uow.outbox, uow.totals]
        assert all(r.conn is uow.conn for r in repositories)
        # The repositories whose changes are published queue them in this unit of work's outbox.
        assert uow.learners.outbox is uow.ledger.outbox is uow.reviews.outbox is uow.outbox
        # A change queued through one repository is seen by the others, before the commit.
        assert uow.learners.refresh_identities({}) == 0
        uow.ledger.outbox.enqueue(TOPIC, "lrn_1")
        assert uow.totals.counts()["outbox_pending"] == 1


def test_writers_are_serializable_on_postgresql_only_when_asked(engine: Engine) -> None:
    def isolation(units: UnitOfWorkFactory) -> str:
        with units() as uow:
            return str(uow.conn.get_isolation_level())

    if engine.dialect.name != "postgresql":
        # SQLite serialises writers anyway: a writer takes the write lock at BEGIN.
        with writing(engine, serializable=True)() as uow:
            assert uow.conn.in_transaction()
        return
    assert isolation(writing(engine, serializable=True)) == "SERIALIZABLE"
    assert isolation(writing(engine)) == "READ COMMITTED"
    assert isolation(writing(engine).reader()) == "READ COMMITTED"


def test_the_registry_guard_checks_every_writer_at_begin_and_no_reader(engine: Engine) -> None:
    ensure_registry_id(engine)
    guard = RegistryGuard.capture(engine)
    guard.install(engine)
    with engine.begin() as conn:
        conn.execute(t.registry_meta.update().values(value="another"))
    with pytest.raises(RegistryChanged), writing(engine)() as uow:
        uow.outbox.enqueue(TOPIC, "lrn_1")  # never reached: the check fails at BEGIN
    with reading(engine)() as uow:
        assert uow.outbox.pending(10) == []
    assert engine.pool.checkedout() == 0
