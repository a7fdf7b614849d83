"""The outbox claim: outbox rows and the current values they publish, held in one transaction
until the broker has them; and the current value of any output key."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone

from bridge.core.records import OUTPUT_VALUE_BOUND
from bridge.store.uow import UnitOfWork, UnitOfWorkFactory
from topics import catalogue


def published_values(uow: UnitOfWork, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], bytes | None]:
    """The current value of each (topic, key), a few queries for all of them (``None``: a tombstone)."""
    wanted = list(keys)
    values: dict[tuple[str, str], bytes | None] = {}
    records = uow.ledger.published_records(k for topic, k in wanted if topic == catalogue.CREDIT_RECORDS.name)
    for record_id, record in records.items():
        values[(catalogue.CREDIT_RECORDS.name, record_id)] = None if record is None else record.encode()
    identities = uow.learners.published_identities(k for topic, k in wanted if topic == catalogue.LEARNER_IDENTITIES.name)
    for learner_id, identity in identities.items():
        values[(catalogue.LEARNER_IDENTITIES.name, learner_id)] = identity.encode()
    for topic, key in wanted:
        if (topic, key) not in values:
            values[(topic, key)] = published_value(uow, topic, key)
    return values


def published_value(uow: UnitOfWork, topic: str, key: str) -> bytes | None:
    """The current value of ``key`` on an output topic (``None``: a tombstone)."""
    if topic == catalogue.CREDIT_RECORDS.name:
        value = uow.ledger.published_record_of(key)
        return None if value is None else value.encode()
    if topic == catalogue.LEARNER_IDENTITIES.name:
        return uow.learners.identity_state(key).model_dump_json().encode()
    if topic == catalogue.REVIEW.name:
        return uow.reviews.review_item(key).model_dump_json().encode()
    raise ValueError(f"no stored value for topic {topic}")


class OutboxClaim:
    """Outbox rows and their current values, held in an open transaction until published.

    The rows (and on PostgreSQL the records they publish) stay locked until the broker has
    acknowledged the messages, so a newer state of a key can never be published before an older
    one: the last message of each key on a compacted topic is its latest state.
    """

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.entry_ids: list[int] = []
        self.messages: list[tuple[str, str, bytes | None]] = []
        #: Each value held back for exceeding the message bound: ``(topic, key, size in bytes)``.
        self.held: list[tuple[str, str, int]] = []

    @classmethod
    def open(cls, units: UnitOfWorkFactory, limit: int) -> OutboxClaim:
        """Claim up to ``limit`` of the oldest rows nobody holds, with the values they publish."""
        claim = cls(units().begin())
        outbox = claim.uow.outbox
        try:
            entries = outbox.pending(limit)
            outbox.lock_records([e.key for e in entries if e.topic == catalogue.CREDIT_RECORDS.name])
            outbox.lock_learners([e.key for e in entries if e.topic == catalogue.LEARNER_IDENTITIES.name])
            # Several rows for one key publish its current value once, after the tombstone that a
            # record's restart asked for, if any.
            restart: dict[tuple[str, str], bool] = {}
            for entry in entries:
                claim.entry_ids.append(entry.id)
                restart[(entry.topic, entry.key)] = restart.get((entry.topic, entry.key), False) or entry.tombstone
            values = published_values(claim.uow, restart)
            now = datetime.now(timezone.utc)
            for (topic, key), tombstone_first in restart.items():
                value = values[(topic, key)]
                if value is not None and len(value) + len(key) > OUTPUT_VALUE_BOUND:
                    # CONTRACT §2: never sent. The last value published stays the current one
                    # downstream until this one shrinks; operators see it among held outputs.
                    outbox.hold(topic, key, len(value), now)
                    claim.held.append((topic, key, len(value)))
                    continue
                if tombstone_first:
                    claim.messages.append((topic, key, None))
                claim.messages.append((topic, key, value))
            outbox.release((topic, key) for topic, key, _ in claim.messages)
        except BaseException:
            claim.rollback()
            raise
        return claim

    def commit(self) -> None:
        """The claimed rows are published: delete them and end the transaction."""
        try:
            self.uow.outbox.done(self.entry_ids)
        except BaseException:
            self.uow.rollback()
            raise
        self.uow.commit()

    def rollback(self) -> None:
        """Publishing failed: leave the rows for the next claim."""
        self.uow.rollback()
