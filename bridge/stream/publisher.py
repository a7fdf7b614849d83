"""Publishing to the broker: a batch's dead letters, and what the outbox holds.

A step returns only when the broker has acknowledged every message it sent. The outbox is
claimed in chunks (:class:`~bridge.store.claim.OutboxClaim`), each held in its transaction until
its messages are acknowledged, so the newest state of a key is always the last one published.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bridge.core.records import DEADLETTER_KEY_BOUND, DeadLetter
from bridge.metrics import Metrics
from bridge.pipeline import Inbound
from bridge.store.claim import OutboxClaim
from bridge.store.uow import UnitOfWorkFactory
from bridge.stream import LOGGER
from bridge.stream.dbthread import DatabaseThread
from topics import catalogue

log = logging.getLogger(LOGGER)

#: Queue one message for sending; returns an awaitable that resolves when the broker acknowledged
#: it (or ``None`` when the send was already acknowledged). Messages queued in turn keep their
#: order within a partition, so a batch's messages are queued first and awaited together.
Send = Callable[[str, bytes | None, bytes | None], Awaitable[Awaitable[Any] | None]]

#: Outbox rows published per database transaction.
OUTBOX_CHUNK = 500


class Publisher:
    """Sends through ``send``; reads and settles the outbox in the database thread, in units of
    work of ``units`` (writers)."""

    def __init__(self, send: Send, metrics: Metrics, db: DatabaseThread, units: UnitOfWorkFactory) -> None:
        self.send = send
        self.metrics = metrics
        self.db = db
        self.units = units

    async def dead_letters(self, letters: Sequence[tuple[Inbound, DeadLetter]]) -> None:
        """Publish ``letters`` to the dead-letter topic."""
        topic = catalogue.DEADLETTER.name
        acks = []
        for msg, letter in letters:
            value = letter.model_dump_json().encode()
            acks.append(await self.send(topic, deadletter_key(msg.key), value))
            self.metrics.on_published(topic, value)
            log.warning(
                "dead-lettered %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, letter.reason_code,
                extra={"topic": msg.topic, "partition": msg.partition, "offset": msg.offset,
                       "reason": letter.reason_code},
            )
        await acknowledged(acks)

    async def drain(self) -> None:
        """Publish everything the outbox holds, a chunk per transaction."""
        while True:
            claim = await self.db.run("outbox_claim", OutboxClaim.open, self.units, OUTBOX_CHUNK)
            try:
                for topic, key, size in claim.held:
                    log.error(
                        "held back the value of %s on %s: %d bytes exceed the message bound", key, topic, size,
                        extra={"topic": topic, "size": size},
                    )
                acks = [await self.send(topic, key.encode(), value) for topic, key, value in claim.messages]
                await acknowledged(acks)
                self.metrics.on_published_many((topic, value) for topic, _key, value in claim.messages)
                for topic, _key, _size in claim.held:
                    self.metrics.on_held_back(topic)
            except BaseException:
                await self.db.run("outbox_rollback", claim.rollback)
                raise
            await self.db.run("outbox_commit", claim.commit)
            if len(claim.entry_ids) < OUTBOX_CHUNK:
                return


def deadletter_key(key: bytes | None) -> bytes | None:
    """The key of a dead letter: the source key, or its digest when it is too long to carry or
    not UTF-8."""
    if key is None:
        return None
    if len(key) <= DEADLETTER_KEY_BOUND:
        try:
            key.decode("utf-8")
        except UnicodeDecodeError:
            pass  # output keys are UTF-8 text (CONTRACT §2)
        else:
            return key
    return b"sha256:" + hashlib.sha256(key).hexdigest().encode("ascii")


async def acknowledged(acks: list[Awaitable[Any] | None]) -> None:
    """Wait for every broker acknowledgement; the first failure is raised (and the step retried)."""
    pending = [ack for ack in acks if ack is not None]
    if pending:
        await asyncio.gather(*pending)
