"""PostgreSQL for benchmark runs: whether the server answers, and a fresh database per run, dropped afterwards."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


@contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """A fresh database on ``server_url`` for one run, dropped afterwards (best effort)."""
    base = make_url(server_url).set(drivername="postgresql+psycopg")
    name = f"bench_{uuid.uuid4().hex[:12]}"
    # Pre-ping: the server may have restarted during the run (it is shared), and the drop must
    # not fail on a dead pooled connection.
    admin = create_engine(base, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            try:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            except Exception as exc:  # noqa: BLE001 - a leftover database must not lose the run's figures
                print(f"bench: could not drop database {name} ({type(exc).__name__}); drop it by hand",
                      file=sys.stderr)
    finally:
        admin.dispose()


def postgres_available(server_url: str) -> str | None:
    """``None`` when the server answers, else why not."""
    engine = create_engine(make_url(server_url).set(drivername="postgresql+psycopg"), connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means: skip PostgreSQL, say why
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        engine.dispose()
    return None
