"""The topic catalogue: every topic the bridge reads or writes, in one place (CONTRACT §1, §2).

The worker's topic bindings, ``bridge topics apply``, deploy manifests and the published JSON
Schemas in ``topics/schemas/`` are all derived from :data:`TOPICS`; nothing else names a topic.

Each platform's input topic has its entry here, and its adapter module (``adapters/``) declares
it as its topic. :data:`TOPICS`, :data:`INPUT_TOPICS` and :data:`PLATFORM_TOPICS` are read
after the platforms are registered (``import adapters``), so a platform that lives outside this
repository (``BRIDGE_PLATFORM_MODULES``) brings its topic into them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from bridge.core.decisions import OperatorDecision
from bridge.core.records import CreditRecord, DeadLetter, LearnerIdentity, ReviewItem

_DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One Kafka topic: its name, who writes it, how it is kept, and what its messages hold."""

    name: str
    role: Literal["input", "output"]
    cleanup_policy: Literal["delete", "compact"]
    key: str
    """What the message key is (always a plain UTF-8 string)."""
    value_model: type[BaseModel] | None
    """The pydantic model of the value; ``None`` for the platforms' raw input topics."""
    partitions: int | None
    """Partition count; ``None`` means ``settings.topic_partitions``."""
    description: str
    retention_ms: int | None
    """``retention.ms`` to set; ``None`` leaves the broker default (or compaction) in charge."""

    def partitions_or(self, default: int) -> int:
        """The partition count to create, ``default`` unless the catalogue pins one."""
        return self.partitions if self.partitions is not None else default

    def kafka_configs(self) -> dict[str, str]:
        """The topic-level Kafka configs this spec sets, as the admin API wants them."""
        configs = {"cleanup.policy": self.cleanup_policy}
        if self.retention_ms is not None:
            configs["retention.ms"] = str(self.retention_ms)
        return configs


# Input topics belong to the platforms: the bridge only creates them where nobody else does
# (the embedded broker, tests), so it leaves their retention to the broker default.
UNION_EVENTS = TopicSpec(
    name="union.training.events.v1",
    role="input",
    cleanup_policy="delete",
    key="`member.memberNo`, the union member number (UTF-8 string)",
    value_model=None,
    partitions=None,
    description="Training events of the trade-union Employee Digital Training Platform "
    "(UTF-8 JSON, one event per message).",
    retention_ms=None,
)

OU_EVENTS = TopicSpec(
    name="ou.lifelong.events.v1",
    role="input",
    cleanup_policy="delete",
    key="`learner.student_no`, the open-university student number (UTF-8 string)",
    value_model=None,
    partitions=None,
    description="Events of the open university's lifelong-education platform "
    "(UTF-8 JSON, one event per message).",
    retention_ms=None,
)

VOCATIONAL_EVENTS = TopicSpec(
    name="vocational.learning.events.v1",
    role="input",
    cleanup_policy="delete",
    key="`actor.account.name`, the vocational platform's account name (UTF-8 string)",
    value_model=None,
    partitions=None,
    description="xAPI 1.0.3 statements of the National Smart Vocational Education Platform "
    "(UTF-8 JSON, one statement per message).",
    retention_ms=None,
)

# Compacted: each key's latest value is the current state, kept for as long as the key lives.
CREDIT_RECORDS = TopicSpec(
    name="credit.records.v1",
    role="output",
    cleanup_policy="compact",
    key="`record_id` (UTF-8 string)",
    value_model=CreditRecord,
    partitions=None,
    description="Unified credit records, one per (learner, course). A null value (tombstone) "
    "retires a record id, e.g. after its learner was merged into another.",
    retention_ms=None,
)

LEARNER_IDENTITIES = TopicSpec(
    name="learner.identities.v1",
    role="output",
    cleanup_policy="compact",
    key="`learner_id` (UTF-8 string)",
    value_model=LearnerIdentity,
    partitions=None,
    description="Unified learners: their linked platform accounts and how each was linked.",
    retention_ms=None,
)

# Review items wait for a person; a review queue can lag for weeks (holidays, audits), so they
# are kept for a quarter rather than Kafka's default 7 days. Not compacted: each item is an
# event, not the latest state of a key.
REVIEW = TopicSpec(
    name="bridge.review.v1",
    role="output",
    cleanup_policy="delete",
    key="`review_id` (UTF-8 string)",
    value_model=ReviewItem,
    partitions=None,
    description="Identity decisions the bridge would not take alone (ambiguous matches, "
    "conflicting documents), for an operator to resolve.",
    retention_ms=90 * _DAY_MS,
)

# A dead letter is an operator's to-do: 30 days outlives a long holiday plus a fix-and-replay
# cycle, where Kafka's default 7 days could lose bad input before anyone looked at it.
DEADLETTER = TopicSpec(
    name="bridge.deadletter.v1",
    role="output",
    cleanup_policy="delete",
    key="the key of the source message (UTF-8 string)",
    value_model=DeadLetter,
    partitions=None,
    description="Input messages the bridge could not process: the bytes (base64), where they "
    "came from, and why.",
    retention_ms=30 * _DAY_MS,
)

# Operator decisions are input that must survive every replay (a rebuild from the beginning
# has to make the same decisions again), so they are never deleted.
DECISIONS = TopicSpec(
    name="bridge.decisions.v1",
    role="input",
    cleanup_policy="delete",
    key="`review_id` of the review item decided (UTF-8 string)",
    value_model=OperatorDecision,
    partitions=None,
    description="Operators' decisions on review items, written by `bridge review link|reject` "
    "and applied by the workers like any other input.",
    retention_ms=-1,
)

#: The platforms' topics of this repository (raw JSON of CONTRACT §1, no value model of ours).
_BUILTIN_PLATFORM_TOPICS: tuple[TopicSpec, ...] = (UNION_EVENTS, OU_EVENTS, VOCATIONAL_EVENTS)
_added_platform_topics: list[TopicSpec] = []
#: The bridge's own topics.
_BRIDGE_TOPICS: tuple[TopicSpec, ...] = (DECISIONS, CREDIT_RECORDS, LEARNER_IDENTITIES, REVIEW, DEADLETTER)
OUTPUT_TOPICS: tuple[TopicSpec, ...] = tuple(t for t in _BRIDGE_TOPICS if t.role == "output")


def add_platform_topic(spec: TopicSpec) -> None:
    """Add the input topic of a platform that lives outside this repository (its adapter does)."""
    if spec.role != "input" or spec.value_model is not None:
        raise ValueError(f"topic {spec.name}: a platform topic is an input topic of raw platform messages")
    known = {t.name: t for t in (*_BUILTIN_PLATFORM_TOPICS, *_added_platform_topics, *_BRIDGE_TOPICS)}
    if spec.name in known:
        if known[spec.name] != spec:
            raise ValueError(f"topic {spec.name} is already in the catalogue with another definition")
        return
    _added_platform_topics.append(spec)


def remove_platform_topic(name: str) -> None:
    """Remove an added platform topic again (tests that register a platform of their own)."""
    _added_platform_topics[:] = [t for t in _added_platform_topics if t.name != name]


def _platform_topics() -> tuple[TopicSpec, ...]:
    importlib.import_module("adapters")  # registers the platforms (and their topics) once
    return (*_BUILTIN_PLATFORM_TOPICS, *_added_platform_topics)


def __getattr__(name: str) -> tuple[TopicSpec, ...]:
    # TOPICS, INPUT_TOPICS and PLATFORM_TOPICS include external platforms' topics, so they are
    # computed when read rather than fixed at import.
    if name == "PLATFORM_TOPICS":
        return _platform_topics()
    if name == "TOPICS":
        return (*_platform_topics(), *_BRIDGE_TOPICS)
    if name == "INPUT_TOPICS":
        return tuple(t for t in (*_platform_topics(), *_BRIDGE_TOPICS) if t.role == "input")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def by_name(name: str) -> TopicSpec:
    """The spec of topic ``name``; ``KeyError`` naming the known topics if there is none."""
    topics = {t.name: t for t in __getattr__("TOPICS")}
    try:
        return topics[name]
    except KeyError:
        raise KeyError(f"unknown topic {name!r}; the catalogue has {', '.join(topics)}") from None
