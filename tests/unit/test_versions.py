"""The core's rules for what a re-resolution changes: merges (``bridge.core.merges``) and the
versions of published identities and records (``bridge.core.versions``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from bridge.core.evidence import AccountEvidence, AccountKey, OperatorLink, Sighting
from bridge.core.identity import Clustering, Placement, cluster
from bridge.core.merges import merge_survivors, orphan_survivors, orphaned_learners
from bridge.core.records import LinkMethod
from bridge.core.versions import (
    HORIZON,
    TIES_PER_SECOND,
    Published,
    RecordChange,
    identity_version,
    identity_versions,
    record_change,
    sighting_weight,
)

T0 = datetime(2024, 4, 1, tzinfo=UTC)
A, B, C = AccountKey("ou", "A"), AccountKey("union", "B"), AccountKey("union", "C")


def placed(key: AccountKey, method: LinkMethod = LinkMethod.ACCOUNT) -> Placement:
    """A placement with the learner ``key`` founds."""
    return Placement(key.learner_id, method, T0, "e1")


# Records: the version counts events; a record that lost events restarts with a tombstone.


def test_a_record_never_published_is_new() -> None:
    assert record_change('{"v":1}', 1, None) is RecordChange.NEW


def test_a_record_published_as_it_is_does_not_change() -> None:
    assert record_change('{"v":2}', 2, Published('{"v":2}', 2, retired=False)) is RecordChange.SAME


def test_a_record_with_more_events_is_updated() -> None:
    assert record_change('{"v":3}', 3, Published('{"v":2}', 2, retired=False)) is RecordChange.UPDATE


def test_a_record_that_lost_events_restarts() -> None:
    assert record_change('{"v":1}', 1, Published('{"v":2}', 2, retired=False)) is RecordChange.RESTART
    # Same count, other content (a retracted content replaced by another): a restart too.
    assert record_change('{"w":2}', 2, Published('{"v":2}', 2, retired=False)) is RecordChange.RESTART


def test_a_retired_record_comes_back_without_a_second_tombstone() -> None:
    assert record_change('{"v":1}', 1, Published('{"v":1}', 5, retired=True)) is RecordChange.UPDATE


# Identities: the version weighs the component's identity evidence; without one it rises by one.


def test_an_identity_unchanged_whose_version_did_not_move_is_not_republished() -> None:
    assert identity_version("s", 4, "s", 4, live=True) is None
    assert identity_version("s", None, "s", 4, live=True) is None


def test_a_live_identity_is_republished_when_its_version_moved() -> None:
    assert identity_version("s", 6, "s", 4, live=True) == 6


def test_a_merged_identity_keeps_its_version_until_its_redirect_changes() -> None:
    assert identity_version("s", 6, "s", 4, live=False) is None
    assert identity_version("t", 6, "s", 4, live=False) == 6


def test_an_identity_version_never_falls() -> None:
    assert identity_version("t", None, "s", 4, live=True) == 5
    assert identity_version("t", 3, "s", 4, live=True) == 5
    assert identity_version("t", 1, None, 0, live=True) == 1
    # A version published by the rule before (events counted) is far below the weights.
    assert identity_version("t", sighting_weight(Sighting(T0, "e")), "s", 250, live=True) > 250


def _account(key: AccountKey, first: datetime = T0, **docs: int) -> AccountEvidence:
    ev = AccountEvidence(key, Sighting(first, f"first-{key.account}"))
    ev.documents.update({("RESIDENT_ID", digest): Sighting(first, f"e-{digest}") for digest in docs})
    return ev


def test_a_slot_weighs_the_seconds_from_its_first_sighting_to_the_horizon_and_its_ties() -> None:
    seen = Sighting(datetime(2099, 12, 31, 23, 59, 0, 500_000, tzinfo=UTC), "e")
    assert sighting_weight(seen) == 60 * TIES_PER_SECOND + 1
    assert sighting_weight(seen, ties=3) == 60 * TIES_PER_SECOND + 3
    # Earlier by a whole second: one second more; within the same second: the same (a tie counts it).
    assert sighting_weight(seen._replace(at=seen.at - timedelta(seconds=1))) == 61 * TIES_PER_SECOND + 1
    assert sighting_weight(seen._replace(at=seen.at - timedelta(microseconds=400_000))) == 60 * TIES_PER_SECOND + 1
    # Never below one second and one tie, even past the horizon.
    assert sighting_weight(Sighting(HORIZON + timedelta(days=1), "e")) == TIES_PER_SECOND + 1
    # Another time zone is the same instant.
    assert sighting_weight(Sighting(T0.astimezone(timezone(timedelta(hours=8))), "e")) == sighting_weight(Sighting(T0, "e"))


def test_a_second_earlier_outweighs_any_ties_of_the_later_second() -> None:
    """Many events in one second (a bulk enrolment), then one a second earlier: the version rises,
    so it ends the same in either order (before, more ties than seconds between fell back to +1)."""
    later = Sighting(T0, "e")
    earlier = Sighting(T0 - timedelta(seconds=1), "e0")
    for ties in (2, 5, 100, TIES_PER_SECOND - 1, TIES_PER_SECOND, 10**6):
        assert sighting_weight(earlier, 1) > sighting_weight(later, ties)
    # Ties count up to the bound, then stop (an absurd second: the version then rises by one).
    assert sighting_weight(later, TIES_PER_SECOND - 1) > sighting_weight(later, TIES_PER_SECOND - 2)
    assert sighting_weight(later, 10**6) == sighting_weight(later, TIES_PER_SECOND - 1)


def test_identity_versions_weigh_the_slots_and_count_the_decisions_of_each_component() -> None:
    accounts = {A: _account(A, r1=0), B: _account(B, T0 + timedelta(days=1), r1=0), C: _account(C)}
    links = [OperatorLink("d1", C, A, T0)]
    outcome = cluster(accounts, links)
    ties = {(A, "", ""): 2, (B, "RESIDENT_ID", "r1"): 3}
    versions = identity_versions(accounts, ties, links, set(), outcome, {A: placed(A), B: placed(B), C: placed(C)})
    w0, w1 = sighting_weight(Sighting(T0, "")) - 1, sighting_weight(Sighting(T0 + timedelta(days=1), "")) - 1
    # A: account (2 ties) and document; B: account and document (3 ties); C: account; one decision.
    expected = (w0 + 2) + (w0 + 1) + (w1 + 1) + (w1 + 3) + (w0 + 1) + 1
    # One learner. B's and C's former learners follow their founders.
    assert versions == {A.learner_id: expected, B.learner_id: expected, C.learner_id: expected}


def test_identity_versions_rise_with_new_evidence_or_an_earlier_sighting_and_ignore_later_events() -> None:
    def version(*accounts: AccountEvidence, ties: dict | None = None) -> int:
        evidence = {a.key: a for a in accounts}
        return identity_versions(evidence, ties or {}, [], set(), cluster(evidence), {})[A.learner_id]

    base = version(_account(A, r1=0))
    assert version(_account(A, r1=0, r2=0)) > base  # new evidence
    assert version(_account(A, r1=0), _account(B, T0 + timedelta(days=3), r1=0)) > base  # a new account
    assert version(_account(A, T0 - timedelta(seconds=1), r1=0)) > base  # seen a second earlier
    assert version(_account(A, r1=0), ties={(A, "", ""): 2}) > base  # another event in the first second
    # The same evidence, whichever event showed it later: the same version.
    assert version(_account(A, r1=0)) == base


def test_identity_versions_count_a_reject_decision() -> None:
    outcome = Clustering({A: placed(A)}, (), {A: A})
    account = _account(A)
    assert identity_versions({A: account}, {}, [], {A}, outcome, {}) == {A.learner_id: sighting_weight(account.first) + 1}


# Merges: a learner left without accounts follows its founding account, or its first former one.


def test_a_learner_left_without_accounts_follows_its_founding_account() -> None:
    before = {A: placed(A), B: placed(B)}
    after = {A: placed(A), B: Placement(A.learner_id, LinkMethod.RESIDENT_ID, T0, "e2")}
    assert merge_survivors(before, after) == [(B.learner_id, A.learner_id)]


def test_a_learner_whose_founder_left_the_group_follows_its_first_former_account() -> None:
    # C was placed with B's learner; B is no longer in the group, C now belongs with A.
    before = {A: placed(A), C: Placement(B.learner_id, LinkMethod.NAME_MOBILE, T0, "e3")}
    after = {A: placed(A), C: Placement(A.learner_id, LinkMethod.RESIDENT_ID, T0, "e4")}
    assert merge_survivors(before, after) == [(B.learner_id, A.learner_id)]


def test_no_merge_when_every_learner_keeps_an_account() -> None:
    assert merge_survivors({A: placed(A), B: None}, {A: placed(A), B: placed(B)}) == []


def test_an_orphaned_learner_follows_the_account_that_replaced_its_content() -> None:
    vanished = {B: B.learner_id, C: None}
    orphans = orphaned_learners(vanished, {A: placed(A)})
    assert orphans == {B.learner_id: B}
    assert orphan_survivors(orphans, {B.learner_id}, {B: A}, {A: placed(A)}) == [(B.learner_id, A.learner_id)]
    # Still holding an account (not empty), or replaced by an account outside the group: it stays.
    assert orphan_survivors(orphans, set(), {B: A}, {A: placed(A)}) == []
    assert orphan_survivors(orphans, {B.learner_id}, {}, {A: placed(A)}) == []


def test_a_learner_still_placed_is_no_orphan() -> None:
    assert orphaned_learners({B: A.learner_id}, {A: placed(A)}) == {}
