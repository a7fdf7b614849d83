"""The worker process's performance settings: the garbage collector's thresholds and the
consumer's fetch wait."""

from __future__ import annotations

import gc
import logging

import faust

from bridge.stream import LOGGER

log = logging.getLogger(LOGGER)

#: Python collects its youngest generation every 700 allocations, and every 100th collection walks
#: the whole heap. A batch allocates hundreds of thousands of short-lived rows and models, so with
#: the defaults the collector took a quarter of the pipeline's time (measured: 3,600 -> 4,800
#: events/s in-process). Cycles are rare here: collecting less often costs little memory.
GC_THRESHOLDS = (10_000, 10, 10)


def tune_gc() -> None:
    """Freeze what start-up built (modules, the app, the engine: never garbage) out of the
    collector's sight, and collect young objects less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def tune_fetch_wait(app: faust.App, wait_ms: int) -> None:
    """Set the consumer's fetch wait, which Faust 0.15 hard-codes to 1,500 ms.

    An idle fetch waits that long for data, and the embedded broker holds fetches for much of
    it, which puts a floor of about a second under the latency of a quiet stream (measured in
    bench/RESULTS.md). Best effort: if Faust's internals move, the hard-coded wait stays.
    """
    fetcher = getattr(getattr(getattr(app.consumer, "_thread", None), "_consumer", None), "_fetcher", None)
    if fetcher is not None and hasattr(fetcher, "_fetch_max_wait_ms"):
        fetcher._fetch_max_wait_ms = wait_ms
    else:
        log.warning("could not set the consumer's fetch wait (Faust internals changed?); it stays at 1500 ms")
