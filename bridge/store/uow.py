"""The store's one port: a unit of work, one transaction with every repository bound to it.

``with units() as uow:`` begins a transaction; the block reads and writes through the
repositories (``uow.identity``, ``uow.learners``, ``uow.decisions``, ``uow.ledger``,
``uow.contents``, ``uow.reviews``, ``uow.outbox``, ``uow.totals``), and the transaction commits
when the block ends, or rolls back when it raises. A reader's never commits.

Repositories never call one another: the three whose changes are published (learners, ledger,
reviews) are given the outbox they queue them in, and where a step needs what several
repositories hold, its caller (a pipeline stage, the outbox claim, a command) reads each and
passes it on.

Bootstrap builds the :class:`UnitOfWorkFactory` and injects it; the kind of transaction is the
factory's: writers take SQLite's write lock at BEGIN, are checked by the
:class:`~bridge.store.guard.RegistryGuard` when one is installed, and are SERIALIZABLE on
PostgreSQL when asked (see :func:`bridge.store.engine.writer`).
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from types import TracebackType

from sqlalchemy import Connection, Engine

from bridge.store.contents import ContentsRepository
from bridge.store.decisions import DecisionRepository
from bridge.store.engine import writer
from bridge.store.identity import IdentityRepository
from bridge.store.learners import LearnerRepository
from bridge.store.ledger import LedgerRepository
from bridge.store.outbox import OutboxRepository
from bridge.store.reviews import ReviewRepository
from bridge.store.totals import TotalsRepository


class UnitOfWork:
    """One transaction on ``engine`` and the repositories bound to its connection.

    Used as a context manager, or (for a transaction held across awaits, the outbox claim)
    :meth:`begin`, then :meth:`commit` or :meth:`rollback`.
    """

    conn: Connection
    identity: IdentityRepository
    learners: LearnerRepository
    decisions: DecisionRepository
    ledger: LedgerRepository
    contents: ContentsRepository
    reviews: ReviewRepository
    outbox: OutboxRepository
    totals: TotalsRepository

    def __init__(self, engine: Engine, *, writes: bool = True) -> None:
        self.engine = engine
        self.writes = writes
        self._exit: ExitStack | None = None

    def begin(self) -> UnitOfWork:
        """Open the connection and begin the transaction (a reader's begins with its first query)."""
        if self._exit is not None:
            raise RuntimeError("this unit of work has begun already")
        with ExitStack() as stack:
            conn = stack.enter_context(self.engine.connect())
            if self.writes:
                # What Engine.begin() does: the BEGIN (IMMEDIATE on SQLite) and the guard's check
                # run here, and a failure closes the connection.
                stack.enter_context(conn.begin())
            self._exit = stack.pop_all()
        self.conn = conn
        self.outbox = OutboxRepository(conn)
        self.identity = IdentityRepository(conn)
        self.learners = LearnerRepository(conn, self.outbox)
        self.decisions = DecisionRepository(conn)
        self.ledger = LedgerRepository(conn, self.outbox)
        self.contents = ContentsRepository(conn)
        self.reviews = ReviewRepository(conn, self.outbox)
        self.totals = TotalsRepository(conn)
        return self

    def commit(self) -> None:
        """Commit the transaction and give the connection back."""
        try:
            self.conn.commit()
        finally:
            self._end(None, None, None)

    def rollback(self) -> None:
        """Roll the transaction back and give the connection back."""
        try:
            self.conn.rollback()
        finally:
            self._end(None, None, None)

    def __enter__(self) -> UnitOfWork:
        return self.begin()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # A writer's transaction commits, or rolls back on an exception (as Engine.begin()); then the
        # connection closes, which rolls a reader's transaction back (as Engine.connect()).
        self._end(exc_type, exc, tb)

    def _end(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stack, self._exit = self._exit, None
        if stack is not None:
            stack.__exit__(exc_type, exc, tb)


@dataclass(frozen=True)
class UnitOfWorkFactory:
    """Opens units of work on one database, all of one kind: ``with factory() as uow:``.

    Writers (the default) take the write lock at BEGIN on SQLite; with ``serializable`` they are
    SERIALIZABLE on PostgreSQL (two workers resolving the same learners: one of them redoes its
    batch). Readers (:meth:`reader`) never commit.
    """

    engine: Engine
    writes: bool = True
    serializable: bool = False
    _bound: Engine = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        bound = writer(self.engine, serializable=self.serializable) if self.writes else self.engine
        object.__setattr__(self, "_bound", bound)

    def __call__(self) -> UnitOfWork:
        return UnitOfWork(self._bound, writes=self.writes)

    def reader(self) -> UnitOfWorkFactory:
        """Units of work on the same database that only read."""
        return UnitOfWorkFactory(self.engine, writes=False)

    def writer(self, *, serializable: bool = False) -> UnitOfWorkFactory:
        """Units of work on the same database that write (SERIALIZABLE on PostgreSQL if asked)."""
        return UnitOfWorkFactory(self.engine, serializable=serializable)


def writing(engine: Engine, *, serializable: bool = False) -> UnitOfWorkFactory:
    """Writer units of work on ``engine``."""
    return UnitOfWorkFactory(engine, serializable=serializable)


def reading(engine: Engine) -> UnitOfWorkFactory:
    """Reader units of work on ``engine``."""
    return UnitOfWorkFactory(engine, writes=False)
