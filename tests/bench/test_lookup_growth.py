"""The pipeline's database work per event does not grow with the registry (issue 7's growth target).

Counted in SQLite virtual-machine steps, not timed: the same batch of events costs about the same
number of steps against 1,000 or 20,000 preloaded learners while every lookup is a B-tree search,
and ten times as many once one of them scans (a row-value ``IN``, or ``merged_into IS NULL`` next
to a primary-key ``IN``: SQLite without statistics then picks the ``merged_into`` index). Steps are
deterministic, so this is safe on a shared machine; ``bench/RESULTS.md`` has the timed figures.
"""

from __future__ import annotations

from sqlalchemy import event

import adapters
from bench import workload
from bridge.pipeline import Inbound, Pipeline
from bridge.store.engine import build_engine, upgrade
from bridge.store.claim import OutboxClaim
from bridge.store.uow import writing
from tests.bench.test_loader import COURSE_KEYS, KEY, load

#: SQLite calls the progress handler every this many virtual-machine instructions.
STEP = 1000


def steps_for_the_same_batch(tmp_path, learners: int) -> int:
    engine = build_engine(f"sqlite:///{tmp_path / f'registry-{learners}.db'}")
    upgrade(engine)
    load(engine, learners)
    engine.dispose()
    ticks = [0]

    def tick() -> int:
        ticks[0] += 1
        return 0  # 0: go on

    @event.listens_for(engine, "connect")
    def _count(dbapi_conn, _record) -> None:
        dbapi_conn.set_progress_handler(tick, STEP)

    units = writing(engine)
    pipeline = Pipeline(units.writer(serializable=True), adapters.parsers(), KEY, COURSE_KEYS, 16.0)
    messages = workload.growth(400, learners, seed=5)
    batch = [Inbound(m.topic, 0, i, m.key, m.value) for i, m in enumerate(messages)]
    for start in range(0, len(batch), 200):
        pipeline.process(batch[start:start + 200])
        claim = OutboxClaim.open(units, 1000)
        claim.commit()
    engine.dispose()
    return ticks[0]


def test_a_batch_costs_about_the_same_against_a_registry_twenty_times_larger(tmp_path) -> None:
    small = steps_for_the_same_batch(tmp_path, 1_000)
    large = steps_for_the_same_batch(tmp_path, 20_000)
    assert small > 0
    # Deeper B-trees cost a little; a scan of anything that grows with the registry costs ~20x.
    assert large / small < 1.5, f"{large * STEP:,} SQLite steps with 20,000 learners vs {small * STEP:,} with 1,000"
