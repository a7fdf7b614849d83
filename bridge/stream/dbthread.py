"""The one thread that does all database work of a worker, each call timed and counted.

A transaction never hops threads, and the event loop (heartbeats, web pages) never blocks on the
database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from bridge.metrics import Metrics


class DatabaseThread:
    """Runs database calls, one at a time, in a thread of their own."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bridge-db")

    async def run(self, operation: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` in the database thread, timed and counted as ``operation``."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, timed, self.metrics, operation, fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=True)


def timed(metrics: Metrics, operation: str, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, its duration and (for a database failure) an error counted as ``operation``."""
    started = time.perf_counter()
    failed = False
    try:
        return fn(*args)
    except SQLAlchemyError:
        failed = True
        raise
    finally:
        metrics.observe_db(operation, time.perf_counter() - started, failed=failed)
