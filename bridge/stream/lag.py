"""How far behind a worker is: the offsets it committed (through Faust's monitor) and the lag
of each input partition it holds."""

from __future__ import annotations

import asyncio
from typing import Any

from faust.sensors.monitor import Monitor
from faust.types import TP

from bridge.metrics import Metrics
from topics import catalogue

#: Consumer lag is read from the broker (one ListOffsets request) this often; Prometheus scrapes
#: every 15-30 s, so a fresher value would never be seen.
LAG_INTERVAL_S = 5.0
#: Longest wait for one consumer call (highwaters, position) while measuring lag.
LAG_CALL_TIMEOUT_S = 10.0

_INPUT_TOPICS = frozenset(t.name for t in catalogue.INPUT_TOPICS)


class BridgeMonitor(Monitor):
    """Faust's monitor, also feeding rebalances and committed offsets to the bridge's metrics.

    Faust calls ``on_rebalance_start`` from the consumer's thread when the group starts a
    rebalance (including the first join) and ``on_tp_commit`` after each offset commit.
    """

    def __init__(self, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics

    def on_rebalance_start(self, app: Any) -> dict:
        # Faust's monitor also forgets the committed offsets here: they may be stale for a
        # partition that comes back after another worker held it.
        state = super().on_rebalance_start(app)
        self.metrics.on_rebalance()
        return state

    def committed(self) -> dict[TP, int]:
        """Offsets this worker committed since the last rebalance.

        A copy: Faust calls ``on_rebalance_start`` from the consumer's thread.
        """
        return self.tp_committed_offsets.copy()


async def consumer_lag(consumer: Any, committed: dict[TP, int]) -> dict[tuple[str, int], int]:
    """Lag of each assigned input partition: its end offset minus what this worker committed.

    A partition without a commit since the last rebalance falls back to the consumer's position,
    which Faust set to the group's committed offset when the partition was assigned.
    """
    tps = [tp for tp in consumer.assignment() if tp.topic in _INPUT_TOPICS]
    if not tps:
        return {}
    ends = await asyncio.wait_for(consumer.highwaters(*tps), LAG_CALL_TIMEOUT_S)
    lags: dict[tuple[str, int], int] = {}
    for tp in tps:
        end = ends.get(tp)
        done = committed.get(tp)
        if done is None:
            done = await asyncio.wait_for(consumer.position(tp), LAG_CALL_TIMEOUT_S)
        if end is not None and done is not None:
            lags[(tp.topic, tp.partition)] = max(end - done, 0)
    return lags
