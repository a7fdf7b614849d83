"""Alembic migrations on every backend: they reach head, are idempotent and match the schema module.

The last test is the guard against drift: a change to ``bridge/store/schema.py`` without a
migration (or a migration that does not match the model) fails the suite on both backends.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, insert, select

from bridge.store import schema as t
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
