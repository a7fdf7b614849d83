"""The identity registry: accounts, their evidence, learners and operator decisions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import func, insert, or_, select, update

from bridge.core.decisions import DecisionAction, OperatorDecision
from bridge.core.identity import (
    NAME_MOBILE,
    AccountEvidence,
    AccountKey,
    EvidenceItem,
    OperatorLink,
    Placement,
    Sighting,
)
from bridge.core.events import Platform
from bridge.core.records import AccountRef, LearnerIdentity, Link, LinkMethod
from bridge.store import schema as t
from bridge.store.base import Repository, as_utc, chunks, pairs_in
from topics.catalogue import LEARNER_IDENTITIES


def _account_in(refs):
    return pairs_in(t.accounts.c.platform, t.accounts.c.account, refs)


def _evidence_account_in(refs):
    return pairs_in(t.evidence.c.platform, t.evidence.c.account, refs)


def _evidence_digest_in(digests):
    return pairs_in(t.evidence.c.kind, t.evidence.c.digest, digests)


def _decision_touches(refs):
    d = t.decisions.c
    return or_(pairs_in(d.platform, d.account, refs), pairs_in(d.anchor_platform, d.anchor_account, refs))


def _keys(rows: Iterable) -> set[AccountKey]:
    return {AccountKey(r.platform, r.account) for r in rows}


class IdentityRepository(Repository):
    """Accounts, evidence, learners and decisions."""

    def note_account(self, key: AccountKey, seen: Sighting) -> None:
        """Record that ``key`` exists; keep its earliest event."""
        row = self.conn.execute(
            select(t.accounts.c.first_at, t.accounts.c.first_event_id).where(
                t.accounts.c.platform == key.platform, t.accounts.c.account == key.account
            )
        ).first()
        if row is None:
            self.conn.execute(
                insert(t.accounts).values(
                    platform=key.platform, account=key.account, first_at=seen.at, first_event_id=seen.event_id
                )
            )
        elif seen < Sighting(as_utc(row.first_at), row.first_event_id):
            self.conn.execute(
                update(t.accounts)
                .where(t.accounts.c.platform == key.platform, t.accounts.c.account == key.account)
                .values(first_at=seen.at, first_event_id=seen.event_id)
            )

    def note_evidence(self, key: AccountKey, item: EvidenceItem, key_id: str, seen: Sighting) -> None:
        """Record a digest for ``key``; keep its earliest sighting."""
        where = (
            t.evidence.c.platform == key.platform,
            t.evidence.c.account == key.account,
            t.evidence.c.kind == item.kind,
            t.evidence.c.digest == item.digest,
        )
        row = self.conn.execute(select(t.evidence.c.first_at, t.evidence.c.first_event_id).where(*where)).first()
        if row is None:
            self.conn.execute(
                insert(t.evidence).values(
                    platform=key.platform,
                    account=key.account,
                    kind=item.kind,
                    digest=item.digest,
                    key_id=key_id,
                    first_at=seen.at,
                    first_event_id=seen.event_id,
                )
            )
        elif seen < Sighting(as_utc(row.first_at), row.first_event_id):
            self.conn.execute(update(t.evidence).where(*where).values(first_at=seen.at, first_event_id=seen.event_id))

    def component(self, seeds: Iterable[AccountKey]) -> set[AccountKey]:
        """Every account that shares evidence, a learner or a decision with the seeds, transitively."""
        known = set(seeds)
        frontier = sorted(known)
        while frontier:
            found: set[AccountKey] = set()
            for chunk in chunks(frontier):
                refs = [(k.platform, k.account) for k in chunk]
                digests = self.conn.execute(
                    select(t.evidence.c.kind, t.evidence.c.digest).where(_evidence_account_in(refs)).distinct()
                ).all()
                for dchunk in chunks([tuple(d) for d in digests]):
                    found |= _keys(
                        self.conn.execute(
                            select(t.evidence.c.platform, t.evidence.c.account).where(_evidence_digest_in(dchunk))
                        )
                    )
                learners = self.conn.execute(
                    select(t.accounts.c.learner_id).where(_account_in(refs), t.accounts.c.learner_id.is_not(None)).distinct()
                ).scalars().all()
                for lchunk in chunks(learners):
                    found |= _keys(
                        self.conn.execute(
                            select(t.accounts.c.platform, t.accounts.c.account).where(t.accounts.c.learner_id.in_(lchunk))
                        )
                    )
                d = t.decisions.c
                for r in self.conn.execute(
                    select(d.platform, d.account, d.anchor_platform, d.anchor_account).where(
                        _decision_touches(refs)
                    )
                ):
                    found.add(AccountKey(r.platform, r.account))
                    if r.anchor_platform:
                        found.add(AccountKey(r.anchor_platform, r.anchor_account))
            frontier = sorted(found - known)
            known |= found
        return known

    def load_evidence(self, keys: Iterable[AccountKey]) -> dict[AccountKey, AccountEvidence]:
        """Everything known of these accounts (those without a row are left out)."""
        refs = sorted((k.platform, k.account) for k in keys)
        result: dict[AccountKey, AccountEvidence] = {}
        for chunk in chunks(refs):
            for r in self.conn.execute(
                select(t.accounts.c.platform, t.accounts.c.account, t.accounts.c.first_at, t.accounts.c.first_event_id).where(
                    _account_in(chunk)
                )
            ):
                key = AccountKey(r.platform, r.account)
                result[key] = AccountEvidence(key, Sighting(as_utc(r.first_at), r.first_event_id))
            for r in self.conn.execute(select(t.evidence).where(_evidence_account_in(chunk))):
                ev = result.get(AccountKey(r.platform, r.account))
                if ev is None:
                    continue
                seen = Sighting(as_utc(r.first_at), r.first_event_id)
                if r.kind == NAME_MOBILE:
                    ev.name_mobile[r.digest] = seen
                else:
                    ev.documents[(r.kind, r.digest)] = seen
                    ev.document_keys[(r.kind, r.digest)] = r.key_id
        return result

    def placements(self, keys: Iterable[AccountKey]) -> dict[AccountKey, Placement | None]:
        refs = sorted((k.platform, k.account) for k in keys)
        result: dict[AccountKey, Placement | None] = {}
        for chunk in chunks(refs):
            for r in self.conn.execute(select(t.accounts).where(_account_in(chunk))):
                key = AccountKey(r.platform, r.account)
                result[key] = (
                    Placement(r.learner_id, LinkMethod(r.method), as_utc(r.linked_at), r.event_id)
                    if r.learner_id
                    else None
                )
        return result

    def decisions_for(self, keys: Iterable[AccountKey]) -> tuple[list[OperatorLink], set[AccountKey]]:
        """Operator links touching these accounts, and the accounts whose match was rejected."""
        refs = sorted((k.platform, k.account) for k in keys)
        links, rejected = [], set()
        for chunk in chunks(refs):
            for r in self.conn.execute(select(t.decisions).where(_decision_touches(chunk))):
                account = AccountKey(r.platform, r.account)
                if r.action == DecisionAction.LINK.value:
                    links.append(
                        OperatorLink(r.decision_id, account, AccountKey(r.anchor_platform, r.anchor_account), as_utc(r.decided_at))
                    )
                else:
                    rejected.add(account)
        unique = {link.decision_id: link for link in links}
        return sorted(unique.values(), key=lambda l: (l.at, l.decision_id)), rejected

    def place(self, key: AccountKey, placement: Placement) -> None:
        self.conn.execute(
            update(t.accounts)
            .where(t.accounts.c.platform == key.platform, t.accounts.c.account == key.account)
            .values(
                learner_id=placement.learner_id,
                method=placement.method.value,
                linked_at=placement.linked_at,
                event_id=placement.event_id,
            )
        )

    def ensure_live_learner(self, learner_id: str) -> None:
        """Create the learner, or bring back one that had been merged away."""
        row = self.conn.execute(select(t.learners.c.merged_into).where(t.learners.c.learner_id == learner_id)).first()
        if row is None:
            self.conn.execute(insert(t.learners).values(learner_id=learner_id, version=0, merged_into=None))
        elif row.merged_into is not None:
            self.conn.execute(update(t.learners).where(t.learners.c.learner_id == learner_id).values(merged_into=None))

    def retire_learner(self, learner_id: str, survivor: str) -> list[str]:
        """Mark ``learner_id`` merged into ``survivor``; learners merged into it follow (merges compose).

        Returns every learner id whose ``merged_into`` changed.
        """
        followers = list(
            self.conn.execute(select(t.learners.c.learner_id).where(t.learners.c.merged_into == learner_id)).scalars()
        )
        if followers:
            self.conn.execute(update(t.learners).where(t.learners.c.merged_into == learner_id).values(merged_into=survivor))
        self.conn.execute(update(t.learners).where(t.learners.c.learner_id == learner_id).values(merged_into=survivor))
        return [learner_id, *followers]

    def is_live(self, learner_id: str) -> bool:
        row = self.conn.execute(select(t.learners.c.merged_into).where(t.learners.c.learner_id == learner_id)).first()
        return row is not None and row.merged_into is None

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

    def identity_state(self, learner_id: str) -> LearnerIdentity:
        """The learner's identity as published, with its stored version."""
        learner = self.conn.execute(select(t.learners).where(t.learners.c.learner_id == learner_id)).one()
        rows = self.conn.execute(
            select(t.accounts).where(t.accounts.c.learner_id == learner_id).order_by(t.accounts.c.platform, t.accounts.c.account)
        ).all()
        return LearnerIdentity(
            learner_id=learner_id,
            accounts=[AccountRef(platform=Platform(r.platform), account=r.account) for r in rows],
            links=[
                Link(
                    platform=Platform(r.platform),
                    account=r.account,
                    method=LinkMethod(r.method),
                    linked_at=as_utc(r.linked_at),
                    event_id=r.event_id,
                )
                for r in rows
            ],
            merged_into=learner.merged_into,
            version=max(learner.version, 1),
        )

    def refresh_identity(self, learner_id: str, version: int | None = None) -> bool:
        """Store the learner's identity state; if it changed, set its version and queue it.

        ``version`` is the size of the learner's evidence component, which grows with every
        event and decision that can change an identity, so it rises with each change and is the
        same whatever order or batches the events came in. Without it, the version rises by one.
        """
        row = self.conn.execute(
            select(t.learners.c.version, t.learners.c.state, t.learners.c.merged_into).where(
                t.learners.c.learner_id == learner_id
            )
        ).one()
        state = self.identity_state(learner_id).model_dump_json(exclude={"version"})
        # A live learner is republished when its component grew, even if nothing else changed, so
        # its last version is the same however the events were ordered. A learner merged away
        # keeps its version until its redirect changes.
        grew = version is not None and version != row.version and row.merged_into is None
        if state == row.state and not grew:
            return False
        if version is None or version <= row.version:
            version = row.version + 1
        self.conn.execute(
            update(t.learners).where(t.learners.c.learner_id == learner_id).values(state=state, version=version)
        )
        self.enqueue(LEARNER_IDENTITIES.name, learner_id)
        return True

    def fact_counts(self, keys: Iterable[AccountKey]) -> dict[AccountKey, int]:
        """How many events of each account were processed."""
        f = t.credit_facts.c
        counts: dict[AccountKey, int] = {}
        for chunk in chunks(sorted((k.platform, k.account) for k in keys)):
            for r in self.conn.execute(
                select(f.platform, f.account, func.count()).where(pairs_in(f.platform, f.account, chunk)).group_by(f.platform, f.account)
            ):
                counts[AccountKey(r.platform, r.account)] = r[2]
        return counts

    def record_decision(self, decision: OperatorDecision) -> bool:
        """Store a decision once; returns False for a redelivered one."""
        exists = self.conn.execute(
            select(t.decisions.c.decision_id).where(t.decisions.c.decision_id == decision.decision_id)
        ).first()
        if exists is not None:
            return False
        self.conn.execute(
            insert(t.decisions).values(
                decision_id=decision.decision_id,
                review_id=decision.review_id,
                action=decision.action.value,
                platform=decision.account.platform.value,
                account=decision.account.account,
                anchor_platform=decision.anchor.platform.value if decision.anchor else None,
                anchor_account=decision.anchor.account if decision.anchor else None,
                decided_by=decision.decided_by,
                decided_at=decision.decided_at,
                note=decision.note,
            )
        )
        return True


def learner_ids_of(placements: Mapping[AccountKey, Placement | None]) -> set[str]:
    return {p.learner_id for p in placements.values() if p is not None}
