"""Versions: how the version of a published identity or credit record is decided (CONTRACT §5).

Subscribers keep the value with the highest version of each key, so a version must rise with
every change and be the same whatever order or batches the events came in: a replay then
publishes the same bytes.

- A learner's identity version is decided by the identity evidence of its evidence component
  (the accounts connected to its accounts by shared evidence or operator decisions), never by how
  many events it had: an event that shows nothing new (a known learner's next course) leaves it
  as it is, and the identity is neither re-resolved nor republished. What an identity is made of
  is the component's *slots* (each account, and each piece of evidence of each account) with
  their first sightings, and the operators' decisions; the version is
  :func:`identity_versions`' sum over those (see there). It is a function of the set of events
  alone, so it is the same in any order; and it rises with every change of them: a new account,
  new evidence, a decision, and also a first sighting that an out-of-order event moves earlier
  (which changes the links' ``linked_at`` and ``event_id``, and may re-key a learner). That last
  change is why the version cannot be a plain count: an identity first published from a later
  event must get a lower version than one published from an earlier event, so the version weighs
  each first sighting by how early it is.
- A credit record's version is the number of events behind it (each content of each source's
  event id). A record can lose events (an account split off, a content retracted); its id is
  then retired with a tombstone first, so that subscribers start that record afresh.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

from bridge.core.credits import RecordState
from bridge.core.evidence import NAME_MOBILE, AccountEvidence, AccountKey, OperatorLink, Sighting
from bridge.core.identity import Clustering, Placement

#: The horizon first sightings are weighed against: a slot first seen ``n`` seconds before it
#: weighs ``n`` seconds (at least 1). Fixed for ever: moving it would change every version.
HORIZON = datetime(2100, 1, 1, tzinfo=UTC)

#: What one second of a first sighting weighs against the ties of its second: a slot's ties count
#: up to ``TIES_PER_SECOND - 1``, so a first sighting one whole second earlier always outweighs them
#: (a bulk enrolment of many courses in one second, then an event a second earlier, still raises
#: the version the same in any order). Fixed for ever, like :data:`HORIZON`.
TIES_PER_SECOND = 1024

#: A slot of a component: an account (``kind`` and ``digest`` empty) or one of its digests.
Slot = tuple[AccountKey, str, str]


def account_slot(key: AccountKey) -> Slot:
    return (key, "", "")


def evidence_slots(evidence: AccountEvidence) -> dict[Slot, Sighting]:
    """An account's slots with their first sightings: the account, then each of its digests
    (documents, and name+mobile as ``name_mobile``)."""
    key = evidence.key
    slots: dict[Slot, Sighting] = {account_slot(key): evidence.first}
    for (kind, digest), seen in evidence.documents.items():
        slots[(key, kind, digest)] = seen
    for digest, seen in evidence.name_mobile.items():
        slots[(key, NAME_MOBILE, digest)] = seen
    return slots


def second_of(at: datetime) -> datetime:
    """The whole second (UTC) a sighting falls in: the grain of :func:`sighting_weight`."""
    return at.astimezone(UTC).replace(microsecond=0)


def sighting_weight(seen: Sighting, ties: int = 1) -> int:
    """What one slot adds to its component's version: the whole seconds from its first sighting to
    :data:`HORIZON` (at least 1) times :data:`TIES_PER_SECOND`, plus ``ties``, the number of events
    that showed it within that first second (at least 1, at most ``TIES_PER_SECOND - 1``).

    A slot first seen earlier weighs more: a whole second earlier adds ``TIES_PER_SECOND``, which
    outweighs any ties of the later second. An event in the first second itself (possibly an
    earlier one, or the same time with a smaller event id, which changes the first sighting) adds a
    tie. Only past ``TIES_PER_SECOND - 1`` events in one second of one slot does a tie add nothing;
    if such an event changes the identity, its version is the stored one plus one (see
    :func:`identity_version`).
    """
    seconds = int((HORIZON - second_of(seen.at)).total_seconds())
    return max(seconds, 1) * TIES_PER_SECOND + min(max(ties, 1), TIES_PER_SECOND - 1)


def identity_versions(
    evidence: Mapping[AccountKey, AccountEvidence],
    ties: Mapping[Slot, int],
    links: Sequence[OperatorLink],
    rejected: Collection[AccountKey],
    clustering: Clustering,
    before: Mapping[AccountKey, Placement | None],
) -> dict[str, int]:
    """Each learner's identity version after a re-resolution: the sum, over its evidence
    component, of :func:`sighting_weight` of every slot (each account and each of its digests
    that is evidence, with its first sighting and ``ties``: the events that showed the slot in its
    first second), plus one for each operator decision (link or reject) on its accounts.

    Every term is decided by the set of events and decisions alone (first sightings are minima,
    ties counts), so the version is the same whatever order or batches they came in; it rises
    when an account or a digest is first seen, or seen earlier than before, and with each
    decision; and an event that is none of these leaves it as it is. ``before`` is where the
    accounts were: a learner merged away keeps following its founding account's component.
    """
    size: dict[AccountKey, int] = {}
    for key, root in clustering.components.items():
        weight = int(key in rejected)
        account = evidence.get(key)
        if account is not None:
            for slot, seen in evidence_slots(account).items():
                weight += sighting_weight(seen, ties.get(slot, 1))
        size[root] = size.get(root, 0) + weight
    for link in links:
        if link.account in clustering.components:
            size[clustering.components[link.account]] += 1
    versions = {}
    for key, placement in clustering.placements.items():
        versions[placement.learner_id] = size[clustering.components[key]]
    for key in before:
        if key in clustering.components:
            versions.setdefault(key.learner_id, size[clustering.components[key]])
    return versions


def identity_version(
    state: str, version: int | None, stored_state: str | None, stored_version: int, live: bool
) -> int | None:
    """The version an identity is published with now, or ``None`` when it is not republished.

    ``state`` is the identity as published without its version, ``version`` the one
    :func:`identity_versions` gives it (``None``: not known, e.g. a learner only redirected by a
    merge), and the stored ones are those last published. A live learner is republished when its
    version moved, even if nothing else changed, so its last version is the same however the
    events were ordered. A learner merged away keeps its version until its redirect changes. A
    version that would not rise (none given, or not above the stored one: evidence taken away by a
    retracted content or a crowd, or a version published by an older rule) is the stored version
    plus one, so a published version never falls.
    """
    grew = version is not None and version != stored_version and live
    if state == stored_state and not grew:
        return None
    if version is None or version <= stored_version:
        return stored_version + 1
    return version


def record_version(state: RecordState) -> int:
    """A credit record's version: the number of events behind it."""
    return state.events


class RecordChange(Enum):
    """What storing a derived record does to what was published of it."""

    #: Published as it is: nothing to do.
    SAME = "same"
    #: Never published: published now.
    NEW = "new"
    #: Published with a lower version (or retired): the new value follows.
    UPDATE = "update"
    #: Published, live, with as high a version or higher (it lost events): a tombstone first,
    #: then the new value, so that subscribers who keep the highest version start afresh.
    RESTART = "restart"


@dataclass(frozen=True)
class Published:
    """What was last published of a record: its JSON (``None``: none), version and retirement."""

    value: str | None
    version: int
    retired: bool


def record_change(value: str, version: int, published: Published | None) -> RecordChange:
    """How a record derived now as ``value`` at ``version`` is published, given what was."""
    if published is None:
        return RecordChange.NEW
    if published.value == value and not published.retired:
        return RecordChange.SAME
    if not published.retired and version <= published.version:
        return RecordChange.RESTART
    return RecordChange.UPDATE
