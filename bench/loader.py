"""Fill the registry with N synthetic learners, fast: the scale test behind the growth figures.

Each synthetic learner is what the pipeline stores after processing its history: its platform
accounts with their first sighting and their placement (the learner they belong to, how and
since when), the identity evidence of each account (resident-ID and name+mobile digests), one
credit fact per event, the learner with its published identity and version, and the credit
records derived from the facts with their versions. Nothing is left in the outbox: all of it
counts as published. tests/bench/test_loader.py replays the same histories through the real
pipeline and compares every row, so a change of the store's rules shows up there.

The rows are computed with the core's own functions (``person_evidence``, ``Evidence.of``,
``cluster`` for the placements, ``CreditFact.from_event``, ``derive_record``, the published
models) and written in bulk: SQLAlchemy Core ``executemany`` in chunks, or ``COPY`` on
PostgreSQL. Learner ``i`` is a pure function of ``i`` (:mod:`bench.synthetic`), so a workload
can send events for preloaded learners without reading the database.

Usage: ``python -m bench.loader --learners 1000000 --database-url sqlite:///var/bench/registry.db``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sqlalchemy import Connection, Engine, Index, MetaData, Table, func, insert, inspect, select

from bench.synthetic import MAX_LEARNERS, SyntheticLearner, history, synthetic_learner
from bridge.core.courses import CourseKeys, load_equivalences
from bridge.core.credits import CreditFact, derive_record
from bridge.core.events import Platform
from bridge.core.identity import NAME_MOBILE, AccountEvidence, AccountKey, Evidence, Sighting, cluster
from bridge.core.contents import NewContent
from bridge.core.pseudonym import Pseudonymiser
from bridge.core.records import AccountRef, LearnerIdentity, Link, record_id_for
from bridge.core.versions import Slot, evidence_slots, identity_versions, second_of
from adapters.ou import TOPIC as OU_TOPIC
from adapters.union import TOPIC as UNION_TOPIC
from bridge.store import schema as t
from bridge.store.learners import published_identity
from bridge.store.ledger import evidence_json
from bridge.store.identity import IdentityRepository

#: Learners generated and written per transaction. 10,000 keeps a chunk's rows (~80,000) to a
#: few tens of MB while making the per-transaction overhead negligible.
CHUNK = 10_000
#: Partitions the facts claim to come from (the catalogue default).
PARTITIONS = 6

LEARNER_COLUMNS = ("learner_id", "merged_into", "version", "state", "value")
ACCOUNT_COLUMNS = ("platform", "account", "learner_id", "method", "linked_at", "event_id", "first_at", "first_event_id")
EVIDENCE_COLUMNS = ("platform", "account", "kind", "digest", "key_id", "first_at", "first_event_id")
FACT_COLUMNS = (
    "platform", "event_id", "account", "course_key", "course_id", "kind", "occurred_at",
    "hours", "platform_credits", "passed", "score", "topic", "partition", "offset",
    "content_digest", "content_key_id", "contents", "evidence",
)
RECORD_COLUMNS = ("record_id", "learner_id", "course_key", "version", "retired", "value", "status", "credits")
#: Tables in insertion order with the columns each row tuple holds.
TABLES: tuple[tuple[Table, tuple[str, ...]], ...] = (
    (t.learners, LEARNER_COLUMNS),
    (t.accounts, ACCOUNT_COLUMNS),
    (t.evidence, EVIDENCE_COLUMNS),
    (t.credit_facts, FACT_COLUMNS),
    (t.credit_records, RECORD_COLUMNS),
)


# -- the rows the pipeline would have written -----------------------------------------------


@dataclass
class Rows:
    """Row tuples per table, in the column order of :data:`TABLES`."""

    by_table: dict[str, list[tuple[Any, ...]]] = field(default_factory=lambda: {table.name: [] for table, _ in TABLES})

    def count(self, table: Table) -> int:
        return len(self.by_table[table.name])


@dataclass(frozen=True)
class Params:
    """What row generation needs, in a form that pickles into worker processes."""

    pseudonymiser: Pseudonymiser
    course_table: dict[tuple[str, str], str]  # CourseKeys holds a mappingproxy, which does not pickle
    hours_per_credit: float

    @classmethod
    def of(cls, pseudonymiser: Pseudonymiser, course_keys: CourseKeys, hours_per_credit: float) -> Params:
        return cls(pseudonymiser, dict(course_keys.table), hours_per_credit)


def learner_rows(learner: SyntheticLearner, pseudonymiser: Pseudonymiser, course_keys: CourseKeys,
                 hours_per_credit: float, rows: Rows) -> None:
    """Append the registry rows of one learner to ``rows``."""
    events = history(learner)
    key_id = pseudonymiser.key_id
    by_table = rows.by_table

    # What the registry keeps per account: its first event and the first sighting of each digest.
    # Every event of a synthetic learner carries the same person, hence the same digests.
    items = Evidence.of(events[0], pseudonymiser).items
    evidence_column = evidence_json(items)
    evidence: dict[AccountKey, AccountEvidence] = {}
    key_of: dict[tuple[str, str], str] = {}
    facts_by_course: dict[str, list[CreditFact]] = {}
    for offset, event in enumerate(events):
        key = AccountKey(event.platform, event.account)
        seen = Sighting(event.occurred_at, event.event_id)
        known = evidence.setdefault(key, AccountEvidence(key, seen))
        for item in items:
            target = known.name_mobile if item.kind == NAME_MOBILE else known.documents
            slot = item.digest if item.kind == NAME_MOBILE else (item.kind, item.digest)
            target.setdefault(slot, seen)  # type: ignore[index]
            # During a key rotation there is one item per key, each naming its key.
            key_of[(item.kind, item.digest)] = item.key_id or key_id
            if item.kind != NAME_MOBILE:
                known.document_keys[(item.kind, item.digest)] = key_of[(item.kind, item.digest)]
        fact = CreditFact.from_event(event)
        course_key = course_keys.key_for(event.platform, event.course_id)
        facts_by_course.setdefault(course_key, []).append(fact)
        topic = UNION_TOPIC if event.platform == "union" else OU_TOPIC
        by_table[t.credit_facts.name].append(
            (fact.platform, fact.event_id, fact.account, course_key, fact.course_id, fact.kind.value,
             fact.occurred_at, fact.hours, fact.platform_credits, fact.passed, fact.score,
             topic, zlib.crc32(event.account.encode()) % PARTITIONS, learner.index * 8 + offset,
             NewContent.of(event, pseudonymiser).digests[key_id], key_id, 1, evidence_column)
        )

    outcome = cluster(evidence)
    placements = outcome.placements
    learner_ids = {p.learner_id for p in placements.values()}
    if len(learner_ids) != 1:
        raise AssertionError(f"synthetic learner {learner.index} clustered into {len(learner_ids)} learners")
    (learner_id,) = learner_ids
    for key in sorted(evidence):
        ev, placed = evidence[key], placements[key]
        by_table[t.accounts.name].append(
            (key.platform, key.account, learner_id, placed.method.value, placed.linked_at, placed.event_id,
             ev.first.at, ev.first.event_id)
        )
        items = [(kind, digest, seen) for (kind, digest), seen in ev.documents.items()]
        items += [(NAME_MOBILE, digest, seen) for digest, seen in ev.name_mobile.items()]
        for kind, digest, seen in items:
            by_table[t.evidence.name].append(
                (key.platform, key.account, kind, digest, key_of[(kind, digest)], seen.at, seen.event_id)
            )

    identity = LearnerIdentity(
        learner_id=learner_id,
        accounts=[AccountRef(platform=k.platform, account=k.account) for k in sorted(evidence)],
        links=[
            Link(platform=k.platform, account=k.account, method=placements[k].method,
                 linked_at=placements[k].linked_at, event_id=placements[k].event_id)
            for k in sorted(evidence)
        ],
        merged_into=None,
        version=1,
    )
    # An identity's version weighs each slot (account, digest) by its first sighting, plus the
    # events that showed it within that second (bridge.core.versions); every event here shows
    # every digest of the person.
    ties: dict[Slot, int] = {}
    for event in events:
        second = second_of(event.occurred_at)
        for slot, seen in evidence_slots(evidence[AccountKey(event.platform, event.account)]).items():
            if second_of(seen.at) == second:
                ties[slot] = ties.get(slot, 0) + 1
    version = identity_versions(evidence, ties, [], (), outcome, {})[learner_id]
    state = identity.model_dump_json(exclude={"version"})
    by_table[t.learners.name].append((learner_id, None, version, state, published_identity(state, version)))

    for course_key, facts in facts_by_course.items():
        state = derive_record(learner_id, course_key, facts, hours_per_credit)
        # A record's version is the number of events behind it.
        by_table[t.credit_records.name].append(
            (record_id_for(learner_id, course_key), learner_id, course_key, len(facts), False,
             state.to_record(len(facts)).model_dump_json(), state.status.value, state.credits)
        )


def generate_rows(start: int, stop: int, params: Params) -> Rows:
    """The rows of learners ``start`` to ``stop - 1`` (runs in a worker process)."""
    course_keys = CourseKeys(MappingProxyType(params.course_table))
    rows = Rows()
    for index in range(start, stop):
        learner_rows(synthetic_learner(index), params.pseudonymiser, course_keys, params.hours_per_credit, rows)
    return rows


# -- bulk writers -----------------------------------------------------------------------------


def write_core(conn: Connection, rows: Rows) -> None:
    """SQLAlchemy Core ``executemany``, one statement per table and chunk."""
    for table, columns in TABLES:
        batch = rows.by_table[table.name]
        if batch:
            conn.execute(insert(table), [dict(zip(columns, row)) for row in batch])


def write_copy(conn: Connection, rows: Rows) -> None:
    """PostgreSQL ``COPY ... FROM STDIN`` through psycopg 3, inside the connection's transaction."""
    driver = conn.connection.driver_connection
    with driver.cursor() as cursor:
        for table, columns in TABLES:
            batch = rows.by_table[table.name]
            if not batch:
                continue
            names = ", ".join(f'"{c}"' for c in columns)
            with cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
                for row in batch:
                    copy.write_row(row)


def writer_for(engine: Engine) -> Callable[[Connection, Rows], None]:
    return write_copy if engine.dialect.name == "postgresql" else write_core


# -- the load ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadReport:
    learners: int
    rows: dict[str, int]
    seconds: float

    @property
    def per_second(self) -> float:
        return self.learners / self.seconds if self.seconds else float("inf")


def _tune_sqlite(conn: Connection) -> None:
    # A larger page cache for this connection only: the B-tree inserts of random hex ids touch
    # pages all over each index, and the default 2 MB cache turns that into disk reads.
    conn.exec_driver_sql("PRAGMA cache_size=-262144")  # KiB: 256 MB


def load(
    engine: Engine,
    learners: int,
    *,
    pseudonymiser: Pseudonymiser,
    course_keys: CourseKeys,
    hours_per_credit: float,
    start: int = 0,
    chunk: int = CHUNK,
    workers: int | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> LoadReport:
    """Insert learners ``start`` to ``start + learners - 1`` into the registry at ``engine``.

    The schema must exist (``bridge.store.engine.upgrade``). Rows are generated in ``workers``
    processes (default: one per core) while this process writes, one transaction per chunk.
    Into an empty registry, the secondary indexes are dropped first and built once at the end:
    sorting a whole column once is far cheaper than millions of random B-tree inserts.
    ``progress(done, total, seconds)`` is called after each chunk.
    """
    if learners < 0 or start < 0 or start + learners > MAX_LEARNERS:
        raise ValueError(f"learners {start}..{start + learners} out of range (at most {MAX_LEARNERS})")
    params = Params.of(pseudonymiser, course_keys, hours_per_credit)
    write = writer_for(engine)
    workers = workers if workers is not None else os.cpu_count() or 1
    began = time.perf_counter()
    totals = {table.name: 0 for table, _ in TABLES}
    ranges = [(lo, min(lo + chunk, start + learners)) for lo in range(start, start + learners, chunk)]
    done = 0
    with _executor(workers, len(ranges)) as pool, engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            _tune_sqlite(conn)
            conn.commit()
        with conn.begin():
            empty = _is_empty(conn)
        dropped = _drop_indexes(conn) if len(ranges) > 1 and empty else []
        try:
            for rows in _in_order(pool, ranges, params, depth=workers + 1):
                with conn.begin():
                    write(conn, rows)
                for name, batch in rows.by_table.items():
                    totals[name] += len(batch)
                done += rows.count(t.learners)
                if progress:
                    progress(done, learners, time.perf_counter() - began)
        finally:
            if dropped:
                if progress:
                    progress(done, learners, time.perf_counter() - began)
                with conn.begin():
                    for index in dropped:
                        index.create(conn)
        with conn.begin():
            # Rule 8's holder counts, over the whole registry (the chunks cannot count across each other).
            IdentityRepository(conn).recount_holders()
    return LoadReport(learners=done, rows=totals, seconds=time.perf_counter() - began)


def _is_empty(conn: Connection) -> bool:
    return all(conn.execute(select(func.count()).select_from(table)).scalar_one() == 0 for table, _ in TABLES)


def _drop_indexes(conn: Connection) -> list[Index]:
    """Drop the loaded tables' secondary indexes; return them as they were, to create again."""
    dropped = []
    # The Index objects go on copies of the tables: on the real ones they would join the shared
    # metadata, and every later create_all() would try to build each index twice.
    scratch = MetaData()
    with conn.begin():
        inspector = inspect(conn)
        for table, _ in TABLES:
            copy = table.to_metadata(scratch)
            for found in inspector.get_indexes(table.name):
                index = Index(f"{found['name']}", *(copy.c[c] for c in found["column_names"]), unique=found["unique"])
                index.drop(conn)
                dropped.append(index)
    return dropped


def _executor(workers: int, jobs: int) -> Executor:
    # Small loads (tests) are not worth starting processes for.
    if jobs <= 1:
        return ThreadPoolExecutor(max_workers=1)
    return ProcessPoolExecutor(max_workers=workers)


def _in_order(pool: Executor, ranges: Sequence[tuple[int, int]], params: Params, depth: int) -> Iterator[Rows]:
    """Results of ``generate_rows`` in order, at most ``depth`` chunks generated ahead."""
    pending: list[Future[Rows]] = []
    todo = iter(ranges)
    for lo, hi in todo:
        pending.append(pool.submit(generate_rows, lo, hi, params))
        if len(pending) >= depth:
            break
    while pending:
        rows = pending.pop(0).result()
        nxt = next(todo, None)
        if nxt is not None:
            pending.append(pool.submit(generate_rows, nxt[0], nxt[1], params))
        yield rows


def table_counts(engine: Engine) -> dict[str, int]:
    """Row counts of the loaded tables (and the outbox)."""
    with engine.connect() as conn:
        return {
            table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (*(table for table, _ in TABLES), t.outbox)
        }


def print_progress(done: int, total: int, seconds: float) -> None:
    rate = done / seconds if seconds else 0.0
    eta = (total - done) / rate if rate else 0.0
    print(f"loaded {done:,}/{total:,} learners ({rate:,.0f}/s, {seconds:.0f}s elapsed, ~{eta:.0f}s left)",
          file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    from bridge.bootstrap import build_pseudonymiser
    from bridge.settings import Settings
    from bridge.store.engine import build_engine, upgrade

    parser = argparse.ArgumentParser(prog="python -m bench.loader", description=__doc__.split("\n\n")[0])
    parser.add_argument("--learners", type=int, required=True, help="how many synthetic learners to insert")
    parser.add_argument("--database-url", help="registry to fill (default: BRIDGE_DATABASE_URL or the bridge default)")
    parser.add_argument("--start", type=int, default=0, help="index of the first learner (to add to a loaded registry)")
    parser.add_argument("--workers", type=int, default=None, help="row-generating processes (default: cores - 1)")
    args = parser.parse_args(argv)

    settings = Settings()
    if args.database_url:
        settings = settings.with_overrides(database_url=args.database_url)
    engine = build_engine(settings.database_url)
    upgrade(engine)
    course_keys = load_equivalences(str(settings.course_equivalences) if settings.course_equivalences else None)
    report = load(
        engine, args.learners, pseudonymiser=build_pseudonymiser(settings), course_keys=course_keys,
        hours_per_credit=settings.hours_per_credit, start=args.start, workers=args.workers, progress=print_progress,
    )
    rows = ", ".join(f"{name} {n:,}" for name, n in report.rows.items())
    print(f"loaded {report.learners:,} learners in {report.seconds:.1f}s ({report.per_second:,.0f}/s): {rows}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
