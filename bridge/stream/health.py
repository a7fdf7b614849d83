"""What a worker knows of its own health, and the database checks that keep it current.

``/healthz`` asks :meth:`Health.alive` (the event loop and the app's timers run), ``/readyz``
:meth:`Health.not_ready_because` (the group answered with an assignment, the database answers and
the worker makes progress).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from bridge.metrics import Metrics
from bridge.store.engine import ping
from bridge.store.uow import UnitOfWorkFactory
from bridge.stream import LOGGER
from bridge.stream.dbthread import timed

if TYPE_CHECKING:
    from bridge.stream.dbthread import DatabaseThread

log = logging.getLogger(LOGGER)

#: How often the heartbeat timer ticks, and how long without a tick /healthz calls the worker dead:
#: far beyond any pause of a healthy loop (the database runs in its own thread), well within the
#: liveness probe's patience.
HEARTBEAT_S, HEARTBEAT_STALE_S = 1.0, 30.0
#: Open review items are counted in the database this often (the backlog changes by the hour;
#: the same read keeps an idle worker's readiness current between probes).
REVIEW_INTERVAL_S = 15.0


@dataclass
class Health:
    """What /healthz and /readyz report."""

    assigned: bool = False
    """The group answered with this worker's assignment (maybe empty) since the last revocation."""
    partitions: int = 0
    database_ok: bool = False
    last_progress: float = 0.0
    heartbeat: float | None = None
    """``time.monotonic()`` of the last heartbeat tick; ``None`` until the app's timers run."""
    loop_lag_s: float = 0.0
    batch_started: float | None = None
    """``time.monotonic()`` when the batch in hand was taken up; ``None`` between batches."""
    failing: str | None = None
    """The step that failed last and why (an exception's class), until a step succeeds again."""
    pending: int = 0
    """Messages waiting on this worker's input partitions, as last measured."""
    idle_since: float = field(default_factory=time.monotonic)
    """``time.monotonic()`` of the last finished batch (or of the start)."""

    def stalled(self, bound_s: float, now: float | None = None) -> str | None:
        """Why the worker makes no progress, if it has made none for longer than ``bound_s``."""
        now = time.monotonic() if now is None else now
        if self.batch_started is not None and now - self.batch_started > bound_s:
            why = f", failing at {self.failing}" if self.failing else ""
            return f"one batch has been in hand for {now - self.batch_started:.0f} s{why}"
        if self.batch_started is None and self.pending > 0 and now - self.idle_since > bound_s:
            return f"{self.pending} messages wait and no batch finished for {now - self.idle_since:.0f} s"
        return None

    def beat(self) -> None:
        """A heartbeat tick (every ``HEARTBEAT_S``): how late it came is the event loop's lag."""
        now = time.monotonic()
        if self.heartbeat is not None:
            self.loop_lag_s = max(now - self.heartbeat - HEARTBEAT_S, 0.0)
        self.heartbeat = now

    def alive(self) -> bool:
        """False once the heartbeat has started and then stopped (the app's timers no longer run)."""
        beat = self.heartbeat
        return beat is None or time.monotonic() - beat < HEARTBEAT_STALE_S

    def not_ready_because(self, stall_bound_s: float) -> str | None:
        """Why the worker is not ready, or ``None`` when it is."""
        if not self.assigned:
            return "no partitions assigned yet (joining the consumer group or rebalancing)"
        if not self.database_ok:
            return "the database does not answer"
        stalled = self.stalled(stall_bound_s)
        if stalled:
            return f"no progress: {stalled}"
        return None


def check_database(health: Health, metrics: Metrics, engine: Engine) -> bool:
    """``SELECT 1`` on a pooled connection, into ``health``; runs outside the database thread, so
    a long batch never delays the answer."""
    try:
        timed(metrics, "health_check", ping, engine)
    except SQLAlchemyError:
        health.database_ok = False
    else:
        health.database_ok = True
    return health.database_ok


def count_open_reviews(readers: UnitOfWorkFactory) -> dict[str, int]:
    """The open review items per kind, read in a unit of work of their own."""
    with readers() as uow:
        return uow.reviews.open_by_kind()


async def refresh_reviews(health: Health, metrics: Metrics, db: DatabaseThread, readers: UnitOfWorkFactory) -> None:
    """Read the open review items per kind into their gauge (one small query).

    Runs every few seconds, so it also keeps ``database_ok`` current on an idle worker.
    """
    try:
        counts = await db.run("review_count", count_open_reviews, readers)
    except SQLAlchemyError as exc:
        health.database_ok = False
        log.warning(
            "could not count open review items (%s)", type(getattr(exc, "orig", None) or exc).__name__,
            extra={"operation": "review_count"},
        )
    except Exception:  # noqa: BLE001 - a gauge must never take the worker down
        log.exception("could not count open review items", extra={"operation": "review_count"})
    else:
        health.database_ok = True
        metrics.set_reviews_open(counts)
