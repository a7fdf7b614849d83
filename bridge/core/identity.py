"""Identity rules (CONTRACT §3) as one deterministic function of the evidence.

Linking is not decided event by event. The registry keeps, per platform account, every piece of
identity evidence it has seen (keyed-HMAC digests of valid documents and of name+mobile), and
:func:`cluster` partitions a connected group of accounts into learners from that evidence alone.
Because the result depends only on *what* has been seen, never on the order it arrived in, the
same events in any interleaving end in the same learners (rule 5), and a name+mobile link that
later evidence makes ambiguous or contradicts is revisited automatically.

The partition, in order of precedence:

1. Accounts sharing a valid document are one learner (rules 2, 3), resident IDs first; a union
   that would give one learner two different documents of one type is refused and reviewed.
   An account that itself carries two different documents of one type links by none of them
   and is reviewed (rule 6): contradicting evidence is never merged automatically.
2. An operator's decision links an account to another learner, whatever the evidence says.
3. Accounts without any valid document join, by name+mobile, the one learner that shares their
   name+mobile; with several candidates they link nowhere and are reviewed (rule 4). Doc-less
   accounts sharing a name+mobile and no candidate are one learner.

A learner's id derives from its *anchor*: the account that showed a document first, by event
time (or, when none has a document, the account whose first event is earliest). So the learner
that held the document survives a merge, and accounts that join later do not re-key a learner.

:func:`cluster` runs these phases one function each (``_join_documents``, ``_join_decisions``,
``_join_name_mobile``), then places every account with its learner (``_place_learners``) and
lists the questions for an operator (``_reviews``). The evidence it reads is defined in
:mod:`bridge.core.evidence`; what a new partition changes (merges, versions) in
:mod:`bridge.core.merges` and :mod:`bridge.core.versions`.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bridge.core.events import DocumentType
from bridge.core.evidence import NAME_MOBILE, AccountEvidence, AccountKey, Evidence, EvidenceItem, OperatorLink, Sighting
from bridge.core.records import LinkMethod, ReviewKind

__all__ = [
    # The evidence the rules read, from bridge.core.evidence.
    "NAME_MOBILE", "AccountEvidence", "AccountKey", "Evidence", "EvidenceItem", "OperatorLink", "Sighting",
    "Clustering", "PendingReview", "Placement", "cluster", "review_id_for",
]

#: Resident IDs are the strongest evidence and are joined first.
_KIND_ORDER = {DocumentType.RESIDENT_ID.value: 0, DocumentType.PASSPORT.value: 1,
               DocumentType.HK_MACAO_TAIWAN_PERMIT.value: 2}


@dataclass(frozen=True)
class Placement:
    """Where an account belongs and why."""

    learner_id: str
    method: LinkMethod
    linked_at: datetime
    event_id: str | None


@dataclass(frozen=True)
class PendingReview:
    kind: ReviewKind
    account: AccountKey
    candidates: tuple[str, ...]
    #: What the question is about when it is not one account's candidates (a crowd of rule 8):
    #: the review id derives from it alone, so the question is asked once, however the crowd grew.
    subject: str | None = None


@dataclass(frozen=True)
class Clustering:
    placements: dict[AccountKey, Placement]
    reviews: tuple[PendingReview, ...]
    #: Each account's evidence-connected component (any shared digest or decision), by its
    #: smallest account. Components only ever grow, which makes their size a usable version.
    components: dict[AccountKey, AccountKey] = field(default_factory=dict)


class _UnionFind:
    def __init__(self, keys: Iterable[AccountKey]) -> None:
        self.parent = {k: k for k in keys}

    def find(self, key: AccountKey) -> AccountKey:
        root = key
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[key] != root:
            self.parent[key], key = root, self.parent[key]
        return root

    def union(self, a: AccountKey, b: AccountKey) -> AccountKey:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        # The smaller key becomes the root, so roots never depend on the order of unions.
        low, high = (ra, rb) if ra < rb else (rb, ra)
        self.parent[high] = low
        return low


#: Document digests by (document type, key id).
_Docs = dict[tuple[str, str], set[str]]


class _Partition(_UnionFind):
    """The accounts joined so far, with the documents each joined group holds."""

    def __init__(self, accounts: Mapping[AccountKey, AccountEvidence]) -> None:
        super().__init__(accounts)
        #: The documents of each group, by its root (a conflicted account's documents count for nothing).
        self.docs: dict[AccountKey, _Docs] = {
            key: {} if ev.conflicted else {kind: set(d) for kind, d in ev.document_kinds().items()}
            for key, ev in accounts.items()
        }

    def join(self, a: AccountKey, b: AccountKey) -> bool:
        """Join the groups of ``a`` and ``b`` unless that gives one learner two different documents
        of one type (then nothing changes and the answer is ``False``)."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        if _contradicts(self.docs[ra], self.docs[rb]):
            return False
        merged = _merge_docs(self.docs[ra], self.docs[rb])
        self.docs[self.union(ra, rb)] = merged
        return True


def cluster(
    accounts: Mapping[AccountKey, AccountEvidence],
    operator_links: Sequence[OperatorLink] = (),
    rejected: Iterable[AccountKey] = (),
    max_weak: int = 10,
) -> Clustering:
    """Partition ``accounts`` (a closed group: no evidence shared with outsiders) into learners.

    ``max_weak`` is rule 8's bound: name+mobile alone never puts more accounts than that into one
    learner (a chain of accounts each sharing a name+mobile with the next is a crowd too).
    """
    partition = _Partition(accounts)
    holders, conflicts = _join_documents(accounts, partition)
    operator_edges = _join_decisions(accounts, operator_links, partition)
    with_key, ambiguous, chains = _join_name_mobile(accounts, partition, operator_edges, set(rejected), max_weak)
    placements, learner_of_root = _place_learners(accounts, partition, operator_edges)
    reviews = _reviews(partition, learner_of_root, conflicts, ambiguous, chains)
    return Clustering(placements, reviews, _components(accounts, holders, with_key, operator_links))


def _join_documents(
    accounts: Mapping[AccountKey, AccountEvidence], partition: _Partition
) -> tuple[dict[tuple[str, str], list[AccountKey]], dict[AccountKey, set[AccountKey]]]:
    """1. Shared documents, strongest kind first, refusing unions that contradict.

    Returns each document's holders and, for each account refused a union (or itself conflicted),
    the accounts it was refused.
    """
    holders: dict[tuple[str, str], list[AccountKey]] = defaultdict(list)
    for key, ev in accounts.items():
        for doc in ev.documents:
            holders[doc].append(key)
    conflicts: dict[AccountKey, set[AccountKey]] = defaultdict(set)
    for doc in sorted(holders, key=lambda d: (_KIND_ORDER.get(d[0], 9), d[0], d[1])):
        group = sorted(holders[doc])
        clean = [k for k in group if not accounts[k].conflicted]
        for key in group:
            if accounts[key].conflicted:
                conflicts[key].update(k for k in group if k != key)
        for other in clean[1:]:
            if not partition.join(clean[0], other):
                conflicts[other].add(clean[0])
    return holders, conflicts


def _join_decisions(
    accounts: Mapping[AccountKey, AccountEvidence], operator_links: Sequence[OperatorLink], partition: _Partition
) -> dict[AccountKey, list[OperatorLink]]:
    """2. Operator decisions, in the order they were taken; returns the links each account is part of."""
    operator_edges: dict[AccountKey, list[OperatorLink]] = defaultdict(list)
    for link in sorted(operator_links, key=lambda l: (l.at, l.decision_id)):
        # Rule 9: not even an operator joins holders of different valid documents of one type.
        if link.account in accounts and link.anchor in accounts and partition.join(link.account, link.anchor):
            operator_edges[link.account].append(link)
            operator_edges[link.anchor].append(link)
    return operator_edges


def _join_name_mobile(
    accounts: Mapping[AccountKey, AccountEvidence],
    partition: _Partition,
    operator_edges: Mapping[AccountKey, list[OperatorLink]],
    rejected: set[AccountKey],
    max_weak: int,
) -> tuple[dict[str, list[AccountKey]], dict[AccountKey, set[AccountKey]], set[AccountKey]]:
    """3. Name and mobile, for accounts without any valid document.

    Returns each name+mobile's holders, the accounts left unlinked with the candidates they
    could join (rule 4, or rule 8 for a group too large), and the first account of each group
    too large to link (a crowd, reviewed once).
    """
    with_key: dict[str, list[AccountKey]] = defaultdict(list)
    for key, ev in accounts.items():
        for digest in ev.name_mobile:
            with_key[digest].append(key)
    ambiguous: dict[AccountKey, set[AccountKey]] = {}
    #: Accounts each candidate learner has gained by name+mobile (rule 8 bounds them).
    joined: dict[AccountKey, int] = defaultdict(int)
    #: The first account of each group too large to link by name+mobile.
    chains: set[AccountKey] = set()
    for members in _docless_groups(accounts, partition, operator_edges, rejected, with_key):
        member_set = set(members)
        digests = {d for m in members for d in accounts[m].name_mobile}
        candidates = sorted(
            {partition.find(k) for d in digests for k in with_key[d] if k not in member_set}
        )
        if len(candidates) > 1:
            for member in members:
                ambiguous[member] = set(candidates)
            continue
        target = candidates[0] if candidates else None
        weak = len(members) + (joined[target] if target is not None else 0)
        if weak > max_weak:
            # More accounts than rule 8 allows would be one learner by name+mobile alone: none of
            # them links, and one review item asks an operator about the first of them.
            ambiguous[members[0]] = {*members[1:], *candidates}
            chains.add(members[0])
            continue
        for other in members[1:]:
            partition.union(members[0], other)
        if target is not None:
            root = partition.union(members[0], target)
            joined[root] = joined.pop(target, 0) + len(members)
    return with_key, ambiguous, chains


def _docless_groups(
    accounts: Mapping[AccountKey, AccountEvidence],
    partition: _Partition,
    operator_edges: Mapping[AccountKey, list[OperatorLink]],
    rejected: set[AccountKey],
    with_key: Mapping[str, list[AccountKey]],
) -> list[list[AccountKey]]:
    """The accounts that may link by name+mobile (no document, no decision, not rejected by an
    operator), grouped by the name+mobiles they share, each group sorted."""
    docless = [
        k for k in sorted(accounts)
        if not accounts[k].documents and k not in rejected and not partition.docs[partition.find(k)]
        and not operator_edges.get(k)
    ]
    groups = _UnionFind(docless)
    for keys in with_key.values():
        members = [k for k in keys if k in groups.parent]
        for other in members[1:]:
            groups.union(members[0], other)
    by_group: dict[AccountKey, list[AccountKey]] = defaultdict(list)
    for key in docless:
        by_group[groups.find(key)].append(key)
    return list(by_group.values())


def _place_learners(
    accounts: Mapping[AccountKey, AccountEvidence],
    partition: _Partition,
    operator_edges: Mapping[AccountKey, list[OperatorLink]],
) -> tuple[dict[AccountKey, Placement], dict[AccountKey, str]]:
    """4. Learner ids, then each account's placement; returns the placements and each group's learner."""
    clusters: dict[AccountKey, list[AccountKey]] = defaultdict(list)
    for key in sorted(accounts):
        clusters[partition.find(key)].append(key)
    learner_of_root: dict[AccountKey, str] = {}
    placements: dict[AccountKey, Placement] = {}
    for root, members in clusters.items():
        documented = [m for m in members if accounts[m].documents]
        if documented:
            # The account that showed a document first (by event time) anchors the learner: the
            # holder of the document survives a merge, and later joiners do not re-key it.
            anchor = min(documented, key=lambda m: (min(accounts[m].documents.values()), m))
        else:
            anchor = min(members, key=lambda m: (accounts[m].first, m))
        learner_id = anchor.learner_id
        learner_of_root[root] = learner_id
        member_set = set(members)
        for member in members:
            placements[member] = _placement(accounts, member, anchor, member_set, operator_edges, learner_id)
    return placements, learner_of_root


def _reviews(
    partition: _Partition,
    learner_of_root: Mapping[AccountKey, str],
    conflicts: Mapping[AccountKey, set[AccountKey]],
    ambiguous: Mapping[AccountKey, set[AccountKey]],
    chains: set[AccountKey],
) -> tuple[PendingReview, ...]:
    """5. The review items: conflicting documents (rule 6), then ambiguous name+mobiles (rules 4, 8)."""
    reviews = []
    for key in sorted(conflicts):
        candidates = {learner_of_root[partition.find(k)] for k in conflicts[key]} | {learner_of_root[partition.find(key)]}
        reviews.append(PendingReview(ReviewKind.CONFLICTING_DOCUMENT, key, tuple(sorted(candidates))))
    for key in sorted(ambiguous):
        candidates = {learner_of_root[partition.find(k)] for k in ambiguous[key]}
        subject = f"weak-crowd:{key.platform}:{key.account}" if key in chains else None
        reviews.append(PendingReview(ReviewKind.AMBIGUOUS_MATCH, key, tuple(sorted(candidates)), subject))
    return tuple(reviews)


def _components(
    accounts: Mapping[AccountKey, AccountEvidence],
    holders: Mapping[tuple[str, str], list[AccountKey]],
    with_key: Mapping[str, list[AccountKey]],
    operator_links: Sequence[OperatorLink],
) -> dict[AccountKey, AccountKey]:
    connected = _UnionFind(accounts)
    for group in [*holders.values(), *with_key.values()]:
        for other in group[1:]:
            connected.union(group[0], other)
    for link in operator_links:
        if link.account in accounts and link.anchor in accounts:
            connected.union(link.account, link.anchor)
    return {key: connected.find(key) for key in accounts}


def _contradicts(a: Mapping[tuple[str, str], set[str]], b: Mapping[tuple[str, str], set[str]]) -> bool:
    return any(kind in b and b[kind] != digests for kind, digests in a.items())


def _merge_docs(
    a: Mapping[tuple[str, str], set[str]], b: Mapping[tuple[str, str], set[str]]
) -> dict[tuple[str, str], set[str]]:
    merged = {k: set(v) for k, v in a.items()}
    for kind, digests in b.items():
        merged.setdefault(kind, set()).update(digests)
    return merged


def _placement(
    accounts: Mapping[AccountKey, AccountEvidence],
    key: AccountKey,
    anchor: AccountKey,
    members: set[AccountKey],
    operator_edges: Mapping[AccountKey, list[OperatorLink]],
    learner_id: str,
) -> Placement:
    ev = accounts[key]
    if key == anchor:
        return Placement(learner_id, LinkMethod.ACCOUNT, ev.first.at, ev.first.event_id)
    if not ev.conflicted:
        shared = sorted(
            (kind, sighting)
            for (kind, digest), sighting in ev.documents.items()
            if any((kind, digest) in accounts[m].documents for m in members if m != key)
        )
        for wanted, method in ((DocumentType.RESIDENT_ID.value, LinkMethod.RESIDENT_ID), (None, LinkMethod.IDENTITY_DOCUMENT)):
            found = [s for kind, s in shared if wanted is None or kind == wanted]
            if found:
                sighting = min(found)
                return Placement(learner_id, method, sighting.at, sighting.event_id)
    links = [l for l in operator_edges.get(key, ()) if l.account in members and l.anchor in members]
    if links:
        first = min(links, key=lambda l: (l.at, l.decision_id))
        return Placement(learner_id, LinkMethod.OPERATOR, first.at, first.decision_id)
    shared_nm = [s for digest, s in ev.name_mobile.items() if any(digest in accounts[m].name_mobile for m in members if m != key)]
    if shared_nm:
        sighting = min(shared_nm)
        return Placement(learner_id, LinkMethod.NAME_MOBILE, sighting.at, sighting.event_id)
    # Joined through others' links only (e.g. the anchor's operator decision): the account's own
    # first event is the best explanation of when it became part of the learner.
    return Placement(learner_id, LinkMethod.ACCOUNT, ev.first.at, ev.first.event_id)


def review_id_for(review: PendingReview) -> str:
    """A deterministic review id: the same question is asked once."""
    if review.subject is not None:
        parts = [review.kind.value, review.subject]
    else:
        parts = [review.kind.value, review.account.platform, review.account.account, *review.candidates]
    return "rv_" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]
