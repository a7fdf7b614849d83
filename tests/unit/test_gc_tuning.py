"""The worker's garbage-collector tuning (measured in bench/RESULTS.md, asserted here only for what it sets)."""

from __future__ import annotations

import gc

from bridge.stream.tuning import GC_THRESHOLDS, tune_gc


def test_tune_gc_freezes_start_up_objects_and_collects_less_often() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
        assert GC_THRESHOLDS[0] > before[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
