"""Versions: how the version of a published identity or credit record is decided (CONTRACT §5).

Subscribers keep the value with the highest version of each key, so a version must rise with
every change and be the same whatever order or batches the events came in: a replay then
publishes the same bytes. Both versions therefore count events, never batches:

- a learner's identity version is the size of its evidence component (events and operator
  decisions); components only grow, and only a new event or decision can change an identity;
- a credit record's version is the number of events behind it (each content of each source's
  event id). A record can lose events (an account split off, a content retracted); its id is
  then retired with a tombstone first, so that subscribers start that record afresh.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from bridge.core.credits import RecordState
from bridge.core.evidence import AccountKey, OperatorLink
from bridge.core.identity import Clustering, Placement


def identity_versions(
    courses: Mapping[AccountKey, Mapping[str, int]],
    links: Sequence[OperatorLink],
    rejected: Collection[AccountKey],
    clustering: Clustering,
    before: Mapping[AccountKey, Placement | None],
) -> dict[str, int]:
    """Each learner's identity version after a re-resolution: how many events and operator
    decisions its evidence component holds.

    ``courses`` is each account's event count per course key, ``links`` and ``rejected`` the
    operators' link and reject decisions, ``before`` where the accounts were. A learner merged
    away keeps following its founding account's component.
    """
    size: dict[AccountKey, int] = {}
    for key, root in clustering.components.items():
        size[root] = size.get(root, 0) + sum(courses.get(key, {}).values()) + (key in rejected)
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

    ``state`` is the identity as published without its version, ``version`` its component size
    (``None``: not known, e.g. a learner only redirected by a merge), and the stored ones are
    those last published. A live learner is republished when its component grew, even if nothing
    else changed, so its last version is the same however the events were ordered. A learner
    merged away keeps its version until its redirect changes. A version that would not rise
    (none given, or not above the stored one) is the stored version plus one.
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
