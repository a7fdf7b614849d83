"""Identity rules (CONTRACT §3) as one pure decision.

The pipeline looks up what the registry knows (the account's learner, the learner holding the
event's document, learners matching name and mobile) and asks :func:`resolve` what to do. The
answer is a :class:`Resolution`; applying it is the store's job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bridge.core.events import CanonicalEvent, DocumentProblem, DocumentType
from bridge.core.pseudonym import Pseudonymiser
from bridge.core.records import LinkMethod, ReviewKind, learner_id_for


@dataclass(frozen=True)
class Evidence:
    """Pseudonymised identity evidence of one event: digests only."""

    document_type: DocumentType | None = None
    document_digest: str | None = None
    name_mobile_digest: str | None = None
    document_problem: DocumentProblem | None = None

    @classmethod
    def of(cls, event: CanonicalEvent, pseudonymiser: Pseudonymiser) -> Evidence:
        """Pseudonymise the event's evidence (rule 7); raw values go no further."""
        person = event.person
        doc = person.document
        name_mobile = None
        if person.name_key and person.mobile_key:
            name_mobile = pseudonymiser.digest("name_mobile", f"{person.name_key}\x1f{person.mobile_key}")
        return cls(
            document_type=doc.type if doc else None,
            document_digest=pseudonymiser.digest(f"doc:{doc.type.value}", doc.number) if doc else None,
            name_mobile_digest=name_mobile,
            document_problem=person.document_problem,
        )


@dataclass(frozen=True)
class LearnerView:
    """What the decision needs to know of an existing learner."""

    learner_id: str
    documents: Mapping[DocumentType, str] = field(default_factory=dict)

    def conflicts_with(self, doc_type: DocumentType, digest: str) -> bool:
        """True when the learner holds a *different* document of the same type."""
        held = self.documents.get(doc_type)
        return held is not None and held != digest


@dataclass(frozen=True)
class PendingReview:
    kind: ReviewKind
    candidates: tuple[str, ...]


@dataclass(frozen=True)
class Resolution:
    """What to do with an event's account and evidence.

    ``learner_id`` is the learner the account belongs to afterwards. ``link_method`` is set when
    the account is linked for the first time; ``attach_document`` when the event's document
    becomes the learner's; ``merge_from`` names a learner to merge into ``learner_id``.
    """

    learner_id: str
    create_learner: bool = False
    link_method: LinkMethod | None = None
    attach_document: bool = False
    merge_from: str | None = None
    review: PendingReview | None = None


def _document_method(doc_type: DocumentType) -> LinkMethod:
    if doc_type is DocumentType.RESIDENT_ID:
        return LinkMethod.RESIDENT_ID
    return LinkMethod.IDENTITY_DOCUMENT


def resolve(
    platform: str,
    account: str,
    evidence: Evidence,
    account_owner: LearnerView | None,
    document_owner: LearnerView | None,
    name_mobile_candidates: Sequence[LearnerView] = (),
) -> Resolution:
    """Decide where an event's account belongs (rules 1-6)."""
    doc_type, digest = evidence.document_type, evidence.document_digest
    has_doc = doc_type is not None and digest is not None

    if account_owner is not None:
        if not has_doc or (document_owner and document_owner.learner_id == account_owner.learner_id):
            return Resolution(account_owner.learner_id)
        if account_owner.conflicts_with(doc_type, digest):
            # Rule 6: a different valid document for a known account is never merged alone.
            candidates = [account_owner.learner_id]
            if document_owner is not None:
                candidates.append(document_owner.learner_id)
            return Resolution(
                account_owner.learner_id,
                review=PendingReview(ReviewKind.CONFLICTING_DOCUMENT, tuple(sorted(candidates))),
            )
        if document_owner is None:
            return Resolution(account_owner.learner_id, attach_document=True)
        # Rule 5: the document shows two learners are one; the holder of the document survives.
        return Resolution(document_owner.learner_id, merge_from=account_owner.learner_id)

    if has_doc:
        if document_owner is not None:
            return Resolution(document_owner.learner_id, link_method=_document_method(doc_type))
        return Resolution(
            learner_id_for(platform, account),
            create_learner=True,
            link_method=LinkMethod.ACCOUNT,
            attach_document=True,
        )

    own_id = learner_id_for(platform, account)
    candidates = sorted({c.learner_id for c in name_mobile_candidates})
    if len(candidates) == 1:
        # Rule 4: a doc-less account joins the one learner with the same name and mobile.
        return Resolution(candidates[0], link_method=LinkMethod.NAME_MOBILE)
    if len(candidates) > 1:
        return Resolution(
            own_id,
            create_learner=True,
            link_method=LinkMethod.ACCOUNT,
            review=PendingReview(ReviewKind.AMBIGUOUS_MATCH, tuple(candidates)),
        )
    return Resolution(own_id, create_learner=True, link_method=LinkMethod.ACCOUNT)
