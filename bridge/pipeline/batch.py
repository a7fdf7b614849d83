"""What a batch carries from stage to stage: its result, and what it touched."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from bridge.core.evidence import AccountKey, Sighting
from bridge.core.identity import Placement
from bridge.core.records import DeadLetter
from bridge.pipeline.messages import Inbound


@dataclass
class BatchResult:
    """What a batch did; the worker publishes the dead letters and feeds the metrics."""

    dead_letters: list[tuple[Inbound, DeadLetter]] = field(default_factory=list)
    processed: Counter[tuple[str, str]] = field(default_factory=Counter)
    duplicates: int = 0
    decisions: int = 0
    identity: Counter[str] = field(default_factory=Counter)
    data_quality: Counter[str] = field(default_factory=Counter)
    reviews: int = 0
    records_changed: int = 0
    identities_changed: int = 0
    #: Accounts re-resolved (CONTRACT §3): those whose identity evidence changed, and whatever
    #: they are connected to; an event that shows nothing new re-resolves nothing.
    resolved: int = 0
    #: Event time of every event processed in the batch, for latency metrics.
    event_times: list[datetime] = field(default_factory=list)

    def merge(self, other: BatchResult) -> BatchResult:
        """This result with ``other``'s added (the parts of a batch that was split)."""
        self.dead_letters.extend(other.dead_letters)
        self.processed.update(other.processed)
        self.duplicates += other.duplicates
        self.decisions += other.decisions
        self.identity.update(other.identity)
        self.data_quality.update(other.data_quality)
        self.reviews += other.reviews
        self.records_changed += other.records_changed
        self.identities_changed += other.identities_changed
        self.resolved += other.resolved
        self.event_times.extend(other.event_times)
        return self


@dataclass
class Touched:
    """What a batch touched, resolved and refreshed once at the end of the batch."""

    #: Every account the batch touched: its records are re-derived.
    accounts: set[AccountKey] = field(default_factory=set)
    #: The accounts whose identity may have changed (new account or evidence, an earlier first
    #: sighting, a decision, a retraction): only these, and what they connect to, are re-resolved.
    changed: set[AccountKey] = field(default_factory=set)
    records: set[tuple[str, str]] = field(default_factory=set)
    learners: set[str] = field(default_factory=set)
    #: The event that first touched each account in this batch (for review items).
    sightings: dict[AccountKey, Sighting] = field(default_factory=dict)
    #: The version each re-resolved learner's identity gets (:func:`bridge.core.versions.identity_versions`).
    identity_versions: dict[str, int] = field(default_factory=dict)
    #: Name+mobile digests that this batch's new holders made crowded (rule 8).
    crowds: set[str] = field(default_factory=set)
    #: The course keys of each account's new facts in this batch.
    new_courses: dict[AccountKey, set[str]] = field(default_factory=dict)
    #: Where each account of the resolved group belongs now, and its fact count per course key.
    placements: dict[AccountKey, Placement] = field(default_factory=dict)
    courses: dict[AccountKey, dict[str, int]] = field(default_factory=dict)
