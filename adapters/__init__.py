"""One adapter per source platform: raw Kafka message value in, :class:`CanonicalEvent` out.

Each adapter module exposes ``TOPIC``, ``PLATFORM`` and ``parse(value: bytes) -> CanonicalEvent``,
which raises :class:`bridge.errors.BadInput` for a message that cannot be used.
"""

from __future__ import annotations

from collections.abc import Callable

from adapters import ou, union
from bridge.core.events import CanonicalEvent, Platform

PARSERS: dict[str, Callable[[bytes], CanonicalEvent]] = {
    union.TOPIC: union.parse,
    ou.TOPIC: ou.parse,
}
PLATFORM_OF_TOPIC: dict[str, Platform] = {
    union.TOPIC: union.PLATFORM,
    ou.TOPIC: ou.PLATFORM,
}

__all__ = ["PARSERS", "PLATFORM_OF_TOPIC"]
