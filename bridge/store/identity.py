"""The identity registry: accounts, their evidence, and where they are placed.

The learners the accounts are placed with, and their published identities, are
:mod:`bridge.store.learners`; operators' decisions :mod:`bridge.store.decisions`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, delete, func, insert, select, update

from bridge.core.decisions import DecisionAction
from bridge.core.evidence import NAME_MOBILE, AccountEvidence, AccountKey, EvidenceItem, OperatorLink, Sighting
from bridge.core.identity import Placement
from bridge.core.records import LinkMethod
from bridge.core.versions import second_of
from bridge.store import schema as t
from bridge.store.base import Repository, as_utc, bulk_insert, chunks, members, pairs_in
from bridge.store.decisions import decision_touches


def _account_in(refs, postgres: bool):
    return pairs_in(t.accounts.c.platform, t.accounts.c.account, refs, postgres)


def _evidence_account_in(refs, postgres: bool):
    return pairs_in(t.evidence.c.platform, t.evidence.c.account, refs, postgres)


#: Set an account's first sighting (its earliest event).
SET_ACCOUNT_FIRST = (
    update(t.accounts)
    .where(t.accounts.c.platform == bindparam("b_platform"), t.accounts.c.account == bindparam("b_account"))
    .values(first_at=bindparam("b_at"), first_event_id=bindparam("b_event"))
)
#: Set a digest's first sighting on an account.
SET_EVIDENCE_FIRST = (
    update(t.evidence)
    .where(
        t.evidence.c.platform == bindparam("b_platform"),
        t.evidence.c.account == bindparam("b_account"),
        t.evidence.c.kind == bindparam("b_kind"),
        t.evidence.c.digest == bindparam("b_digest"),
    )
    .values(first_at=bindparam("b_at"), first_event_id=bindparam("b_event"))
)
_PLACE = (
    update(t.accounts)
    .where(t.accounts.c.platform == bindparam("b_platform"), t.accounts.c.account == bindparam("b_account"))
    .values(
        learner_id=bindparam("b_learner"),
        method=bindparam("b_method"),
        linked_at=bindparam("b_at"),
        event_id=bindparam("b_event"),
    )
)


_MORE_HOLDERS = (
    update(t.shared_evidence)
    .where(t.shared_evidence.c.kind == NAME_MOBILE, t.shared_evidence.c.digest == bindparam("b_digest"))
    .values(holders=t.shared_evidence.c.holders + bindparam("b_added"))
)

_OTHER_ACCOUNT = t.accounts.alias("other")


def _holders_of(digests, postgres: bool):
    """The accounts holding any of these ``(kind, digest)`` pairs."""
    e = t.evidence.c
    return select(e.platform, e.account).where(pairs_in(e.kind, e.digest, digests, postgres)).distinct()


#: Each evidence row with its digest's holder count (name+mobile only; rule 8).
_EVIDENCE_WITH_HOLDERS = select(t.evidence, t.shared_evidence.c.holders).select_from(t.evidence).outerjoin(
    t.shared_evidence,
    (t.shared_evidence.c.kind == t.evidence.c.kind) & (t.shared_evidence.c.digest == t.evidence.c.digest),
)


def _sharing_learner(refs, postgres: bool):
    """The accounts, other than ``refs``' own, placed with the learner of one of ``refs``."""
    mine, other = t.accounts, _OTHER_ACCOUNT
    return (
        select(other.c.platform, other.c.account)
        .join_from(mine, other, other.c.learner_id == mine.c.learner_id)
        .where(_account_in(refs, postgres), (other.c.platform != mine.c.platform) | (other.c.account != mine.c.account))
        .distinct()
    )


def _placement(r: Any) -> Placement | None:
    return Placement(r.learner_id, LinkMethod(r.method), as_utc(r.linked_at), r.event_id) if r.learner_id else None


def _keys(rows: Iterable) -> set[AccountKey]:
    return {AccountKey(r.platform, r.account) for r in rows}


@dataclass
class Group:
    """A closed group of accounts as stored: what :func:`bridge.core.identity.cluster` partitions."""

    keys: set[AccountKey]
    #: Accounts that have a row (those only named by a decision are left out).
    evidence: dict[AccountKey, AccountEvidence] = field(default_factory=dict)
    placements: dict[AccountKey, Placement | None] = field(default_factory=dict)
    links: list[OperatorLink] = field(default_factory=list)
    rejected: set[AccountKey] = field(default_factory=set)
    #: Crowded name+mobile digests the accounts hold (rule 8), left out of their evidence.
    crowded: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class StoredAccount:
    """An account as stored: where it is placed (``None`` until resolved), how and since when."""

    key: AccountKey
    learner_id: str | None
    method: str | None
    linked_at: datetime | None
    event_id: str | None
    first_at: datetime
    first_event_id: str


@dataclass(frozen=True)
class StoredEvidence:
    """A digest of evidence an account showed, with the key that made it (never the value)."""

    kind: str
    digest: str
    key_id: str
    first_at: datetime
    first_event_id: str


class Noted(NamedTuple):
    """What noting a batch's evidence changed."""

    #: Name+mobile digests that the batch's new holders made crowded (rule 8).
    crowded: set[str]
    #: Accounts whose identity evidence changed (see :meth:`IdentityRepository.note_evidence`).
    changed: set[AccountKey]


def _moves_first(seen: Sighting, first: Sighting) -> bool:
    """Whether an event seen at ``seen`` changes what an identity holds of a slot first seen at
    ``first``: it is earlier, or another event within the same second (a tie of the identity's
    version, :func:`bridge.core.versions.sighting_weight`). A later second changes nothing."""
    return seen != first and second_of(seen.at) <= second_of(first.at)


class IdentityRepository(Repository):
    """Accounts, their evidence, and where they are placed."""

    def note_accounts(self, seen: Mapping[AccountKey, Sighting]) -> set[AccountKey]:
        """Record that these accounts exist, keeping each one's earliest event.

        Returns the accounts whose identity this changes: new ones, and those seen earlier than,
        or within the same second as, their first sighting (see :func:`_moves_first`).
        """
        a = t.accounts.c
        stored = {}
        for chunk in chunks(sorted((k.platform, k.account) for k in seen)):
            for r in self.conn.execute(select(a.platform, a.account, a.first_at, a.first_event_id).where(_account_in(chunk, self.postgres))):
                stored[AccountKey(r.platform, r.account)] = Sighting(as_utc(r.first_at), r.first_event_id)
        new = [
            {"platform": k.platform, "account": k.account, "first_at": s.at, "first_event_id": s.event_id}
            for k, s in seen.items() if k not in stored
        ]
        earlier = [
            {"b_platform": k.platform, "b_account": k.account, "b_at": s.at, "b_event": s.event_id}
            for k, s in seen.items() if k in stored and s < stored[k]
        ]
        if new:
            bulk_insert(self.conn, t.accounts, new)
        if earlier:
            self.conn.execute(SET_ACCOUNT_FIRST, earlier)
        return {k for k, s in seen.items() if k not in stored or _moves_first(s, stored[k])}

    def note_evidence(self, seen: Mapping[tuple[AccountKey, EvidenceItem], Sighting], max_shared: int = 10) -> Noted:
        """Record these digests of these accounts, keeping each one's earliest sighting.

        Returns the name+mobile digests that these new holders made crowded (rule 8: held by more
        than ``max_shared`` accounts), so their earlier holders can be re-resolved once, and the
        accounts whose identity evidence this changes: a digest new to them, or seen earlier than,
        or within the same second as, its first sighting on them.
        """
        e = t.evidence.c
        accounts = sorted({(k.platform, k.account) for k, _ in seen})
        stored: dict[tuple[str, str, str, str], Sighting] = {}
        for chunk in chunks(accounts):
            for r in self.conn.execute(
                select(e.platform, e.account, e.kind, e.digest, e.first_at, e.first_event_id).where(_evidence_account_in(chunk, self.postgres))
            ):
                stored[(r.platform, r.account, r.kind, r.digest)] = Sighting(as_utc(r.first_at), r.first_event_id)
        new, earlier, changed = [], [], set()
        for (key, item), sighting in seen.items():
            known = stored.get((key.platform, key.account, item.kind, item.digest))
            if known is None:
                new.append({"platform": key.platform, "account": key.account, "kind": item.kind, "digest": item.digest,
                            "key_id": item.key_id, "first_at": sighting.at, "first_event_id": sighting.event_id})
            elif sighting < known:
                earlier.append({"b_platform": key.platform, "b_account": key.account, "b_kind": item.kind,
                                "b_digest": item.digest, "b_at": sighting.at, "b_event": sighting.event_id})
            if known is None or _moves_first(sighting, known):
                changed.add(key)
        if new:
            bulk_insert(self.conn, t.evidence, new)
        if earlier:
            self.conn.execute(SET_EVIDENCE_FIRST, earlier)
        crowded = self._count_holders(Counter(row["digest"] for row in new if row["kind"] == NAME_MOBILE), max_shared)
        return Noted(crowded, changed)

    def _count_holders(self, added: Mapping[str, int], max_shared: int) -> set[str]:
        """Add ``added`` new holders to each name+mobile digest's count (rule 8); returns the
        digests that this made crowded (more holders than ``max_shared``)."""
        if not added:
            return set()
        s = t.shared_evidence.c
        before: dict[str, int] = {}
        for chunk in chunks(sorted(added)):
            for digest, holders in self.conn.execute(
                select(s.digest, s.holders).where(s.kind == NAME_MOBILE, members(s.digest, chunk, self.postgres))
            ):
                before[digest] = holders
        fresh = [{"kind": NAME_MOBILE, "digest": d, "holders": n} for d, n in sorted(added.items()) if d not in before]
        grown = [{"b_digest": d, "b_added": n} for d, n in sorted(added.items()) if d in before]
        if fresh:
            bulk_insert(self.conn, t.shared_evidence, fresh)
        if grown:
            self.conn.execute(_MORE_HOLDERS, grown)
        return {d for d, n in added.items() if before.get(d, 0) <= max_shared < before.get(d, 0) + n}

    def recount_holders(self) -> None:
        """Count every name+mobile digest's holders afresh (after a bulk load that bypassed
        :meth:`note_evidence`)."""
        e = t.evidence.c
        self.conn.execute(delete(t.shared_evidence))
        self.conn.execute(
            insert(t.shared_evidence).from_select(
                ["kind", "digest", "holders"],
                select(e.kind, e.digest, func.count()).where(e.kind == NAME_MOBILE).group_by(e.kind, e.digest),
            )
        )

    def holders(self, digests: Iterable[str]) -> dict[str, list[AccountKey]]:
        """The accounts holding each of these name+mobile digests (called for digests that just
        became crowded, so each has a bounded number of holders: the bound plus one batch)."""
        e = t.evidence.c
        found: dict[str, list[AccountKey]] = {}
        for chunk in chunks(sorted(set(digests))):
            for r in self.conn.execute(
                select(e.digest, e.platform, e.account).where(e.kind == NAME_MOBILE, members(e.digest, chunk, self.postgres))
            ):
                found.setdefault(r.digest, []).append(AccountKey(r.platform, r.account))
        return {d: sorted(keys) for d, keys in found.items()}

    def group(self, seeds: Iterable[AccountKey], max_shared: int = 10) -> Group:
        """Every account that shares evidence, a learner or a decision with the seeds, transitively,
        with everything re-resolution needs of them.

        Each account's own rows (account, evidence, decisions) are read once, when the closure
        reaches it; two more queries per round find the accounts sharing its digests or learners.
        A crowded name+mobile (rule 8: more than ``max_shared`` holders) is no evidence: it is
        left out of the accounts' evidence and never followed, so a crowd costs nothing here.
        """
        snap = Group(keys=set(seeds))
        decisions: dict[str, Any] = {}
        frontier = sorted(snap.keys)
        while frontier:
            found: set[AccountKey] = set()
            for chunk in chunks(frontier):
                refs = [(k.platform, k.account) for k in chunk]
                placed = False
                for r in self.conn.execute(select(t.accounts).where(_account_in(refs, self.postgres))):
                    key = AccountKey(r.platform, r.account)
                    snap.evidence[key] = AccountEvidence(key, Sighting(as_utc(r.first_at), r.first_event_id))
                    snap.placements[key] = _placement(r)
                    placed = placed or r.learner_id is not None
                shared: set[tuple[str, str]] = set()
                for r in self.conn.execute(_EVIDENCE_WITH_HOLDERS.where(_evidence_account_in(refs, self.postgres))):
                    ev = snap.evidence.get(AccountKey(r.platform, r.account))
                    if ev is None:
                        continue
                    seen = Sighting(as_utc(r.first_at), r.first_event_id)
                    if r.kind == NAME_MOBILE:
                        if (r.holders or 0) > max_shared:
                            snap.crowded.add(r.digest)
                            continue
                        ev.name_mobile[r.digest] = seen
                        # A name+mobile of one holder has nobody to share it with.
                        if r.holders is None or r.holders > 1:
                            shared.add((r.kind, r.digest))
                    else:
                        ev.documents[(r.kind, r.digest)] = seen
                        ev.document_keys[(r.kind, r.digest)] = r.key_id
                        shared.add((r.kind, r.digest))
                # The other accounts holding the chunk's digests: looked up by digest (an index
                # search per digest) from what was just read, never a self-join, whose plan a
                # planner without statistics can start from a crowd's rows.
                for digests in chunks(sorted(shared)):
                    found.update(_keys(self.conn.execute(_holders_of(digests, self.postgres))))
                if placed:
                    found.update(AccountKey(p, a) for p, a in self.conn.execute(_sharing_learner(refs, self.postgres)))
                for r in self.conn.execute(select(t.decisions).where(decision_touches(refs, self.postgres))):
                    decisions[r.decision_id] = r
                    found.add(AccountKey(r.platform, r.account))
                    if r.anchor_platform:
                        found.add(AccountKey(r.anchor_platform, r.anchor_account))
            frontier = sorted(found - snap.keys)
            snap.keys |= found
        links = []
        for r in decisions.values():
            account = AccountKey(r.platform, r.account)
            if r.action == DecisionAction.LINK.value:
                links.append(
                    OperatorLink(r.decision_id, account, AccountKey(r.anchor_platform, r.anchor_account), as_utc(r.decided_at))
                )
            else:
                snap.rejected.add(account)
        snap.links = sorted(links, key=lambda l: (l.at, l.decision_id))
        return snap

    def place(self, placements: Mapping[AccountKey, Placement]) -> None:
        """Move these accounts to their learners, with how and when they were linked (one statement)."""
        if placements:
            self.conn.execute(
                _PLACE,
                [
                    {"b_platform": k.platform, "b_account": k.account, "b_learner": p.learner_id,
                     "b_method": p.method.value, "b_at": p.linked_at, "b_event": p.event_id}
                    for k, p in sorted(placements.items())
                ],
            )

    def accounts_of(self, learner_id: str) -> list[AccountKey]:
        return sorted(
            _keys(
                self.conn.execute(
                    select(t.accounts.c.platform, t.accounts.c.account).where(t.accounts.c.learner_id == learner_id)
                )
            )
        )

    def learner_of(self, key: AccountKey) -> str | None:
        return self.conn.execute(
            select(t.accounts.c.learner_id).where(t.accounts.c.platform == key.platform, t.accounts.c.account == key.account)
        ).scalar_one_or_none()

    def placements_with_learners(self, keys: Iterable[AccountKey]) -> dict[AccountKey, Placement | None]:
        """These accounts and every other account placed with the same learners, with where each
        is placed (``None``: not yet): what re-deriving their records needs, without re-resolving."""
        refs = sorted({(k.platform, k.account) for k in keys})
        found: dict[AccountKey, Placement | None] = {}
        learners: set[str] = set()
        for chunk in chunks(refs):
            for r in self.conn.execute(select(t.accounts).where(_account_in(chunk, self.postgres))):
                found[AccountKey(r.platform, r.account)] = _placement(r)
                if r.learner_id:
                    learners.add(r.learner_id)
        for chunk in chunks(sorted(learners)):
            for r in self.conn.execute(select(t.accounts).where(members(t.accounts.c.learner_id, chunk, self.postgres))):
                found[AccountKey(r.platform, r.account)] = _placement(r)
        return found

    def learners_without_accounts(self, learner_ids: Iterable[str]) -> set[str]:
        """Which of these learners no account is placed with any more."""
        ids = sorted(set(learner_ids))
        held: set[str] = set()
        for chunk in chunks(ids):
            held.update(
                self.conn.execute(
                    select(t.accounts.c.learner_id).where(members(t.accounts.c.learner_id, chunk, self.postgres)).group_by(t.accounts.c.learner_id)
                ).scalars()
            )
        return set(ids) - held

    def accounts(self, keys: Iterable[AccountKey]) -> dict[AccountKey, StoredAccount]:
        """These accounts as stored; an account not seen yet is left out."""
        found: dict[AccountKey, StoredAccount] = {}
        for chunk in chunks(sorted({(k.platform, k.account) for k in keys})):
            for r in self.conn.execute(select(t.accounts).where(_account_in(chunk, self.postgres))):
                key = AccountKey(r.platform, r.account)
                found[key] = StoredAccount(key, r.learner_id, r.method, as_utc(r.linked_at), r.event_id,
                                           as_utc(r.first_at), r.first_event_id)
        return found

    def evidence_of(self, keys: Iterable[AccountKey]) -> dict[AccountKey, list[StoredEvidence]]:
        """The evidence each of these accounts showed, by kind and digest (none: an empty list)."""
        wanted = list(keys)
        found: dict[AccountKey, list[StoredEvidence]] = {k: [] for k in wanted}
        e = t.evidence.c
        for chunk in chunks(sorted({(k.platform, k.account) for k in wanted})):
            rows = self.conn.execute(
                select(t.evidence).where(_evidence_account_in(chunk, self.postgres)).order_by(e.platform, e.account, e.kind, e.digest)
            )
            for r in rows:
                found[AccountKey(r.platform, r.account)].append(
                    StoredEvidence(r.kind, r.digest, r.key_id, as_utc(r.first_at), r.first_event_id)
                )
        return found
