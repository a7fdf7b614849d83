"""Inbound messages: what a batch is handed, how each message is parsed, and its dead letter.

A message is parsed by the adapter of its topic into a canonical event, or into an operator's
decision on the decisions topic. A message that cannot be parsed goes no further: it is
dead-lettered with the reason, its bytes sealed (CONTRACT §2).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from bridge.core.decisions import OperatorDecision, parse_decision
from bridge.core.events import CanonicalEvent
from bridge.core.records import DEADLETTER_PAYLOAD_BOUND, DeadLetter
from bridge.core.sealing import Sealer
from bridge.errors import BadInput
from topics.catalogue import DECISIONS

if TYPE_CHECKING:
    from bridge.pipeline.batch import BatchResult

#: The pipeline's logger for every stage (one name, whichever module logs).
log = logging.getLogger("bridge.pipeline")

Parser = Callable[[bytes], CanonicalEvent]


@dataclass(frozen=True)
class Inbound:
    """One consumed message and where it came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    source: str | None = None
    """The file a backfilled line came from (its coordinates are then the line's); ``None`` for Kafka."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def dead_letter(msg: Inbound, reason: str, code: str, now: datetime, sealer: Sealer) -> DeadLetter:
    """The dead letter of ``msg``: its bytes sealed under the dead-letter key when they fit within
    the message bound, always their digest (``msg.value`` ``None``: bytes no longer held, e.g. a
    content retracted after the fact). The bytes are never carried readable (CONTRACT §2)."""
    value = msg.value
    carried = value is not None and len(value) <= DEADLETTER_PAYLOAD_BOUND
    sealed, key_id = sealer.seal(value, msg.topic, msg.partition, msg.offset) if carried else (None, None)
    return DeadLetter(
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        reason=reason,
        reason_code=code,
        payload_sha256=hashlib.sha256(value).hexdigest() if value is not None else None,
        payload_bytes=len(value) if value is not None else None,
        payload_encrypted=sealed,
        key_id=key_id,
        dead_lettered_at=now,
        source_file=msg.source,
    )


def internal_reason(exc: BaseException) -> str:
    return (
        f"the bridge failed to process this message ({type(exc).__name__}); report it to the bridge "
        "team with these coordinates and replay it after the fix"
    )


def poison_reason(exc: BaseException) -> str:
    cause = type(getattr(exc, "orig", None) or exc).__name__
    return (
        f"this message passed validation but made its batch fail in storage or processing ({cause}) every "
        "time; it was isolated and the rest of its batch committed. Report it to the bridge team with these "
        "coordinates and replay it after the fix"
    )


def parse(msg: Inbound, parsers: Mapping[str, Parser]) -> CanonicalEvent | OperatorDecision:
    """The event (or operator decision) ``msg`` carries; :class:`BadInput` when it carries none."""
    if msg.value is None:
        raise BadInput("the message has no value (a tombstone on an input topic)", code="empty_message")
    if msg.topic == DECISIONS.name:
        return parse_decision(msg.value)
    parser = parsers.get(msg.topic)
    if parser is None:
        raise BadInput(f"the bridge does not consume topic {msg.topic}", code="unknown_topic")
    return parser(msg.value)


def parse_batch(
    batch: Sequence[Inbound],
    parse_one: Callable[[Inbound], CanonicalEvent | OperatorDecision],
    sealer: Sealer,
    now: datetime,
    result: BatchResult,
) -> tuple[list[tuple[Inbound, CanonicalEvent]], list[tuple[Inbound, OperatorDecision]]]:
    """The batch's events and operator decisions, in order; the messages that do not parse are
    dead-lettered into ``result``."""
    events: list[tuple[Inbound, CanonicalEvent]] = []
    decisions: list[tuple[Inbound, OperatorDecision]] = []
    for msg in batch:
        try:
            parsed = parse_one(msg)
        except BadInput as exc:
            result.dead_letters.append((msg, dead_letter(msg, exc.reason, exc.code, now, sealer)))
            continue
        except Exception as exc:  # noqa: BLE001 - an adapter bug must not stall the partition
            log.exception(
                "message failed in parsing; dead-lettered",
                extra={"topic": msg.topic, "partition": msg.partition, "offset": msg.offset},
            )
            result.dead_letters.append((msg, dead_letter(msg, internal_reason(exc), "processing_error", now, sealer)))
            continue
        if isinstance(parsed, OperatorDecision):
            decisions.append((msg, parsed))
        else:
            events.append((msg, parsed))
    return events, decisions
