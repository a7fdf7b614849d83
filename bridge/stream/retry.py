"""Retrying a failed step of the worker until it succeeds, or giving it up.

What a failure is comes from :mod:`bridge.failures`: a transient one is retried with backoff, a
lost race redone soon, one caused by the data raised for the caller to isolate, a fatal one stops
the process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from bridge.errors import EXIT_FATAL
from bridge.failures import RACE_STATES, UNIQUE_VIOLATION, Failure, classify
from bridge.stream import LOGGER
from bridge.stream.health import Health

log = logging.getLogger(LOGGER)

#: Longest pause before redoing a batch that lost a race with another worker, and how many races
#: in a row are retried that quickly.
CONFLICT_RETRY_S, MAX_QUICK_RACES = 0.2, 20
#: How many unique violations in a row count as lost races (see bridge.failures).
MAX_UNIQUE_RACES = 3
#: Backoff between retries of a failed database or broker step (seconds, doubling to the cap).
RETRY_FIRST_S, RETRY_CAP_S = 0.5, 15.0
#: Exit code of a worker stopped by a fatal condition (a replaced database, say).
FATAL_EXIT = EXIT_FATAL


class DataFailure(Exception):
    """A step failed because of the data it was given (its ``__cause__``): retrying cannot help."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(type(cause).__name__)
        self.cause_name = type(getattr(cause, "orig", None) or cause).__name__


def fatal(exc: BaseException) -> None:
    """Stop the process at once, committing nothing: what is not durable is redelivered to the
    next worker. Used when going on would corrupt what the bridge publishes."""
    log.critical("stopping the worker: %s", exc, extra={"operation": "fatal"})
    logging.shutdown()
    os._exit(FATAL_EXIT)


class Retrier:
    """Runs steps until they succeed, keeping ``health`` told of what fails."""

    def __init__(self, health: Health) -> None:
        self.health = health

    async def __call__(self, operation: str, step: Callable[[], Awaitable[Any]], *, isolate: bool = False) -> Any:
        """Run ``step`` until it succeeds, retrying what is transient.

        With ``isolate``, a failure caused by the data (see :mod:`bridge.failures`) is raised as
        :class:`DataFailure` for the caller to isolate; without it (publishing), every failure is
        retried. A fatal one stops the worker.
        """
        delay, races = RETRY_FIRST_S, 0
        while True:
            try:
                result = await step()
            except Exception as exc:  # noqa: BLE001 - each kind of failure is handled below
                kind = classify(exc)
                cause = type(getattr(exc, "orig", None) or exc).__name__
                self.health.failing = f"{operation}: {cause}"
                if kind is Failure.FATAL:
                    fatal(exc)
                if kind is Failure.RACE:
                    races += 1
                    state = getattr(getattr(exc, "orig", None), "sqlstate", None)
                    unique = state == UNIQUE_VIOLATION
                    # A race that keeps being lost is no race (a constraint the batch breaks
                    # every time, say): after a bound it is treated as caused by the data.
                    if races <= (MAX_UNIQUE_RACES if unique else MAX_QUICK_RACES):
                        # Another worker changed the same learners first: redo the batch on
                        # what it committed, soon (jittered so two workers do not collide again).
                        log.info("database step %s lost a race with another worker (%s); retrying", operation,
                                 cause, extra={"operation": operation})
                        await asyncio.sleep(random.uniform(0.01, CONFLICT_RETRY_S))
                        continue
                    # A serialization failure is never the data's fault, however often it comes
                    # (busy workers on one crowd): from now on it backs off. A constraint that
                    # keeps failing is the batch's own.
                    kind = Failure.TRANSIENT if state in RACE_STATES else Failure.DATA
                if kind is Failure.DATA and isolate:
                    raise DataFailure(exc) from exc
                if isinstance(exc, SQLAlchemyError):
                    self.health.database_ok = False
                    log.warning(
                        "database step %s failed (%s); retrying in %.1fs", operation, cause, delay,
                        extra={"operation": operation, "retry_in_s": delay},
                    )
                else:
                    log.warning(
                        "step %s failed (%s); retrying in %.1fs", operation, cause, delay,
                        exc_info=kind is Failure.DATA,
                        extra={"operation": operation, "retry_in_s": delay},
                    )
            else:
                if operation != "publish":
                    self.health.database_ok = True
                self.health.failing = None
                return result
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_CAP_S)
