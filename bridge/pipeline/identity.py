"""The identity stage: re-resolve the accounts whose identity evidence a batch changed, and
republish their learners.

Only an account whose identity may have changed is re-resolved: one the batch saw for the first
time, or with evidence new to it, or earlier than (or within the same second as) a first sighting
it had, or named by a decision, a retraction or a crowd (``Touched.changed``). Every account
connected to those is partitioned again from its evidence (:func:`bridge.core.identity.cluster`,
CONTRACT §3); accounts that moved are placed with their new learners, learners left without
accounts are merged away (:mod:`bridge.core.merges`), the records whose learner changed are marked
for re-derivation, review items are raised, and each re-resolved learner's identity is stored
with its version (:mod:`bridge.core.versions`). Any other account the batch touched (a known
learner's next course) stays where it is: its placement is read (:func:`place_unchanged`), and
only its records are re-derived.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bridge.core.evidence import AccountKey
from bridge.core.identity import PendingReview, Placement, cluster
from bridge.core.merges import merge_survivors, orphan_survivors, orphaned_learners
from bridge.core.records import ReviewKind
from bridge.core.versions import identity_versions
from bridge.pipeline.batch import BatchResult, Touched
from bridge.store.contents import Retraction
from bridge.store.uow import UnitOfWork


def crowd_review(digest: str, holders: Sequence[AccountKey], placements: Mapping[AccountKey, Placement]) -> PendingReview:
    """The one review item a crowded name+mobile raises (rule 8): its first holder (by platform and
    account), with the learners of the others as the candidates an operator may link it to. Its id
    derives from the digest, so it is one item whichever holders were there when it crowded."""
    account = min(holders)
    candidates = sorted({placements[k].learner_id for k in holders if k != account and k in placements})
    return PendingReview(ReviewKind.AMBIGUOUS_MATCH, account, tuple(candidates), subject=f"crowd:{digest}")


def resolve_identities(uow: UnitOfWork, touched: Touched, result: BatchResult, max_shared: int) -> None:
    """Re-partition every account connected to the accounts whose identity evidence the batch
    changed (CONTRACT §3)."""
    if not touched.changed:
        return
    # A name+mobile that just became crowded (rule 8) stops linking: every account holding
    # it is re-resolved once, now (a bounded number: the bound plus this batch's new holders);
    # from then on it is no evidence and costs nothing.
    crowds = uow.identity.holders(touched.crowds) if touched.crowds else {}
    seeds = set(touched.changed).union(*crowds.values())
    group = uow.identity.group(seeds, max_shared)
    evidence, links, rejected, before = group.evidence, group.links, group.rejected, group.placements
    outcome = cluster(evidence, links, rejected, max_shared)
    result.resolved += len(group.keys)
    # The group holds every account of every learner it touches: one count serves the record
    # keys to refresh; facts are read only for the records that change.
    touched.courses = uow.ledger.course_counts(group.keys)
    touched.placements = outcome.placements

    new_ids = {p.learner_id for p in outcome.placements.values()}
    uow.learners.ensure_live_learners(new_ids)
    moved = {k: p for k, p in outcome.placements.items() if before.get(k) != p}
    uow.identity.place(moved)
    for key, placement in sorted(moved.items()):
        old = before.get(key)
        if old is None or old.learner_id != placement.learner_id:
            result.identity[placement.method.value] += 1
        touched.learners.add(placement.learner_id)
        for course_key in touched.courses.get(key, ()):
            touched.records.add((placement.learner_id, course_key))
            if old is not None:
                touched.records.add((old.learner_id, course_key))
        if old is not None:
            touched.learners.add(old.learner_id)
    # An account that stays where it was changes only the records of its new facts' courses.
    for key, courses in touched.new_courses.items():
        placement = outcome.placements.get(key)
        if placement is not None:
            touched.records.update((placement.learner_id, course_key) for course_key in courses)
    # Every live learner of a re-resolved component gets its version (republished if it moved).
    touched.learners.update(new_ids)

    # Learners that lost every account are merged into where their founding account went.
    for gone, survivor in merge_survivors(before, outcome.placements):
        touched.learners.update(uow.learners.retire_learner(gone, survivor))
        result.identity["merge"] += 1

    ties = uow.ledger.first_second_ties(evidence)
    touched.identity_versions.update(identity_versions(evidence, ties, links, rejected, outcome, before))

    crowd_reviews = [crowd_review(digest, holders, outcome.placements) for digest, holders in crowds.items()]
    for review in [*outcome.reviews, *crowd_reviews]:
        seen = touched.sightings.get(review.account) or evidence[review.account].first
        if uow.reviews.raise_review(review, seen.at, seen.event_id):
            result.reviews += 1


def place_unchanged(uow: UnitOfWork, touched: Touched) -> None:
    """Mark the records of the touched accounts that were not re-resolved (their identity evidence
    is unchanged: a known learner's next course). Their placements, and those of the other accounts
    of their learners, are read as stored, with their event counts per course, for the records."""
    rest = touched.accounts - touched.placements.keys()
    if not rest:
        return
    placed = {k: p for k, p in uow.identity.placements_with_learners(rest).items()
              if p is not None and k not in touched.placements}
    touched.placements.update(placed)
    touched.courses.update(uow.ledger.course_counts(placed))
    for key in rest:
        placement = placed.get(key)
        if placement is not None:
            touched.records.update((placement.learner_id, course_key) for course_key in touched.new_courses.get(key, ()))


def retire_vanished(
    uow: UnitOfWork, touched: Touched, retraction: Retraction, winner_of: Mapping[AccountKey, AccountKey]
) -> None:
    """Retire a learner whose every account vanished with a retracted content: it is merged into
    the learner of the account that holds that event id now, so it is no longer published as a
    live learner (a learner that lost only some of its accounts was re-resolved as any other)."""
    orphans = orphaned_learners(retraction.vanished, touched.placements)
    if not orphans:
        return
    empty = uow.identity.learners_without_accounts(orphans) & uow.learners.live(orphans)
    for learner_id, survivor in orphan_survivors(orphans, empty, winner_of, touched.placements):
        touched.learners.update(uow.learners.retire_learner(learner_id, survivor))


def refresh_identities(uow: UnitOfWork, touched: Touched, result: BatchResult) -> None:
    """Store the touched learners' identities with their versions; queue those that changed."""
    result.identities_changed += uow.learners.refresh_identities(
        {learner_id: touched.identity_versions.get(learner_id) for learner_id in touched.learners}
    )
