"""Identity evidence: platform accounts and what their events showed of the person behind them.

An event's evidence is pseudonymised at once (rule 7): keyed-HMAC digests of a valid document and
of name+mobile, never the raw values. The registry keeps, per account, every digest it has seen
with its earliest sighting (:class:`AccountEvidence`), and operators' decisions link accounts
(:class:`OperatorLink`); :func:`bridge.core.identity.cluster` partitions accounts from these alone.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from bridge.core.events import CanonicalEvent
from bridge.core.pseudonym import Pseudonymiser
from bridge.core.records import learner_id_for

NAME_MOBILE = "name_mobile"


class AccountKey(NamedTuple):
    """A platform account (CONTRACT §3.1), ordered by platform then account.

    A named tuple rather than a dataclass: a batch builds, hashes and sorts tens of thousands of
    these, and tuples do that in C.
    """

    platform: str
    account: str

    @property
    def learner_id(self) -> str:
        """The id of the learner this account would found."""
        return learner_id_for(self.platform, self.account)


class Sighting(NamedTuple):
    """The earliest event that showed a piece of evidence (by event time, then id)."""

    at: datetime
    event_id: str


@dataclass(frozen=True)
class EvidenceItem:
    """One digest of an event: ``kind`` is a document type or ``name_mobile``; ``key_id`` names
    the pseudonym key that made the digest."""

    kind: str
    digest: str
    key_id: str = ""


@dataclass(frozen=True)
class Evidence:
    """The pseudonymised identity evidence of one event (rule 7): digests only."""

    items: tuple[EvidenceItem, ...] = ()
    document_problem: str | None = None

    @classmethod
    def of(cls, event: CanonicalEvent, pseudonymiser: Pseudonymiser) -> Evidence:
        """Pseudonymise the event's evidence; raw values go no further."""
        person = event.person
        items = []
        for key in pseudonymiser.keys():
            if person.document is not None:
                kind = person.document.type.value
                items.append(EvidenceItem(kind, key.digest(f"doc:{kind}", person.document.number), key.key_id))
            if person.name_key and person.mobile_key:
                name_mobile = f"{person.name_key}\x1f{person.mobile_key}"
                items.append(EvidenceItem(NAME_MOBILE, key.digest(NAME_MOBILE, name_mobile), key.key_id))
        problem = person.document_problem.value if person.document_problem else None
        return cls(tuple(items), problem)


@dataclass
class AccountEvidence:
    """Everything known of one account's identity."""

    key: AccountKey
    first: Sighting
    documents: dict[tuple[str, str], Sighting] = field(default_factory=dict)
    name_mobile: dict[str, Sighting] = field(default_factory=dict)
    #: The key id of each document digest (``""`` when unknown).
    document_keys: dict[tuple[str, str], str] = field(default_factory=dict)

    def document_kinds(self) -> dict[tuple[str, str], set[str]]:
        """Digests by (document type, key id): one document digested under two keys during a key
        rotation is one document, not a contradiction."""
        kinds: dict[tuple[str, str], set[str]] = defaultdict(set)
        for kind, digest in self.documents:
            kinds[(kind, self.document_keys.get((kind, digest), ""))].add(digest)
        return kinds

    @property
    def conflicted(self) -> bool:
        """Carries two different documents of one type (rule 6)."""
        return any(len(digests) > 1 for digests in self.document_kinds().values())


@dataclass(frozen=True)
class OperatorLink:
    """An operator's decision that ``account`` belongs with the learner of ``anchor``."""

    decision_id: str
    account: AccountKey
    anchor: AccountKey
    at: datetime
