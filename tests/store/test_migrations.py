"""Alembic migrations on every backend: they reach head, are idempotent and match the schema module.

The last test is the guard against drift: a change to ``bridge/store/schema.py`` without a
migration (or a migration that does not match the model) fails the suite on both backends.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, insert, select
from sqlalchemy import column as sa_column
from sqlalchemy import table as sa_table

from bridge.core.credits import CreditFact, RecordState, derive_record
from bridge.core.events import EventKind, Platform
from bridge.core.records import AccountRef, LearnerIdentity, Link, LinkMethod
from bridge.store import schema as t
from bridge.store.learners import published_identity
from bridge.store.claim import published_values
from bridge.store.uow import writing
from topics.catalogue import CREDIT_RECORDS
from bridge.store.engine import MIGRATIONS, alembic_config, build_engine, current_revision, head_revision, upgrade

TABLES = {table.name for table in t.metadata.sorted_tables}


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = build_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_there_is_exactly_one_head() -> None:
    heads = ScriptDirectory(str(MIGRATIONS)).get_heads()
    assert len(heads) == 1
    assert heads[0] == head_revision()


def test_upgrade_of_an_empty_database_reaches_head(engine: Engine) -> None:
    assert current_revision(engine) is None
    assert _tables(engine) == set()
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert _tables(engine) == TABLES | {"alembic_version"}


def test_upgrade_twice_is_harmless(engine: Engine) -> None:
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(insert(t.learners).values(learner_id="lrn_keep", version=1, merged_into=None))
        conn.execute(insert(t.outbox).values(topic="credit.records.v1", key="cr_keep"))
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        assert conn.execute(select(t.learners.c.learner_id)).scalars().all() == ["lrn_keep"]
        assert conn.execute(select(t.outbox.c.key)).scalars().all() == ["cr_keep"]
        versions = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
    assert versions == [head_revision()]


def test_the_migrated_database_matches_the_schema_module(engine: Engine) -> None:
    upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        diff = compare_metadata(context, t.metadata)
    assert diff == [], "bridge/store/schema.py and the migrations disagree; add a migration:\n" + "\n".join(
        map(repr, diff)
    )


def test_downgrade_to_base_and_back(engine: Engine) -> None:
    upgrade(engine)
    command.downgrade(alembic_config(engine), "base")
    assert current_revision(engine) is None
    assert _tables(engine) <= {"alembic_version"}
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert _tables(engine) == TABLES | {"alembic_version"}


def _record(learner_id: str, event_id: str) -> RecordState:
    fact = CreditFact(platform="ou", account="S1", event_id=event_id, kind=EventKind.COMPLETED,
                      occurred_at=datetime(2024, 3, 1, 8, tzinfo=timezone.utc), course_id="OU1",
                      platform_credits=2.5, passed=True, score=88.0)
    return derive_record(learner_id, "ou:OU1", [fact], 16.0)


def test_records_written_before_published_values_still_publish_and_compare(engine: Engine) -> None:
    # A record as revision 0001 stored it: its state without id and version, no ready value.
    upgrade(engine, "0001")
    old = _record("lrn_old", "e1")
    legacy = sa_table("credit_records", *(sa_column(c) for c in
                      ("record_id", "learner_id", "course_key", "version", "retired", "state", "status", "credits")))
    with engine.begin() as conn:
        conn.execute(insert(legacy).values(record_id=old.record_id, learner_id="lrn_old", course_key="ou:OU1",
                                           version=1, retired=False, state=old.model_dump_json(),
                                           status="AWARDED", credits=2.5))
    upgrade(engine)
    with writing(engine)() as uow:
        published = published_values(uow, [(CREDIT_RECORDS.name, old.record_id)])
        assert published[(CREDIT_RECORDS.name, old.record_id)] == old.to_record(1).model_dump_json().encode()
        # The same state again is no change: nothing is queued.
        assert uow.ledger.save_records([old]) == 0
        assert uow.outbox.pending(10) == []


def test_downgrade_gives_records_written_since_their_state_back(engine: Engine) -> None:
    upgrade(engine)
    new = _record("lrn_new", "e2")
    with writing(engine)() as uow:
        assert uow.ledger.save_records([new]) == 1
    command.downgrade(alembic_config(engine), "0001")
    with engine.connect() as conn:
        state = conn.exec_driver_sql("SELECT state FROM credit_records").scalar_one()
    assert RecordState.model_validate_json(state) == new


def test_a_ready_identity_value_is_the_models_own_json() -> None:
    identity = LearnerIdentity(
        learner_id="lrn_1",
        accounts=[AccountRef(platform="union", account="U1")],
        links=[Link(platform="union", account="U1", method=LinkMethod.ACCOUNT,
                    linked_at=datetime(2024, 1, 2, tzinfo=timezone.utc), event_id="e1")],
        merged_into=None,
        version=7,
    )
    assert published_identity(identity.model_dump_json(exclude={"version"}), 7) == identity.model_dump_json()
