"""Identity rules (CONTRACT §3) as the pure partition ``cluster``, and pseudonymised evidence.

``cluster`` sees only digests: the tests use short stand-ins (``"r1"``, ``"p1"``, ``"nm1"``) for
them. Account keys are chosen so that the learner id each test expects is visible in the test.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.core.events import (
    CanonicalEvent,
    DocumentProblem,
    DocumentType,
    EventKind,
    IdentityDocument,
    PersonEvidence,
    Platform,
)
from bridge.core.identity import (
    NAME_MOBILE,
    AccountEvidence,
    AccountKey,
    Clustering,
    Evidence,
    OperatorLink,
    PendingReview,
    Placement,
    Sighting,
    cluster,
    review_id_for,
)
from bridge.core.pseudonym import Pseudonymiser
from bridge.core.records import LinkMethod, ReviewKind, learner_id_for

T0 = datetime(2024, 4, 1, tzinfo=UTC)
RID, PASSPORT, PERMIT = (DocumentType.RESIDENT_ID.value, DocumentType.PASSPORT.value,
                         DocumentType.HK_MACAO_TAIWAN_PERMIT.value)


def at(day: int) -> datetime:
    return T0 + timedelta(days=day)


def account(
    platform: str,
    number: str,
    *,
    first: int = 0,
    docs: dict[tuple[str, str], int] | None = None,
    nm: dict[str, int] | None = None,
) -> AccountEvidence:
    """An account first seen on day ``first``; ``docs``/``nm`` map evidence to the day it was seen."""
    key = AccountKey(platform, number)
    return AccountEvidence(
        key,
        Sighting(at(first), f"{number}-first"),
        documents={doc: Sighting(at(d), f"{number}-{doc[1]}") for doc, d in (docs or {}).items()},
        name_mobile={digest: Sighting(at(d), f"{number}-{digest}") for digest, d in (nm or {}).items()},
    )


def run(*accounts: AccountEvidence, links=(), rejected=()) -> Clustering:
    return cluster({a.key: a for a in accounts}, links, rejected)


def learner(result: Clustering, platform: str, number: str) -> str:
    return result.placements[AccountKey(platform, number)].learner_id


def method(result: Clustering, platform: str, number: str) -> LinkMethod:
    return result.placements[AccountKey(platform, number)].method


# -- new accounts -------------------------------------------------------------------------------


def test_an_account_without_a_document_founds_its_own_learner() -> None:
    result = run(account("union", "GH1", first=2))
    assert result.placements == {
        AccountKey("union", "GH1"): Placement(learner_id_for("union", "GH1"), LinkMethod.ACCOUNT, at(2), "GH1-first")
    }
    assert result.reviews == ()


def test_an_account_with_an_unknown_document_founds_its_own_learner() -> None:
    result = run(account("ou", "S1", docs={(RID, "r1"): 0}))
    assert learner(result, "ou", "S1") == learner_id_for("ou", "S1")
    assert method(result, "ou", "S1") is LinkMethod.ACCOUNT
    assert result.reviews == ()


def test_accounts_without_shared_evidence_stay_apart() -> None:
    result = run(
        account("union", "GH1", docs={(RID, "r1"): 0}, nm={"nm1": 0}),
        account("ou", "S1", docs={(RID, "r2"): 0}, nm={"nm2": 0}),
    )
    assert learner(result, "union", "GH1") != learner(result, "ou", "S1")


# -- shared documents ---------------------------------------------------------------------------


def test_a_shared_resident_id_links_by_resident_id() -> None:
    result = run(account("union", "GH1", docs={(RID, "r1"): 3}), account("ou", "S1", docs={(RID, "r1"): 1}))
    assert learner(result, "union", "GH1") == learner(result, "ou", "S1")
    anchor = learner(result, "ou", "S1")
    assert anchor == learner_id_for("ou", "S1")
    assert method(result, "ou", "S1") is LinkMethod.ACCOUNT
    linked = result.placements[AccountKey("union", "GH1")]
    assert (linked.method, linked.linked_at, linked.event_id) == (LinkMethod.RESIDENT_ID, at(3), "GH1-r1")


@pytest.mark.parametrize("kind", [PASSPORT, PERMIT])
def test_a_shared_other_document_links_by_identity_document(kind: str) -> None:
    result = run(account("ou", "S1", docs={(kind, "p1"): 0}), account("ou", "S2", docs={(kind, "p1"): 0}))
    assert learner(result, "ou", "S2") == learner(result, "ou", "S1") == learner_id_for("ou", "S1")
    assert method(result, "ou", "S2") is LinkMethod.IDENTITY_DOCUMENT


def test_equal_digests_of_different_document_types_do_not_link() -> None:
    result = run(account("ou", "S1", docs={(PASSPORT, "x"): 0}), account("ou", "S2", docs={(PERMIT, "x"): 0}))
    assert learner(result, "ou", "S1") != learner(result, "ou", "S2")


def test_a_resident_id_link_explains_itself_before_another_shared_document() -> None:
    both = {(RID, "r1"): 2, (PASSPORT, "p1"): 1}
    later = {(RID, "r1"): 3, (PASSPORT, "p1"): 2}
    result = run(account("ou", "S1", docs=both), account("union", "GH1", docs=later))
    assert method(result, "union", "GH1") is LinkMethod.RESIDENT_ID


def test_an_account_gaining_a_document_keeps_its_learner() -> None:
    before = run(account("union", "GH1"))
    after = run(account("union", "GH1", docs={(RID, "r1"): 5}))
    assert learner(before, "union", "GH1") == learner(after, "union", "GH1") == learner_id_for("union", "GH1")
    assert after.reviews == ()


def test_a_document_shown_later_joins_the_account_to_the_holder() -> None:
    # S-B held the document; the doc-less account GH-A shows it later: one learner, S-B's.
    holder = account("ou", "S-B", first=1, docs={(RID, "d"): 1})
    result = run(account("union", "GH-A", first=0, docs={(RID, "d"): 5}), holder)
    assert learner(result, "union", "GH-A") == learner(result, "ou", "S-B") == learner_id_for("ou", "S-B")
    assert method(result, "union", "GH-A") is LinkMethod.RESIDENT_ID


def test_the_learner_holding_the_document_survives_when_the_newcomer_sorts_first() -> None:
    holder = account("union", "GH-B", first=1, docs={(RID, "d"): 1})
    result = run(account("ou", "S-A", first=0, docs={(RID, "d"): 5}), holder)
    assert learner(result, "ou", "S-A") == learner(result, "union", "GH-B") == learner_id_for("union", "GH-B")


def test_links_are_transitive_across_document_types() -> None:
    result = run(
        account("ou", "S1", docs={(RID, "r1"): 0}),
        account("union", "GH1", docs={(RID, "r1"): 0}),
        account("ou", "S2", docs={(PASSPORT, "p1"): 0}),
        account("ou", "S3", docs={(RID, "r1"): 0, (PASSPORT, "p1"): 0}),
    )
    assert len({p.learner_id for p in result.placements.values()}) == 1


# -- contradicting documents (rule 6) -----------------------------------------------------------


def test_an_account_with_two_resident_ids_is_reviewed_and_never_merged() -> None:
    result = run(
        account("union", "GH1", docs={(RID, "r1"): 0, (RID, "r2"): 4}),
        account("ou", "S1", docs={(RID, "r1"): 1}),
        account("ou", "S2", docs={(RID, "r2"): 1}),
    )
    gh1, s1, s2 = learner(result, "union", "GH1"), learner(result, "ou", "S1"), learner(result, "ou", "S2")
    assert len({gh1, s1, s2}) == 3
    assert gh1 == learner_id_for("union", "GH1")
    assert method(result, "union", "GH1") is LinkMethod.ACCOUNT
    assert result.reviews == (
        PendingReview(ReviewKind.CONFLICTING_DOCUMENT, AccountKey("union", "GH1"), tuple(sorted({gh1, s1, s2}))),
    )


def test_a_known_account_showing_a_different_document_alone_is_reviewed() -> None:
    result = run(account("union", "GH1", docs={(RID, "r1"): 0, (RID, "r2"): 3}))
    gh1 = learner_id_for("union", "GH1")
    assert learner(result, "union", "GH1") == gh1
    assert result.reviews == (PendingReview(ReviewKind.CONFLICTING_DOCUMENT, AccountKey("union", "GH1"), (gh1,)),)


def test_a_union_that_would_give_a_learner_two_resident_ids_is_refused() -> None:
    # A shared passport, but each side holds a different resident ID.
    result = run(
        account("ou", "S1", docs={(RID, "r1"): 0, (PASSPORT, "p1"): 0}),
        account("ou", "S2", docs={(RID, "r2"): 0, (PASSPORT, "p1"): 0}),
    )
    s1, s2 = learner(result, "ou", "S1"), learner(result, "ou", "S2")
    assert s1 != s2
    assert [(r.kind, r.account) for r in result.reviews] == [(ReviewKind.CONFLICTING_DOCUMENT, AccountKey("ou", "S2"))]
    assert result.reviews[0].candidates == tuple(sorted({s1, s2}))


# -- name and mobile (rule 4) -------------------------------------------------------------------


def test_a_docless_account_joins_the_one_learner_with_its_name_and_mobile() -> None:
    result = run(account("ou", "S1", docs={(RID, "r1"): 0}, nm={"nm1": 0}), account("union", "GH1", nm={"nm1": 2}))
    assert learner(result, "union", "GH1") == learner(result, "ou", "S1") == learner_id_for("ou", "S1")
    linked = result.placements[AccountKey("union", "GH1")]
    assert (linked.method, linked.linked_at) == (LinkMethod.NAME_MOBILE, at(2))
    assert result.reviews == ()


def test_the_documented_account_anchors_the_learner_even_when_it_sorts_last() -> None:
    result = run(account("ou", "S1", nm={"nm1": 0}), account("union", "GH1", docs={(RID, "r1"): 0}, nm={"nm1": 0}))
    assert learner(result, "ou", "S1") == learner_id_for("union", "GH1")
    assert method(result, "ou", "S1") is LinkMethod.NAME_MOBILE


def test_an_invalid_document_leaves_name_and_mobile_in_charge() -> None:
    # An invalid number never becomes evidence (Evidence.of keeps only the problem).
    ev = Evidence.of(_event(problem=DocumentProblem.BAD_CHECKSUM), KEY)
    assert [i.kind for i in ev.items] == [NAME_MOBILE]
    assert ev.document_problem == "bad_checksum"


def test_several_name_mobile_candidates_are_reviewed_and_link_nothing() -> None:
    result = run(
        account("ou", "S1", docs={(RID, "r1"): 0}, nm={"nm1": 0}),
        account("ou", "S2", docs={(RID, "r2"): 0}, nm={"nm1": 0}),
        account("union", "GH1", nm={"nm1": 3}),
    )
    gh1 = learner(result, "union", "GH1")
    assert gh1 == learner_id_for("union", "GH1")
    assert method(result, "union", "GH1") is LinkMethod.ACCOUNT
    assert learner(result, "ou", "S1") != learner(result, "ou", "S2")
    assert result.reviews == (
        PendingReview(
            ReviewKind.AMBIGUOUS_MATCH,
            AccountKey("union", "GH1"),
            tuple(sorted({learner_id_for("ou", "S1"), learner_id_for("ou", "S2")})),
        ),
    )


def test_name_and_mobile_never_join_two_documented_learners() -> None:
    result = run(
        account("ou", "S1", docs={(RID, "r1"): 0}, nm={"nm1": 0}),
        account("ou", "S2", docs={(RID, "r2"): 0}, nm={"nm1": 0}),
    )
    assert learner(result, "ou", "S1") != learner(result, "ou", "S2")


def test_docless_accounts_sharing_name_and_mobile_are_one_learner() -> None:
    result = run(account("union", "GH2", nm={"nm1": 0}), account("union", "GH1", nm={"nm1": 1}))
    assert learner(result, "union", "GH2") == learner(result, "union", "GH1") == learner_id_for("union", "GH1")
    assert method(result, "union", "GH2") is LinkMethod.NAME_MOBILE
    assert result.reviews == ()


def test_a_rejected_match_stays_apart() -> None:
    holder = account("ou", "S1", docs={(RID, "r1"): 0}, nm={"nm1": 0})
    result = run(holder, account("union", "GH1", nm={"nm1": 1}), rejected=[AccountKey("union", "GH1")])
    assert learner(result, "union", "GH1") == learner_id_for("union", "GH1")
    assert result.reviews == ()


def test_an_operator_link_joins_whatever_the_evidence_says() -> None:
    link = OperatorLink("dec-1", AccountKey("union", "GH1"), AccountKey("ou", "S1"), at(9))
    result = run(account("ou", "S1", docs={(RID, "r1"): 0}), account("union", "GH1"), links=[link])
    assert learner(result, "union", "GH1") == learner_id_for("ou", "S1")
    placed = result.placements[AccountKey("union", "GH1")]
    assert (placed.method, placed.linked_at, placed.event_id) == (LinkMethod.OPERATOR, at(9), "dec-1")


def test_review_ids_are_deterministic() -> None:
    review = PendingReview(ReviewKind.AMBIGUOUS_MATCH, AccountKey("union", "GH1"), ("lrn_a", "lrn_b"))
    assert review_id_for(review) == review_id_for(PendingReview(review.kind, review.account, review.candidates))
    assert review_id_for(review) != review_id_for(PendingReview(review.kind, review.account, ("lrn_a",)))
    assert review_id_for(review).startswith("rv_")


# -- the partition depends on the evidence only (rule 5) ----------------------------------------

_PLATFORMS = st.sampled_from(["union", "ou"])


@st.composite
def universes(draw: st.DrawFn) -> list[AccountEvidence]:
    """A few accounts drawing documents and name+mobile digests from small pools (many clashes)."""
    n = draw(st.integers(min_value=1, max_value=7))
    keys = draw(st.lists(st.tuples(_PLATFORMS, st.sampled_from(["A", "B", "C", "D", "E", "F", "G"])),
                         min_size=n, max_size=n, unique=True))
    result = []
    for platform, number in keys:
        docs = draw(st.dictionaries(
            st.tuples(st.sampled_from([RID, PASSPORT]), st.sampled_from(["1", "2", "3"])),
            st.integers(min_value=0, max_value=3), max_size=2,
        ))
        nm = draw(st.dictionaries(st.sampled_from(["nm1", "nm2"]), st.integers(min_value=0, max_value=3), max_size=1))
        result.append(account(platform, number, first=draw(st.integers(0, 3)), docs=docs, nm=nm))
    return result


@settings(max_examples=300, deadline=None)
@given(accounts=universes(), data=st.data())
def test_the_partition_does_not_depend_on_the_order_accounts_are_seen(accounts, data) -> None:
    shuffled = data.draw(st.permutations(accounts))
    assert run(*shuffled) == run(*accounts)


@settings(max_examples=300, deadline=None)
@given(accounts=universes())
def test_the_partition_keeps_its_promises(accounts: list[AccountEvidence]) -> None:
    result = run(*accounts)
    by_key = {a.key: a for a in accounts}
    assert set(result.placements) == set(by_key)  # every account belongs to exactly one learner
    members: dict[str, list[AccountKey]] = {}
    for key, placement in result.placements.items():
        members.setdefault(placement.learner_id, []).append(key)
    reviewed = {r.account for r in result.reviews if r.kind is ReviewKind.CONFLICTING_DOCUMENT}
    for learner_id, keys in members.items():
        # The id is one of its own accounts': the documented one when there is one.
        assert learner_id in {k.learner_id for k in keys}
        anchor = next(k for k in keys if k.learner_id == learner_id)
        assert bool(by_key[anchor].documents) == any(by_key[k].documents for k in keys)
        # Never one learner with two different documents of one type from clean accounts (rule 6).
        held: dict[str, set[str]] = {}
        for k in keys:
            if not by_key[k].conflicted:
                for kind, digest in by_key[k].documents:
                    held.setdefault(kind, set()).add(digest)
        assert all(len(digests) == 1 for digests in held.values()), (learner_id, held)
    # Two clean accounts sharing a document are one learner, or the refusal is reviewed.
    for a, b in ((a, b) for a in accounts for b in accounts if a.key < b.key):
        if not a.conflicted and not b.conflicted and set(a.documents) & set(b.documents):
            assert result.placements[a.key].learner_id == result.placements[b.key].learner_id or (
                {a.key, b.key} & reviewed
            )


# -- evidence is pseudonymised (rule 7) ---------------------------------------------------------

KEY = Pseudonymiser.from_secret("test-key-0123456789-0123456789-01")
RAW_RID = "11010519491231002X"


def _event(
    *,
    document: IdentityDocument | None = None,
    problem: DocumentProblem | None = None,
    name: str | None = "张伟",
    mobile: str | None = "13800138000",
    platform: Platform = "union",
    account_no: str = "GH1",
) -> CanonicalEvent:
    return CanonicalEvent(
        platform=platform,
        event_id="e1",
        kind=EventKind.ENROLLED,
        occurred_at=T0,
        account=account_no,
        course_id="C1",
        person=PersonEvidence(document=document, document_problem=problem, name_key=name, mobile_key=mobile),
    )


def _doc(kind: DocumentType = DocumentType.RESIDENT_ID, number: str = RAW_RID) -> IdentityDocument:
    return IdentityDocument(type=kind, number=number)


def _digest(ev: Evidence, kind: str) -> str | None:
    return next((i.digest for i in ev.items if i.kind == kind), None)


def test_evidence_never_exposes_raw_values() -> None:
    ev = Evidence.of(_event(document=_doc()), KEY)
    text = repr(ev) + str(ev) + " ".join(f"{i.kind} {i.digest}" for i in ev.items)
    text += " ".join(str(getattr(ev, f.name)) for f in fields(ev))
    for raw in (RAW_RID, RAW_RID[:17], "张伟", "张", "13800138000"):
        assert raw not in text
    assert [i.kind for i in ev.items] == [RID, NAME_MOBILE]
    assert all(len(i.digest) == 64 for i in ev.items)


def test_evidence_without_name_or_mobile_has_no_name_mobile_item() -> None:
    assert Evidence.of(_event(name=None), KEY).items == ()
    assert Evidence.of(_event(mobile=None), KEY).items == ()


def test_equal_evidence_on_either_platform_gives_equal_digests() -> None:
    union = Evidence.of(_event(document=_doc(), platform="union", account_no="GH1"), KEY)
    ou = Evidence.of(_event(document=_doc(), platform="ou", account_no="S9"), KEY)
    assert union == ou


def test_digests_differ_per_document_type() -> None:
    passport = Evidence.of(_event(document=_doc(DocumentType.PASSPORT, "E12345678")), KEY)
    permit = Evidence.of(_event(document=_doc(DocumentType.HK_MACAO_TAIWAN_PERMIT, "E12345678")), KEY)
    assert _digest(passport, PASSPORT) != _digest(permit, PERMIT)


def test_digests_differ_per_kind_of_value() -> None:
    kinds = ["doc:RESIDENT_ID", "doc:PASSPORT", "doc:HK_MACAO_TAIWAN_PERMIT", NAME_MOBILE]
    assert len({KEY.digest(kind, RAW_RID) for kind in kinds}) == len(kinds)


def test_digests_depend_on_the_key() -> None:
    other = Pseudonymiser.from_secret("another-key-0123456789-0123456789")
    a, b = Evidence.of(_event(document=_doc()), KEY), Evidence.of(_event(document=_doc()), other)
    assert _digest(a, RID) != _digest(b, RID)
    assert _digest(a, NAME_MOBILE) != _digest(b, NAME_MOBILE)
    assert a == Evidence.of(_event(document=_doc()), KEY)  # same key, same digests


def test_name_and_mobile_are_bound_together() -> None:
    def nm(name: str, mobile: str) -> str | None:
        return _digest(Evidence.of(_event(name=name, mobile=mobile), KEY), NAME_MOBILE)

    assert nm("ab", "c") != nm("a", "bc")
    assert nm("张伟", "13800138000") != nm("张伟", "13900139000")
    assert nm("张伟", "13800138000") != nm("李伟", "13800138000")


def test_the_pseudonymiser_keeps_its_key_out_of_repr() -> None:
    secret = "a-very-secret-key-0123456789-abcdef"
    p = Pseudonymiser.from_secret(secret)
    assert secret not in repr(p)
    assert p.key_id == Pseudonymiser.from_secret(secret).key_id
    assert p.key_id != Pseudonymiser.from_secret(secret + "x").key_id
    assert Pseudonymiser.from_secret(secret, key_id="2024-q2").key_id == "2024-q2"


def test_raw_values_stay_out_of_the_event_repr() -> None:
    text = repr(_event(document=_doc()))
    for raw in (RAW_RID, "张伟", "13800138000"):
        assert raw not in text

