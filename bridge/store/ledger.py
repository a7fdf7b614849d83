"""The credit ledger: the facts behind every record, the records, and data-quality notes."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import insert, select, update

from bridge.core.credits import CreditFact, RecordState
from bridge.core.events import EventKind, Platform
from bridge.core.identity import AccountKey
from bridge.store import schema as t
from bridge.store.base import Repository, as_utc, chunks, pairs_in
from topics.catalogue import CREDIT_RECORDS



class LedgerRepository(Repository):
    """Facts (one per processed platform event) and the records derived from them."""

    def known_events(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of the (platform, event_id) pairs were already processed."""
        found: set[tuple[str, str]] = set()
        for chunk in chunks(sorted(set(keys))):
            rows = self.conn.execute(
                select(t.credit_facts.c.platform, t.credit_facts.c.event_id).where(
                    pairs_in(t.credit_facts.c.platform, t.credit_facts.c.event_id, chunk)
                )
            )
            found.update((r.platform, r.event_id) for r in rows)
        return found

    def add_fact(self, fact: CreditFact, course_key: str, topic: str, partition: int, offset: int) -> None:
        self.conn.execute(
            insert(t.credit_facts).values(
                platform=fact.platform.value,
                event_id=fact.event_id,
                account=fact.account,
                course_key=course_key,
                course_id=fact.course_id,
                kind=fact.kind.value,
                occurred_at=fact.occurred_at,
                hours=fact.hours,
                platform_credits=fact.platform_credits,
                passed=fact.passed,
                score=fact.score,
                topic=topic,
                partition=partition,
                offset=offset,
            )
        )

    def course_keys_of(self, keys: Iterable[AccountKey]) -> dict[AccountKey, set[str]]:
        """The course keys each account has facts for."""
        result: dict[AccountKey, set[str]] = {}
        for chunk in chunks(sorted((k.platform, k.account) for k in keys)):
            for r in self.conn.execute(
                select(t.credit_facts.c.platform, t.credit_facts.c.account, t.credit_facts.c.course_key)
                .where(pairs_in(t.credit_facts.c.platform, t.credit_facts.c.account, chunk))
                .distinct()
            ):
                result.setdefault(AccountKey(r.platform, r.account), set()).add(r.course_key)
        return result

    def facts_for(self, learner_id: str, course_key: str) -> list[CreditFact]:
        """The facts of a learner's record: those of all the learner's accounts for the course."""
        f, a = t.credit_facts, t.accounts
        rows = self.conn.execute(
            select(f)
            .join(a, (a.c.platform == f.c.platform) & (a.c.account == f.c.account))
            .where(a.c.learner_id == learner_id, f.c.course_key == course_key)
        )
        return [
            CreditFact(
                platform=Platform(r.platform),
                account=r.account,
                event_id=r.event_id,
                kind=EventKind(r.kind),
                occurred_at=as_utc(r.occurred_at),
                course_id=r.course_id,
                hours=r.hours,
                platform_credits=r.platform_credits,
                passed=r.passed,
                score=r.score,
            )
            for r in rows
        ]

    def save_record(self, state: RecordState) -> bool:
        """Store the derived record; if it changed, queue it.

        A record's version is the number of events behind it: every new event changes the
        record by one version, and the same events give the same version whatever order or
        batches they came in (so a replay publishes the same bytes). When a record loses events
        (an account split off after re-resolution), its id is retired with a tombstone first,
        so that subscribers who keep the highest version start that record afresh.
        """
        record_id = state.record_id
        version = len(state.sources)
        text = state.model_dump_json()
        c = t.credit_records.c
        row = self.conn.execute(select(c.version, c.state, c.retired).where(c.record_id == record_id)).first()
        values = dict(state=text, retired=False, status=state.status.value, credits=state.credits, version=version)
        if row is None:
            self.conn.execute(
                insert(t.credit_records).values(
                    record_id=record_id, learner_id=state.learner_id, course_key=state.course_key, **values
                )
            )
        elif row.state == text and not row.retired:
            return False
        else:
            if not row.retired and version <= row.version:
                self.enqueue(CREDIT_RECORDS.name, record_id, tombstone=True)
            self.conn.execute(update(t.credit_records).where(c.record_id == record_id).values(**values))
        self.enqueue(CREDIT_RECORDS.name, record_id)
        return True

    def retire_record(self, record_id: str) -> bool:
        """Retire a record (its learner has no facts for the course any more): a tombstone follows."""
        c = t.credit_records.c
        row = self.conn.execute(select(c.retired).where(c.record_id == record_id)).first()
        if row is None or row.retired:
            return False
        self.conn.execute(update(t.credit_records).where(c.record_id == record_id).values(retired=True))
        self.enqueue(CREDIT_RECORDS.name, record_id)
        return True

    def record_dq(self, platform: str, event_id: str, reason: str) -> None:
        dq = t.data_quality.c
        exists = self.conn.execute(
            select(dq.reason).where(dq.platform == platform, dq.event_id == event_id, dq.reason == reason)
        ).first()
        if exists is None:
            self.conn.execute(insert(t.data_quality).values(platform=platform, event_id=event_id, reason=reason))
