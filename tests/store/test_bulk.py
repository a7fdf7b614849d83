"""The store's bulk statements, on every backend: ``bulk_insert`` (one ``COPY`` on PostgreSQL) keeps
every value and the order of generated ids, and ``members`` (``= ANY(array)`` on PostgreSQL)
finds what ``IN`` finds."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.exc import IntegrityError

from bridge.store import schema as t
from bridge.store.base import as_utc, bulk_insert, members, pairs_in
from bridge.store.uow import reading, writing
from topics import catalogue

#: Text that COPY's own format would misread if it were not escaped, and text beyond ASCII.
AWKWARD = ["tab\there", "new\nline", "back\\slash", "\\N", "", "张伟 ☃", "quote ' \" ,;", "x" * 128]


def _fact(n: int, account: str) -> dict[str, object]:
    return {
        "platform": "union", "event_id": f"e-{n}", "account": account, "course_key": f"ck-{n % 3}",
        "course_id": f"c-{n}", "kind": "COMPLETED",
        "occurred_at": datetime(2024, 5, 1, 8, 30, 15, 123456, tzinfo=timezone.utc) + timedelta(minutes=n),
        "hours": None if n % 2 else 24.5, "platform_credits": None, "passed": bool(n % 2), "score": 88.0,
        "topic": catalogue.PLATFORM_TOPICS[0].name, "partition": n % 6, "offset": 2**40 + n,
        "content_digest": None, "content_key_id": None, "contents": 1, "evidence": None,
    }


def test_bulk_insert_keeps_every_value(engine: Engine) -> None:
    rows = [_fact(n, account) for n, account in enumerate(AWKWARD)]
    with writing(engine)() as uow:
        bulk_insert(uow.conn, t.credit_facts, rows)
        bulk_insert(uow.conn, t.credit_facts, [])
    with engine.connect() as conn:
        stored = {r.event_id: r for r in conn.execute(select(t.credit_facts))}
    assert len(stored) == len(rows)
    for row in rows:
        got = stored[row["event_id"]]
        assert got.account == row["account"]
        assert as_utc(got.occurred_at) == row["occurred_at"]  # to the microsecond
        assert (got.hours, got.passed, got.offset, got.evidence) == (row["hours"], row["passed"], row["offset"], None)


def test_bulk_insert_gives_generated_ids_in_row_order(engine: Engine) -> None:
    keys = [f"lrn_{n:03d}" for n in range(250)][::-1]
    with writing(engine)() as uow:
        uow.outbox.enqueue(catalogue.LEARNER_IDENTITIES.name, "first")
        uow.outbox.enqueue_many(catalogue.CREDIT_RECORDS.name, keys, tombstone=True)
    with reading(engine)() as uow:
        entries = uow.outbox.pending(1000)
    assert [e.key for e in entries] == ["first", *keys]
    assert all(e.tombstone for e in entries[1:]) and not entries[0].tombstone


def test_members_and_pairs_find_what_in_finds_with_one_parameter_on_postgres(engine: Engine) -> None:
    postgres = engine.dialect.name == "postgresql"
    with writing(engine)() as uow:
        bulk_insert(uow.conn, t.credit_facts, [_fact(n, f"acc-{n % 7}") for n in range(40)])
    f = t.credit_facts.c
    wanted = [f"acc-{n}" for n in (1, 3, 99)] + AWKWARD
    parameters: list[int] = []

    def count(_conn, _cursor, statement, params, _context, _many) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            parameters.append(len(params))

    event.listen(engine, "before_cursor_execute", count)
    try:
        with engine.connect() as conn:
            found = sorted(conn.execute(select(f.event_id).where(members(f.account, wanted, postgres))).scalars())
            by_pairs = sorted(conn.execute(
                select(f.event_id).where(pairs_in(f.platform, f.account, [("union", a) for a in wanted], postgres))
            ).scalars())
            nothing = conn.execute(select(f.event_id).where(members(f.account, [], postgres))).all()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    expected = sorted(f"e-{n}" for n in range(40) if n % 7 in (1, 3))
    assert found == expected and by_pairs == expected and nothing == []
    if postgres:
        # One array parameter, whatever the number of values (plus the platform of pairs_in).
        assert parameters[0] == 1 and parameters[1] == 2
    else:
        assert parameters[0] == len(wanted)


def test_a_failing_bulk_insert_fails_as_any_statement_does(engine: Engine) -> None:
    """A row the table refuses is SQLAlchemy's IntegrityError on every backend (the COPY's driver
    error is wrapped), so the worker isolates the message instead of retrying it for ever."""
    from bridge.failures import Failure, classify

    refused = {**_fact(1, "fine"), "course_id": None}  # NOT NULL
    with pytest.raises(IntegrityError) as caught, writing(engine)() as uow:
        bulk_insert(uow.conn, t.credit_facts, [_fact(0, "fine"), refused])
    assert classify(caught.value) is Failure.DATA
    with engine.connect() as conn:
        assert conn.execute(select(t.credit_facts)).all() == []
