"""Every statement of a batch is an index search on SQLite, never a scan of a table that grows.

The growth target of issue 7 (the cost per event with 1,000,000 learners within 1.3x of 10,000)
holds only while each lookup is a B-tree search. Twice a statement quietly became a scan: a
row-value ``IN`` (a scan of the evidence table) and ``merged_into IS NULL`` next to a primary-key
``IN`` (a scan of the learners' ``merged_into`` index). This runs a realistic batch, asks SQLite for
the plan of every statement it ran, and fails on a scan of a table that grows with the registry.
SQLite plans without statistics here (no ``ANALYZE``), so the plans do not depend on table sizes.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import event

from bridge.tools import simulate
from bridge.bootstrap import build_runtime
from bridge.pipeline import Inbound
from bridge.settings import Settings
from bridge.store.claim import OutboxClaim

#: Tables that grow with the registry and the stream; the outbox is drained and stays small.
GROWING = {"learners", "accounts", "evidence", "credit_facts", "credit_records", "review_items", "data_quality",
           "decisions", "other"}  # "other": the store's self-join alias of accounts and evidence
#: "SCAN t" or "SCAN t USING [COVERING] INDEX i" (a search reads "SEARCH t USING ... (col=?)").
_SCAN = re.compile(r"^SCAN (\w+)")


@pytest.fixture
def statements(tmp_path):
    runtime = build_runtime(Settings(database_url=f"sqlite:///{tmp_path / 'plans.db'}"))
    seen: list[tuple[str, tuple]] = []

    @event.listens_for(runtime.engine, "before_cursor_execute")
    def _record(conn, cursor, statement, parameters, context, executemany) -> None:
        params = parameters[0] if executemany and parameters else parameters
        seen.append((statement, tuple(params or ())))

    messages, _ = simulate.generate(600, seed=11)
    batch = [Inbound(m.topic, 0, i, m.key, m.value) for i, m in enumerate(messages)]
    # Twice: the second pass meets known accounts, records to update and redeliveries.
    for half in (batch[:300], batch[300:]):
        runtime.pipeline.process(half)
        claim = OutboxClaim.open(runtime.units, 1000)
        claim.commit()
    event.remove(runtime.engine, "before_cursor_execute", _record)
    yield runtime.engine, seen
    runtime.engine.dispose()


def test_no_statement_of_a_batch_scans_a_growing_table(statements) -> None:
    engine, seen = statements
    scans = set()
    explained = 0
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        for statement, params in seen:
            if not statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "INSERT")):
                continue
            explained += 1
            for row in raw.execute("EXPLAIN QUERY PLAN " + statement, params).fetchall():
                match = _SCAN.match(row[-1])
                if match and match.group(1) in GROWING:
                    scans.add((row[-1], " ".join(statement.split())[:160]))
    assert explained > 20
    assert not scans, "statements that scan a growing table:\n" + "\n".join(f"{p}\n    {s}" for p, s in sorted(scans))
