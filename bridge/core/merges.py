"""Merges: the learner a learner is merged into when it is left without accounts (CONTRACT §3).

A re-resolution can take every account away from a learner (its accounts now belong with
another), and a retracted content can take away an account altogether. Such a learner is not
deleted: it is marked merged into a live learner, so that subscribers holding its id are
redirected. Which learner survives is decided here, from the placements alone.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from bridge.core.evidence import AccountKey
from bridge.core.identity import Placement


def merge_survivors(
    before: Mapping[AccountKey, Placement | None], placements: Mapping[AccountKey, Placement]
) -> list[tuple[str, str]]:
    """The learners that a re-resolution of a group left without accounts, each with the learner
    it is merged into, sorted by the learner merged away.

    ``before`` is where the group's accounts were, ``placements`` where they are now. A learner
    follows its founding account (the account its id derives from) when that account is still in
    the group, and otherwise the first of its former accounts.
    """
    new_ids = {p.learner_id for p in placements.values()}
    old_ids = {p.learner_id for p in before.values() if p is not None}
    survivors = []
    for gone in sorted(old_ids - new_ids):
        founder = next((k for k in sorted(before) if k.learner_id == gone), None)
        former = [k for k, p in sorted(before.items()) if p is not None and p.learner_id == gone]
        survivor_key = founder if founder is not None and founder in placements else former[0]
        survivors.append((gone, placements[survivor_key].learner_id))
    return survivors


def orphaned_learners(
    vanished: Mapping[AccountKey, str | None], placements: Mapping[AccountKey, Placement]
) -> dict[str, AccountKey]:
    """The learners of accounts that vanished with a retracted content and that no placement of
    the re-resolved group names any more, each with its first vanished account."""
    placed = {p.learner_id for p in placements.values()}
    orphans: dict[str, AccountKey] = {}
    for account, learner_id in sorted(vanished.items()):
        if learner_id is not None and learner_id not in placed:
            orphans.setdefault(learner_id, account)
    return orphans


def orphan_survivors(
    orphans: Mapping[str, AccountKey],
    empty: Collection[str],
    winner_of: Mapping[AccountKey, AccountKey],
    placements: Mapping[AccountKey, Placement],
) -> list[tuple[str, str]]:
    """The orphaned learners left without any account (``empty``: those of ``orphans`` that are
    live and hold no account now), each with the learner it is merged into: the learner of the
    account whose content replaced the retracted one (``winner_of``). An orphan whose replacing
    account has no placement in the group stays as it is. Sorted by the learner merged away."""
    survivors = []
    for learner_id in sorted(empty):
        winner = winner_of.get(orphans[learner_id])
        survivor = placements.get(winner) if winner is not None else None
        if survivor is not None:
            survivors.append((learner_id, survivor.learner_id))
    return survivors
