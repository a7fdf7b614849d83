"""The outbox: keys whose current state must be published, queued in the same transaction as the
change (the claim that publishes them is :mod:`bridge.store.claim`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select

from bridge.store import schema as t
from bridge.store.base import Repository, bulk_insert, members, pairs_in
from topics.catalogue import CREDIT_RECORDS


@dataclass(frozen=True)
class OutboxEntry:
    id: int
    topic: str
    key: str
    #: Publish a tombstone here, whatever the key's current state.
    tombstone: bool = False


class OutboxRepository(Repository):
    """The outbox's rows, the values held back for their size, and the keys a topic carries."""

    def enqueue(self, topic: str, key: str, *, tombstone: bool = False) -> None:
        self.conn.execute(insert(t.outbox).values(topic=topic, key=key, tombstone=tombstone))

    def enqueue_many(self, topic: str, keys: Sequence[str], *, tombstone: bool = False) -> None:
        """Queue these keys in order (one statement; on PostgreSQL one COPY, whose rows take their ids in order)."""
        if keys:
            bulk_insert(self.conn, t.outbox, [{"topic": topic, "key": k, "tombstone": tombstone} for k in keys])

    def pending(self, limit: int) -> list[OutboxEntry]:
        query = select(t.outbox).order_by(t.outbox.c.id).limit(limit)
        if self.postgres:
            # Two workers never publish the same rows; each takes the ones nobody holds.
            query = query.with_for_update(skip_locked=True)
        return [OutboxEntry(r.id, r.topic, r.key, r.tombstone) for r in self.conn.execute(query)]

    def lock_records(self, record_ids: Sequence[str]) -> None:
        """Hold these records while their state is published, so a newer state cannot be sent first."""
        self._lock(t.credit_records.c.record_id, record_ids)

    def lock_learners(self, learner_ids: Sequence[str]) -> None:
        self._lock(t.learners.c.learner_id, learner_ids)

    def _lock(self, column, keys: Sequence[str]) -> None:
        # SQLite needs nothing: its writers are serialised by the database lock.
        if self.postgres and keys:
            self.conn.execute(select(column).where(members(column, sorted(keys), True)).order_by(column).with_for_update()).all()

    def done(self, ids: Sequence[int]) -> None:
        if ids:
            self.conn.execute(delete(t.outbox).where(members(t.outbox.c.id, ids, self.postgres)))

    def hold(self, topic: str, key: str, size: int, at: datetime) -> None:
        """Note that the current value of ``key`` is held back: it exceeds the message bound."""
        held = t.held_outputs.c
        self.conn.execute(delete(t.held_outputs).where(held.topic == topic, held.key == key))
        self.conn.execute(insert(t.held_outputs).values(topic=topic, key=key, size=size, held_at=at))

    def release(self, published: Iterable[tuple[str, str]]) -> None:
        """Forget the held-back values of keys whose current value was just published."""
        held = t.held_outputs.c
        pairs = list(published)
        if pairs:
            self.conn.execute(delete(t.held_outputs).where(pairs_in(held.topic, held.key, pairs, self.postgres)))

    def held(self) -> list[tuple[str, str, int, datetime]]:
        """The values held back, oldest first: ``(topic, key, size in bytes, held since)``."""
        held = t.held_outputs.c
        rows = self.conn.execute(select(held.topic, held.key, held.size, held.held_at).order_by(held.held_at))
        return [(r.topic, r.key, r.size, r.held_at) for r in rows]

    def current_keys(self, topic: str, after: str | None, limit: int) -> list[str]:
        """A page of the keys whose current state ``topic`` carries, in key order after ``after``:
        every credit record that is not retired, every learner (a merged one publishes its
        redirect)."""
        if topic == CREDIT_RECORDS.name:
            column = t.credit_records.c.record_id
            query = select(column).where(t.credit_records.c.retired.is_(False))
        else:
            column = t.learners.c.learner_id
            query = select(column)
        if after is not None:
            query = query.where(column > after)
        return list(self.conn.execute(query.order_by(column).limit(limit)).scalars())

    def touch(self) -> None:
        """Write without changing anything (a probe that the database takes writes)."""
        meta = t.held_outputs.c
        self.conn.execute(delete(t.held_outputs).where(meta.topic == "", meta.key == ""))
