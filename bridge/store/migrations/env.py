"""Alembic environment: runs with the engine handed over in ``config.attributes``.

Workers migrate at start-up, so several may try at once: the migration runs in a writer
transaction (SQLite takes its write lock at BEGIN) that first takes a PostgreSQL advisory lock,
so one worker migrates while the others wait and then find the schema at head.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from bridge.store.engine import writer
from bridge.store.schema import metadata

#: Any constant shared by every worker of this schema (the digits spell "bridge" on a keypad).
MIGRATION_LOCK = 274_3437

engine = context.config.attributes["engine"]
with writer(engine).begin() as connection:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": MIGRATION_LOCK})
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    context.run_migrations()
