"""Two workers resolving the same learners at once stay consistent (issue 5), on both backends.

Each person has a union and an open-university account with the same resident ID; one
"worker" processes all the union events while another processes all the open-university
events, at the same time, on one database. Whatever the interleaving of their transactions,
every person must end as one learner with both accounts, as if the batches had run in turn.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

import adapters
from bridge.core.courses import CourseKeys
from bridge.core.pseudonym import Pseudonymiser
from bridge.failures import is_conflict
from bridge.pipeline import Inbound, Pipeline
from bridge.store.uow import writing
from bridge.store import schema as t
from bridge.store.engine import build_engine, upgrade
from tests.factories import OU, UNION, encode, ou_event, resident_id, union_event

PERSONS = 40


def process_with_retries(pipeline: Pipeline, batch: list[Inbound], conflicts: list[str]) -> None:
    """What the worker does: redo the batch when it lost a race with another one."""
    for _ in range(200):
        try:
            pipeline.process(batch)
            return
        except SQLAlchemyError as exc:
            if not is_conflict(exc):
                raise
            conflicts.append(type(exc.orig).__name__)
            time.sleep(0.01)
    raise AssertionError("a batch kept losing races")


def test_concurrent_batches_over_the_same_learners_end_consistent(database_url: str) -> None:
    engine = build_engine(database_url)
    upgrade(engine)
    pipelines = [
        Pipeline(writing(engine, serializable=True), adapters.parsers(), Pseudonymiser.from_secret("k" * 32), CourseKeys(), 16.0) for _ in range(2)
    ]
    union_batch, ou_batch = [], []
    for n in range(PERSONS):
        doc = resident_id(serial=f"{n:03d}")
        union_batch.append(Inbound(UNION, 0, n, b"k", encode(union_event(f"u-{n}", member_no=f"GH{n}", id_card=doc, name=None))))
        ou_batch.append(Inbound(OU, 0, n, b"k", encode(ou_event(f"o-{n}", student_no=f"S{n}", document=("RESIDENT_ID", doc), name=None))))

    conflicts: list[str] = []
    errors: list[BaseException] = []
    # Small batches interleave the two transactions many times.
    chunks = [(union_batch[i : i + 5], ou_batch[i : i + 5]) for i in range(0, PERSONS, 5)]

    def run(side: int) -> None:
        try:
            for pair in chunks:
                process_with_retries(pipelines[side], pair[side], conflicts)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(side,)) for side in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors

    with engine.connect() as conn:
        owners = conn.execute(select(t.accounts.c.account, t.accounts.c.learner_id)).all()
        live = conn.execute(select(t.learners.c.learner_id).where(t.learners.c.merged_into.is_(None))).scalars().all()
    by_account = dict(owners)
    assert len(by_account) == 2 * PERSONS
    for n in range(PERSONS):
        assert by_account[f"GH{n}"] == by_account[f"S{n}"], f"person {n} was split"
    assert len(set(live) & set(by_account.values())) == PERSONS
    assert set(by_account.values()) <= set(live)
    engine.dispose()


def test_workers_starting_together_migrate_once(database_url: str) -> None:
    """Workers migrate at start-up; several starting at once must not collide creating tables.

    Processes, not threads: Alembic's migration context is process-global.
    """
    import os
    import subprocess
    import sys

    from bridge.store.engine import current_revision, head_revision

    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env["BRIDGE_DATABASE_URL"] = database_url
    runs = [
        subprocess.Popen([sys.executable, "-m", "bridge", "db", "upgrade"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
        for _ in range(3)
    ]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    engine = build_engine(database_url)
    assert current_revision(engine) == head_revision()
    engine.dispose()
