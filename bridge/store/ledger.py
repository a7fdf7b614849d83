"""The credit ledger: the facts behind every record, the records, and data-quality notes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, bindparam, func, insert, or_, select, update

from bridge.core.credits import CreditFact, RecordState
from bridge.core.evidence import AccountEvidence, AccountKey, EvidenceItem
from bridge.core.versions import Published, RecordChange, Slot, account_slot, evidence_slots, record_change, record_version, second_of
from bridge.store import schema as t
from bridge.store.base import Repository, as_utc, bulk_insert, chunks, members, pairs_in
from bridge.store.outbox import OutboxRepository
from topics.catalogue import CREDIT_RECORDS


class LedgerRepository(Repository):
    """Facts (one per processed platform event) and the records derived from them."""

    def __init__(self, conn: Connection, outbox: OutboxRepository) -> None:
        super().__init__(conn)
        #: Where each changed record is queued for publication, in the same transaction.
        self.outbox = outbox

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

    def add_facts(self, rows: list[dict[str, object]]) -> None:
        """Store new facts (one statement); rows come from :func:`fact_row`."""
        if rows:
            bulk_insert(self.conn, t.credit_facts, rows)

    def course_counts(self, keys: Iterable[AccountKey]) -> dict[AccountKey, dict[str, int]]:
        """How many events each of these accounts has per course key: the sum of its facts'
        ``contents`` (a fact counts once per distinct content its event id showed, CONTRACT §1).

        Identity versions need only the counts and re-resolution only the courses, so the facts
        themselves are read for the records that change (:meth:`facts_of`).
        """
        f = t.credit_facts.c
        found: dict[AccountKey, dict[str, int]] = {}
        for chunk in chunks(sorted((k.platform, k.account) for k in keys)):
            rows = self.conn.execute(
                select(f.platform, f.account, f.course_key, func.sum(f.contents))
                .where(pairs_in(f.platform, f.account, chunk, self.postgres))
                .group_by(f.platform, f.account, f.course_key)
            )
            for platform, account, course_key, count in rows:
                found.setdefault(AccountKey(platform, account), {})[course_key] = int(count)
        return found

    def first_second_ties(self, evidence: Mapping[AccountKey, AccountEvidence]) -> dict[Slot, int]:
        """How many facts showed each slot of these accounts (the account, each of its digests)
        within the whole second of the slot's first sighting: the ties of an identity version
        (:func:`bridge.core.versions.sighting_weight`). A slot no fact shows there (evidence of
        facts from before revision 0003) is left out.

        One statement per chunk of accounts, of the same shape whatever the accounts (their facts
        between the chunk's earliest and latest first second), so it is compiled once and, on
        PostgreSQL, prepared once; the seconds are matched here."""
        f = t.credit_facts.c
        wanted: dict[AccountKey, dict[Slot, datetime]] = {
            key: {slot: second_of(seen.at) for slot, seen in evidence_slots(ev).items()} for key, ev in evidence.items()
        }
        ties: dict[Slot, int] = {}
        for chunk in chunks(sorted(wanted)):
            seconds = [second for key in chunk for second in wanted[key].values()]
            rows = self.conn.execute(
                select(f.platform, f.account, f.occurred_at, f.evidence).where(
                    pairs_in(f.platform, f.account, [(k.platform, k.account) for k in chunk], self.postgres),
                    f.occurred_at >= min(seconds), f.occurred_at < max(seconds) + timedelta(seconds=1),
                )
            )
            for r in rows:
                key = AccountKey(r.platform, r.account)
                second = second_of(as_utc(r.occurred_at))
                slots = [account_slot(key), *((key, i.kind, i.digest) for i in evidence_items(r.evidence) or ())]
                for slot in slots:
                    if wanted[key].get(slot) == second:
                        ties[slot] = ties.get(slot, 0) + 1
        return ties

    def facts_of(self, wanted: Mapping[AccountKey, set[str]]) -> dict[AccountKey, list[tuple[str, CreditFact]]]:
        """The facts of each account for the wanted course keys, with their course keys."""
        f = t.credit_facts.c
        found: dict[AccountKey, list[tuple[str, CreditFact]]] = {}
        for chunk in chunks(sorted(wanted)):
            courses = sorted(set().union(*(wanted[k] for k in chunk)))
            rows = self.conn.execute(
                select(*_FACT_COLUMNS).where(
                    pairs_in(f.platform, f.account, [(k.platform, k.account) for k in chunk], self.postgres), members(f.course_key, courses, self.postgres)
                )
            )
            for r in rows:
                key = AccountKey(r.platform, r.account)
                if r.course_key in wanted[key]:
                    found.setdefault(key, []).append((r.course_key, _fact(r)))
        return found

    def facts_for(self, learner_id: str, course_key: str) -> list[CreditFact]:
        """The facts of a learner's record: those of all the learner's accounts for the course."""
        return self.facts_for_records({(learner_id, course_key)}).get((learner_id, course_key), [])

    def facts_for_records(self, wanted: set[tuple[str, str]]) -> dict[tuple[str, str], list[CreditFact]]:
        """The facts behind each wanted (learner, course_key), in one query per chunk of learners."""
        f, a = t.credit_facts, t.accounts
        found: dict[tuple[str, str], list[CreditFact]] = {}
        for chunk in chunks(sorted({learner for learner, _ in wanted})):
            rows = self.conn.execute(
                select(f, a.c.learner_id)
                .join(a, (a.c.platform == f.c.platform) & (a.c.account == f.c.account))
                .where(members(a.c.learner_id, chunk, self.postgres))
            )
            for r in rows:
                key = (r.learner_id, r.course_key)
                if key in wanted:
                    found.setdefault(key, []).append(_fact(r))
        return found

    def save_record(self, state: RecordState) -> bool:
        return self.save_records([state]) == 1

    def save_records(self, states: list[RecordState]) -> int:
        """Store derived records; queue each that changed. Returns how many changed.

        A record's version and whether it restarts (a tombstone first) are the core's rules
        (:func:`bridge.core.versions.record_version`, :func:`~bridge.core.versions.record_change`):
        the version is the number of events behind the record, and a record that lost events
        (an account split off after re-resolution, a content retracted for another of its event
        id) is retired with a tombstone before its new value, so that subscribers who keep the
        highest version start that record afresh.
        """
        c = t.credit_records.c
        stored = {}
        for chunk in chunks(sorted(s.record_id for s in states)):
            for r in self.conn.execute(
                select(c.record_id, c.version, c.state, c.value, c.retired).where(members(c.record_id, chunk, self.postgres))
            ):
                stored[r.record_id] = r
        new, changed, restart, queue = [], [], [], []
        for state in states:
            record_id, version = state.record_id, record_version(state)
            text = state.to_record(version).model_dump_json()
            row = stored.get(record_id)
            change = record_change(
                text, version, None if row is None else Published(published_record(row), row.version, row.retired)
            )
            if change is RecordChange.SAME:
                continue
            values = {"value": text, "state": None, "retired": False, "status": state.status.value,
                      "credits": state.credits, "version": version}
            if change is RecordChange.NEW:
                new.append({"record_id": record_id, "learner_id": state.learner_id, "course_key": state.course_key, **values})
            else:
                if change is RecordChange.RESTART:
                    restart.append(record_id)
                changed.append({"b_record": record_id, **{f"b_{k}": v for k, v in values.items()}})
            queue.append(record_id)
        if new:
            bulk_insert(self.conn, t.credit_records, new)
        if changed:
            self.conn.execute(_CHANGED_RECORD, changed)
        self.outbox.enqueue_many(CREDIT_RECORDS.name, restart, tombstone=True)
        self.outbox.enqueue_many(CREDIT_RECORDS.name, queue)
        return len(queue)

    def retire_records(self, record_ids: list[str]) -> int:
        """Retire records whose learner has no facts for the course any more: tombstones follow."""
        c = t.credit_records.c
        live = []
        for chunk in chunks(sorted(set(record_ids))):
            live += self.conn.execute(select(c.record_id).where(members(c.record_id, chunk, self.postgres), c.retired.is_(False))).scalars().all()
        for chunk in chunks(live):
            self.conn.execute(update(t.credit_records).where(members(c.record_id, chunk, self.postgres)).values(retired=True))
        self.outbox.enqueue_many(CREDIT_RECORDS.name, live)
        return len(live)

    def record_dqs(self, rows: list[dict[str, str]]) -> None:
        """Note data-quality problems of new events (one statement)."""
        if rows:
            bulk_insert(self.conn, t.data_quality, rows)

    def published_records(self, record_ids: Iterable[str]) -> dict[str, str | None]:
        """The published value of each of these records that exists, a few queries for all of
        them (``None``: retired, its tombstone)."""
        c = t.credit_records.c
        values: dict[str, str | None] = {}
        for chunk in chunks(sorted(set(record_ids))):
            for row in self.conn.execute(
                select(c.record_id, c.state, c.value, c.version, c.retired).where(members(c.record_id, chunk, self.postgres))
            ):
                values[row.record_id] = None if row.retired else published_record(row)
        return values

    def live_records_of(self, learner_id: str) -> list[str]:
        """The published values of a learner's live credit records (the console's learner view),
        by course."""
        c = t.credit_records.c
        rows = self.conn.execute(
            select(c.record_id, c.state, c.value, c.version, c.retired)
            .where(c.learner_id == learner_id, c.retired.is_(False)).order_by(c.course_key)
        )
        return [value for value in (published_record(row) for row in rows) if value is not None]

    def published_record_of(self, record_id: str) -> str | None:
        """The published value of a record that exists (``None``: retired, its tombstone)."""
        c = t.credit_records.c
        row = self.conn.execute(select(c.state, c.value, c.version, c.retired).where(c.record_id == record_id)).one()
        return None if row.retired else published_record(row)


def published_record(row) -> str | None:
    """A stored record's published JSON; rows from before revision 0002 keep only ``state``."""
    if row.value is not None:
        return row.value
    if row.state is None:
        return None
    return RecordState.model_validate_json(row.state).to_record(row.version).model_dump_json()


#: A fact's columns are named as its model's fields: the list is written once, in CreditFact.
FACT_FIELDS: tuple[str, ...] = tuple(CreditFact.model_fields)
_FACT_COLUMNS = [t.credit_facts.c[name] for name in (*FACT_FIELDS, "course_key")]


def _fact(r) -> CreditFact:
    values = {name: getattr(r, name) for name in FACT_FIELDS}
    values["occurred_at"] = as_utc(values["occurred_at"])
    return CreditFact(**values)


def fact_row(
    fact: CreditFact,
    course_key: str,
    topic: str,
    partition: int,
    offset: int,
    content_digest: str | None = None,
    content_key_id: str | None = None,
    evidence: Iterable[EvidenceItem] | None = None,
) -> dict[str, object]:
    """A fact's row; with the keyed digest of its event's content and the evidence it showed
    (``[[kind, digest, key_id], ...]``), so that the content can be told apart and retracted."""
    row: dict[str, object] = {name: getattr(fact, name) for name in FACT_FIELDS}
    row["kind"] = fact.kind.value
    return row | {
        "course_key": course_key,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "content_digest": content_digest,
        "content_key_id": content_key_id,
        "evidence": None if evidence is None else evidence_json(evidence),
    }


def evidence_json(items: Iterable[EvidenceItem]) -> str:
    """A fact's evidence column: its event's evidence items, ``[[kind, digest, key_id], ...]``.

    Written by hand (it is on every event's path, and ``json.dumps`` costs several times more):
    kinds and hex digests are the bridge's own, only a configured key id is quoted by ``json``.
    """
    parts = []
    for i in items:
        key_id = i.key_id if _PLAIN.fullmatch(i.key_id) else json.dumps(i.key_id)[1:-1]
        parts.append(f'["{i.kind}","{i.digest}","{key_id}"]')
    return "[" + ",".join(parts) + "]"


_PLAIN = re.compile(r"[A-Za-z0-9_.:-]*")


def evidence_items(text: str | None) -> tuple[EvidenceItem, ...] | None:
    """The evidence items of a fact's evidence column (``None``: a fact from before revision 0003)."""
    if text is None:
        return None
    return tuple(EvidenceItem(kind, digest, key_id) for kind, digest, key_id in json.loads(text))


_CHANGED_RECORD = (
    update(t.credit_records)
    .where(t.credit_records.c.record_id == bindparam("b_record"))
    .values(
        state=bindparam("b_state"),
        value=bindparam("b_value"),
        retired=bindparam("b_retired"),
        status=bindparam("b_status"),
        credits=bindparam("b_credits"),
        version=bindparam("b_version"),
    )
)
