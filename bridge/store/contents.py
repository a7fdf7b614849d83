"""One content per event id (CONTRACT §1): the stored contents of event ids, the contents that
lost, and the retraction of a stored content that lost to one arriving after it.

The order that decides which content of an event id is kept is :mod:`bridge.core.contents`; this
module only reads and writes what it needs, inside the pipeline's batch transaction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import bindparam, delete, insert, select, update

from bridge.core.contents import StoredContent, plain_order
from bridge.core.credits import CreditFact
from bridge.core.identity import NAME_MOBILE, AccountKey, EvidenceItem, Sighting
from bridge.store import schema as t
from bridge.store.base import Repository, as_utc, bulk_insert, chunks, members, pairs_in
from bridge.store.identity import SET_ACCOUNT_FIRST, SET_EVIDENCE_FIRST
from bridge.store.ledger import _fact, evidence_items


@dataclass(frozen=True)
class StoredFact:
    """The kept content of an event id as stored: its fact, digest, evidence and coordinates."""

    account: AccountKey
    course_key: str
    fact: CreditFact
    content: StoredContent
    #: How many distinct contents the event id has shown, the kept one included.
    contents: int
    #: The kept content's evidence items; ``None`` for a fact from before revision 0003.
    evidence: tuple[EvidenceItem, ...] | None
    topic: str
    partition: int
    offset: int
    #: The event id's contents that lost: digest -> key id.
    rejected: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.account.platform, self.fact.event_id)


@dataclass
class Retraction:
    """What withdrawing stored contents changed, for the rest of the batch to re-resolve."""

    #: Accounts to re-resolve: those of the retracted facts that remain, the accounts placed with
    #: the same learners, and the holders of the evidence the retracted contents showed.
    accounts: set[AccountKey] = field(default_factory=set)
    #: (learner, course_key) records that lost a fact: re-derived, or retired if nothing is left.
    records: set[tuple[str, str]] = field(default_factory=set)
    #: Accounts left without any fact (and not shown again by the batch): deleted, with the learner
    #: they were placed with (``None``: never placed).
    vanished: dict[AccountKey, str | None] = field(default_factory=dict)


_DROP_EVIDENCE = delete(t.evidence).where(
    t.evidence.c.platform == bindparam("b_platform"),
    t.evidence.c.account == bindparam("b_account"),
    t.evidence.c.kind == bindparam("b_kind"),
    t.evidence.c.digest == bindparam("b_digest"),
)
_DROP_ACCOUNT = delete(t.accounts).where(
    t.accounts.c.platform == bindparam("b_platform"), t.accounts.c.account == bindparam("b_account")
)
_SET_CONTENTS = (
    update(t.credit_facts)
    .where(t.credit_facts.c.platform == bindparam("b_platform"), t.credit_facts.c.event_id == bindparam("b_event"))
    .values(contents=bindparam("b_contents"))
)
_FEWER_HOLDERS = (
    update(t.shared_evidence)
    .where(t.shared_evidence.c.kind == NAME_MOBILE, t.shared_evidence.c.digest == bindparam("b_digest"))
    .values(holders=t.shared_evidence.c.holders - bindparam("b_gone"))
)


class ContentsRepository(Repository):
    """Stored contents of event ids, rejected contents, and retraction of a kept content."""

    def stored_digests(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], tuple[str | None, str | None]]:
        """The content digest and its key id of each of these (platform, event_id) already stored:
        one primary-key look-up per event id, what the plain look-up of processed events cost, and
        enough to recognise a redelivery."""
        f = t.credit_facts.c
        found: dict[tuple[str, str], tuple[str | None, str | None]] = {}
        for chunk in chunks(sorted(set(keys))):
            for r in self.conn.execute(
                select(f.platform, f.event_id, f.content_digest, f.content_key_id).where(
                    pairs_in(f.platform, f.event_id, chunk, self.postgres)
                )
            ):
                found[(r.platform, r.event_id)] = (r.content_digest, r.content_key_id)
        return found

    def stored_contents(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], StoredFact]:
        """The stored content of each of these (platform, event_id) that has one, with the event
        id's rejected contents (read only for event ids that may have other content)."""
        f = t.credit_facts.c
        found: dict[tuple[str, str], StoredFact] = {}
        for chunk in chunks(sorted(set(keys))):
            for r in self.conn.execute(select(t.credit_facts).where(pairs_in(f.platform, f.event_id, chunk, self.postgres))):
                fact = _fact(r)
                found[(r.platform, r.event_id)] = StoredFact(
                    account=AccountKey(r.platform, r.account),
                    course_key=r.course_key,
                    fact=fact,
                    content=StoredContent(plain_order(fact), r.content_digest, r.content_key_id),
                    contents=r.contents,
                    evidence=evidence_items(r.evidence),
                    topic=r.topic,
                    partition=r.partition,
                    offset=r.offset,
                )
        rc = t.rejected_contents.c
        for chunk in chunks(sorted(found)):
            for r in self.conn.execute(
                select(rc.platform, rc.event_id, rc.content_digest, rc.content_key_id).where(
                    pairs_in(rc.platform, rc.event_id, chunk, self.postgres)
                )
            ):
                found[(r.platform, r.event_id)].rejected[r.content_digest] = r.content_key_id
        return found

    def reject_contents(self, rows: list[dict[str, object]]) -> None:
        """Keep the contents that lost (one statement): a redelivery of one is then a duplicate.
        Rows: platform, event_id, content_digest, content_key_id, topic, partition, offset, rejected_at."""
        if rows:
            bulk_insert(self.conn, t.rejected_contents, rows)

    def set_contents(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Set how many distinct contents these stored event ids have shown (one statement)."""
        if counts:
            self.conn.execute(
                _SET_CONTENTS,
                [{"b_platform": p, "b_event": e, "b_contents": n} for (p, e), n in sorted(counts.items())],
            )

    def retract_facts(
        self, losers: list[StoredFact], shown: Mapping[AccountKey, Sighting], max_shared: int = 10
    ) -> Retraction:
        """Withdraw these stored contents, before the batch stores the contents that replace them.

        Deletes their facts (and data-quality notes), then recomputes each of their accounts'
        first sighting and evidence rows from the account's remaining facts: evidence that no
        remaining fact showed is deleted, the rest gets its earliest remaining sighting. An account
        left without facts is deleted with its evidence, unless the batch shows it again
        (``shown``: the batch's accounts with their earliest sighting), which then starts afresh.

        An account that still has facts from before revision 0003 keeps its evidence rows as they
        are: those facts did not record which evidence they showed, so what the retracted content
        alone showed cannot be told apart (the account may keep evidence only that content showed).
        """
        out = Retraction()
        if not losers:
            return out
        a, e, f = t.accounts.c, t.evidence.c, t.credit_facts.c
        affected = sorted({l.account for l in losers})
        refs = [(k.platform, k.account) for k in affected]
        stored_first: dict[AccountKey, Sighting] = {}
        learner_of: dict[AccountKey, str | None] = {}
        for chunk in chunks(refs):
            for r in self.conn.execute(
                select(a.platform, a.account, a.learner_id, a.first_at, a.first_event_id).where(
                    pairs_in(a.platform, a.account, chunk, self.postgres)
                )
            ):
                key = AccountKey(r.platform, r.account)
                learner_of[key] = r.learner_id
                stored_first[key] = Sighting(as_utc(r.first_at), r.first_event_id)
        # Whoever the retracted contents connected these accounts with is re-resolved: the accounts
        # placed with the same learners, and the other holders of the retracted evidence.
        learners = sorted({lid for lid in learner_of.values() if lid is not None})
        for chunk in chunks(learners):
            out.accounts.update(
                AccountKey(p, acc) for p, acc in self.conn.execute(select(a.platform, a.account).where(members(a.learner_id, chunk, self.postgres)))
            )
        for l in losers:
            learner = learner_of.get(l.account)
            if learner is not None:
                out.records.add((learner, l.course_key))

        keys = sorted(l.key for l in losers)
        dq = t.data_quality.c
        for chunk in chunks(keys):
            self.conn.execute(delete(t.credit_facts).where(pairs_in(f.platform, f.event_id, chunk, self.postgres)))
            self.conn.execute(delete(t.data_quality).where(pairs_in(dq.platform, dq.event_id, chunk, self.postgres)))

        remaining: dict[AccountKey, list] = {k: [] for k in affected}
        rows_of: dict[AccountKey, list] = {k: [] for k in affected}
        for chunk in chunks(refs):
            for r in self.conn.execute(
                select(f.platform, f.account, f.event_id, f.occurred_at, f.evidence).where(
                    pairs_in(f.platform, f.account, chunk, self.postgres)
                )
            ):
                remaining[AccountKey(r.platform, r.account)].append(r)
            for r in self.conn.execute(select(t.evidence).where(pairs_in(e.platform, e.account, chunk, self.postgres))):
                rows_of[AccountKey(r.platform, r.account)].append(r)

        drop_evidence, drop_accounts, firsts, evidence_firsts = [], [], [], []
        released: Counter[str] = Counter()
        for key in affected:
            if key not in stored_first:
                continue
            facts = remaining[key]
            expected: dict[tuple[str, str], Sighting] | None = {}
            if not facts and key not in shown:
                out.vanished[key] = learner_of[key]
                drop_accounts.append({"b_platform": key.platform, "b_account": key.account})
                expected = {}
            else:
                first = min((Sighting(as_utc(r.occurred_at), r.event_id) for r in facts), default=shown.get(key))
                if first is not None and first != stored_first[key]:
                    firsts.append({"b_platform": key.platform, "b_account": key.account, "b_at": first.at,
                                   "b_event": first.event_id})
                for r in facts:
                    items = evidence_items(r.evidence)
                    if items is None:
                        expected = None  # a fact from before revision 0003: keep the evidence as it is
                        break
                    seen = Sighting(as_utc(r.occurred_at), r.event_id)
                    for item in items:
                        slot = (item.kind, item.digest)
                        if slot not in expected or seen < expected[slot]:
                            expected[slot] = seen
            if expected is None:
                continue
            for r in rows_of[key]:
                slot = (r.kind, r.digest)
                ids = {"b_platform": key.platform, "b_account": key.account, "b_kind": r.kind, "b_digest": r.digest}
                if slot not in expected:
                    drop_evidence.append(ids)
                    if r.kind == NAME_MOBILE:
                        released[r.digest] += 1
                elif expected[slot] != Sighting(as_utc(r.first_at), r.first_event_id):
                    evidence_firsts.append({**ids, "b_at": expected[slot].at, "b_event": expected[slot].event_id})
        if drop_evidence:
            self.conn.execute(_DROP_EVIDENCE, drop_evidence)
        self.release_shared_evidence(released)
        if evidence_firsts:
            self.conn.execute(SET_EVIDENCE_FIRST, evidence_firsts)
        if firsts:
            self.conn.execute(SET_ACCOUNT_FIRST, firsts)
        if drop_accounts:
            self.conn.execute(_DROP_ACCOUNT, drop_accounts)
        # The other holders of the evidence the retracted contents showed: a name+mobile that they
        # shared may now link (or, un-crowded, link again). A digest still crowded links nothing
        # and re-resolution does not follow it (rule 8): its crowd is left alone.
        digests = {(i.kind, i.digest) for l in losers for i in (l.evidence or ())}
        s = t.shared_evidence.c
        mobile = sorted(d for kind, d in digests if kind == NAME_MOBILE)
        for chunk in chunks(mobile):
            for digest in self.conn.execute(
                select(s.digest).where(s.kind == NAME_MOBILE, members(s.digest, chunk, self.postgres), s.holders > max_shared)
            ).scalars():
                digests.discard((NAME_MOBILE, digest))
        for chunk in chunks(sorted(digests)):
            out.accounts.update(
                AccountKey(p, acc)
                for p, acc in self.conn.execute(
                    select(e.platform, e.account).where(pairs_in(e.kind, e.digest, chunk, self.postgres)).distinct()
                )
            )
        out.accounts -= set(out.vanished)
        out.accounts.update(k for k in affected if k not in out.vanished)
        return out

    def release_shared_evidence(self, released: Mapping[str, int]) -> None:
        """Count fewer holders of these name+mobile digests (``digest -> accounts that no longer
        hold it``) in ``shared_evidence``, deleting a digest's row when no holder is left. The
        counterpart of the count that :meth:`IdentityRepository.note_evidence` raises."""
        if not released:
            return
        self.conn.execute(_FEWER_HOLDERS, [{"b_digest": d, "b_gone": n} for d, n in sorted(released.items())])
        s = t.shared_evidence.c
        for chunk in chunks(sorted(released)):
            self.conn.execute(
                delete(t.shared_evidence).where(s.kind == NAME_MOBILE, members(s.digest, chunk, self.postgres), s.holders <= 0)
            )


__all__ = ["ContentsRepository", "Retraction", "StoredFact"]
