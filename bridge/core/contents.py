"""One content per event id (CONTRACT §1), whatever the order of arrival.

The same event id with other content is bad input: the bridge keeps exactly one content of each
(platform, event id) and dead-letters the others. Which one it keeps must not depend on the order
the contents arrive in, so it is the first in a fixed order of contents:

1. the *plain* part of the content, the part every fact stores anyway (no personal data): event
   time, account number, course id, kind, outcome (passed), score, hours, platform credits,
   compared in that order (a missing value before any value). This part does not depend on any
   key, so a key rotation cannot change which content is kept when two contents differ here
   (different course, outcome, score, account, time...), which is nearly always;
2. contents equal in all of the above differ only in their identity evidence (document, name,
   mobile). Evidence is personal data and is stored only as keyed digests, so this tie is broken by
   the smaller *content digest* (a keyed HMAC of the whole canonical content), both contents
   digested under one key: the key the event id's stored content was digested with. The bridge
   keeps using that key for the event id (the kept and rejected contents of an id are all digested
   under it) while the pseudonymiser still has it, so the order among an event id's contents is
   fixed across a rotation; only a replay from scratch under another key could break a tie of this
   second kind differently.

Two contents are the same content when their plain parts and their digests (under one key) are
equal. The content is the parsed :class:`CanonicalEvent`, not the raw bytes: a re-formatted but
equal JSON message, or one whose identity fields differ only in ways normalisation removes, is a
redelivery (a duplicate), not other content. When a stored digest's key is gone (retired from the
configuration), the bridge cannot tell contents equal in their plain part apart: it treats them as
the same content (a duplicate), never as a conflict.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cmp_to_key
from dataclasses import dataclass, field
from datetime import timezone

from bridge.core.credits import CreditFact
from bridge.core.events import CanonicalEvent
from bridge.core.pseudonym import Pseudonymiser

#: The MAC kind of content digests: never equal to a digest of identity evidence.
CONTENT = "event_content"

#: Each value of the plain order, wrapped so that a missing value sorts before any value.
_Ordered = tuple[tuple[int, object], ...]


def canonical_content(event: CanonicalEvent) -> str:
    """The event as one canonical string: every field the bridge uses, in a fixed order, time in UTC.

    An explicit projection (``v1``), not a dump of the model: a field added to
    :class:`CanonicalEvent` later must not change the digest of every content already stored
    (their redeliveries would then look like other content). It holds the normalised identity
    evidence: it is only ever MAC'd, never stored or logged.
    """
    outcome, person = event.outcome, event.person
    document = person.document
    return json.dumps(
        [
            "v1",
            event.platform,
            event.event_id,
            event.kind.value,
            event.occurred_at.astimezone(timezone.utc).isoformat(),
            event.account,
            event.course_id,
            event.hours,
            event.platform_credits,
            None if outcome is None else [outcome.passed, outcome.score],
            None if document is None else [document.type.value, document.number],
            None if person.document_problem is None else person.document_problem.value,
            person.name_key,
            person.mobile_key,
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def plain_order(fact: CreditFact) -> _Ordered:
    """Rule 1 of the module: the key-independent part of the order, from what a fact stores."""
    values: tuple[object, ...] = (
        fact.occurred_at.astimezone(timezone.utc),
        fact.account,
        fact.course_id,
        fact.kind.value,
        fact.passed,
        fact.score,
        fact.hours,
        fact.platform_credits,
    )
    return tuple((0, "") if v is None else (1, v) for v in values)


class Content:
    """One content of an event id as the order sees it: its plain part and its digest(s)."""

    order: _Ordered

    def digest(self, key_id: str) -> str | None:
        """The content digest under ``key_id``; ``None`` when it cannot be had under that key."""
        raise NotImplementedError


@dataclass
class NewContent(Content):
    """A content in hand: digested under the current key at once, under another key on demand; its
    plain order is worked out only when it is compared (a new event id never is)."""

    text: str = field(repr=False)
    pseudonymiser: Pseudonymiser = field(repr=False)
    digests: dict[str, str] = field(default_factory=dict)
    #: The content's fact, set before the content is compared.
    fact: CreditFact | None = field(default=None, repr=False)

    @classmethod
    def of(cls, event: CanonicalEvent, pseudonymiser: Pseudonymiser) -> NewContent:
        text = canonical_content(event)
        return cls(text, pseudonymiser, {pseudonymiser.key_id: pseudonymiser.digest(CONTENT, text)})

    @property
    def order(self) -> _Ordered:  # type: ignore[override]
        if self.fact is None:
            raise ValueError("a content is compared only once its fact is known")
        return plain_order(self.fact)

    def digest(self, key_id: str) -> str | None:
        found = self.digests.get(key_id)
        if found is None:
            key = next((k for k in self.pseudonymiser.keys() if k.key_id == key_id), None)
            if key is None:
                return None
            found = self.digests[key_id] = key.digest(CONTENT, self.text)
        return found


@dataclass(frozen=True)
class StoredContent(Content):
    """A content the bridge holds only as its plain part and one digest (``None``: before revision
    0003, no digest was kept)."""

    order: _Ordered
    content_digest: str | None
    key_id: str | None

    def digest(self, key_id: str) -> str | None:
        return self.content_digest if key_id == self.key_id else None


def compare(a: Content, b: Content, key_id: str) -> int:
    """``-1`` when ``a`` comes first in the order of contents, ``1`` when ``b`` does, ``0`` when
    they are the same content (or, their plain parts equal, cannot be told apart under ``key_id``)."""
    if a.order != b.order:
        return -1 if a.order < b.order else 1
    da, db = a.digest(key_id), b.digest(key_id)
    if da is None or db is None or da == db:
        # Can't tell: one digest's key is gone. Equal plain parts are then the same content.
        return 0
    return -1 if da < db else 1


def comparison_key(stored: StoredContent | None, pseudonymiser: Pseudonymiser) -> str:
    """The key an event id's contents are compared and stored under: its stored content's key while
    the pseudonymiser still has it, the current key otherwise."""
    if stored is not None and stored.key_id is not None:
        if any(k.key_id == stored.key_id for k in pseudonymiser.keys()):
            return stored.key_id
    return pseudonymiser.key_id


def seen_among(content: NewContent, rejected: Mapping[str, str]) -> bool:
    """Whether ``content`` is one of an event id's rejected contents (``digest -> key id``).

    A rejected content digested under a key that is gone cannot be told apart from this one: it is
    taken for a redelivery of it (a duplicate, never a second dead letter).
    """
    for digest, key_id in rejected.items():
        mine = content.digest(key_id)
        if mine is None or mine == digest:
            return True
    return False



@dataclass
class Settlement:
    """How one batch settles the contents of one event id (arrivals in batch order)."""

    #: The key the kept content's and the rejected contents' digests are stored under.
    key_id: str
    #: The arrival whose content is kept and applied; ``None``: the stored content stays (or none).
    kept: int | None = None
    #: Arrivals that are redeliveries of a content already seen (the kept one or a rejected one).
    duplicates: list[int] = field(default_factory=list)
    #: Arrivals of distinct contents that lost: dead-lettered now.
    rejected: list[int] = field(default_factory=list)
    #: The stored content lost to ``kept``: it is retracted and dead-lettered after the fact.
    retract_stored: bool = False
    #: How many distinct contents the event id has shown once the batch is applied.
    contents: int = 0


def settle(
    arrivals: list[NewContent],
    stored: StoredContent | None,
    stored_contents: int,
    rejected: Mapping[str, str],
    pseudonymiser: Pseudonymiser,
) -> Settlement:
    """Which of an event id's contents is kept, given its stored content (if any), the contents
    that already lost (``digest -> key id``) and the batch's arrivals, in batch order.

    The kept content is always the first of every content the event id has shown, in the order
    of :func:`compare`: so it is the same whatever order they arrive in. A fact stored before
    revision 0003 has no digest: it keeps its event id (its content cannot be retracted cleanly,
    its evidence was not recorded), and a content equal to it in the plain part is a redelivery.
    """
    key_id = comparison_key(stored, pseudonymiser)
    out = Settlement(key_id)
    distinct: list[int] = []
    for i, content in enumerate(arrivals):
        if (
            (stored is not None and compare(stored, content, key_id) == 0)
            or seen_among(content, rejected)
            or any(compare(arrivals[j], content, key_id) == 0 for j in distinct)
        ):
            out.duplicates.append(i)
        else:
            distinct.append(i)
    out.contents = stored_contents + len(distinct)
    if not distinct:
        return out
    def by_content(x: int, y: int) -> int:
        return compare(arrivals[x], arrivals[y], key_id)

    best = min(distinct, key=cmp_to_key(by_content))
    legacy = stored is not None and stored.content_digest is None
    if stored is None or (not legacy and compare(arrivals[best], stored, key_id) < 0):
        out.kept, out.retract_stored = best, stored is not None
    out.rejected = [i for i in distinct if i != out.kept]
    return out
