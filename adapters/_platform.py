"""What one platform module declares: :class:`PlatformAdapter`, and the registry of them.

A platform is one module in ``adapters/`` (found by name, no list to edit) plus its input topic's
entry in ``topics/catalogue.py``. The module's ``ADAPTER`` names everything the bridge needs to
know about the platform: its name, its topic (the catalogue's entry), its parser, its credit rule
and its simulator. Nothing outside the module and the catalogue names a platform or its topic.

A platform that lives outside this repository (an enterprise platform) is a module named in
``BRIDGE_PLATFORM_MODULES``; its ``ADAPTER`` carries its own topic, which joins the catalogue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bridge.core import platforms
from bridge.core.events import CanonicalEvent
from bridge.core.platforms import CreditRule, PlatformRules
from topics import catalogue
from topics.catalogue import TopicSpec

if TYPE_CHECKING:
    from bridge.tools.simulate import PlatformSimulator


@dataclass(frozen=True, slots=True)
class PlatformAdapter:
    """Everything the bridge knows of one source platform."""

    name: str
    """The short name every output carries (``sources[].platform``, ``accounts[].platform``)."""
    label: str
    """How a person names the platform in a summary (``open university``)."""
    topic: TopicSpec
    """Its input topic, the catalogue's entry."""
    parse: Callable[[bytes], CanonicalEvent]
    """Raw message value to canonical event; raises ``BadInput`` for a message it cannot use."""
    credit_rule: CreditRule
    """What a passed course is worth (one of :mod:`bridge.core.credits`' rules)."""
    signature: str
    """A top-level field that this platform's messages carry and no other platform's do: a
    backfill file's lines are told apart by it."""
    simulator: PlatformSimulator | None = None
    """Its synthetic traffic for ``bridge simulate`` and the demo (``None``: it has none)."""

    def __post_init__(self) -> None:
        if self.topic.role != "input":
            raise ValueError(f"platform {self.name!r}: topic {self.topic.name} is not an input topic")


_BY_NAME: dict[str, PlatformAdapter] = {}
_BY_TOPIC: dict[str, PlatformAdapter] = {}


def register(adapter: PlatformAdapter) -> PlatformAdapter:
    """Register ``adapter``: its name becomes a known platform, its topic an input of the workers.

    A topic the catalogue does not hold yet (an external platform's) is added to it. Registering
    the same adapter twice is harmless; another adapter under a taken name or topic is an error.
    """
    for index, key in ((_BY_NAME, adapter.name), (_BY_TOPIC, adapter.topic.name)):
        taken = index.get(key)
        if taken is not None and taken != adapter:
            raise ValueError(f"platform {adapter.name!r}: {key!r} is already taken by platform {taken.name!r}")
    if adapter.topic not in catalogue.PLATFORM_TOPICS:
        catalogue.add_platform_topic(adapter.topic)
    for other in _BY_NAME.values():
        if other.name != adapter.name and other.signature == adapter.signature:
            raise ValueError(f"platform {adapter.name!r}: signature field {adapter.signature!r} is platform {other.name!r}'s")
    platforms.register(PlatformRules(adapter.name, adapter.credit_rule))
    _BY_NAME[adapter.name] = adapter
    _BY_TOPIC[adapter.topic.name] = adapter
    return adapter


def unregister(name: str) -> None:
    """Forget platform ``name`` and its topic (for tests that register a platform of their own)."""
    adapter = _BY_NAME.pop(name, None)
    if adapter is not None:
        _BY_TOPIC.pop(adapter.topic.name, None)
        catalogue.remove_platform_topic(adapter.topic.name)
        platforms.unregister(name)


def registered() -> tuple[PlatformAdapter, ...]:
    """Every registered platform, in the catalogue's order of their topics."""
    order = {t.name: i for i, t in enumerate(catalogue.PLATFORM_TOPICS)}
    return tuple(sorted(_BY_NAME.values(), key=lambda a: order.get(a.topic.name, len(order))))


def by_name(name: str) -> PlatformAdapter:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown platform {name!r}; the platforms are {', '.join(sorted(_BY_NAME))}") from None


def by_topic(topic: str) -> PlatformAdapter | None:
    return _BY_TOPIC.get(topic)


def check_catalogue() -> None:
    """Every platform topic of the catalogue has exactly one adapter (at start-up, not at run time:
    a topic without an adapter would dead-letter every message of it)."""
    orphans = [t.name for t in catalogue.PLATFORM_TOPICS if t.name not in _BY_TOPIC]
    if orphans:
        raise RuntimeError(
            f"the topic catalogue lists platform topic(s) {', '.join(orphans)} that no adapter module declares: "
            "add the platform's module to adapters/ (see adapters/__init__.py)"
        )


def describe(adapters: Any = None) -> str:
    """``union, ou and vocational``: the registered platforms for a sentence."""
    names = [a.name for a in (adapters or registered())]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
