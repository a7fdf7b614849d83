"""A Faust worker whose stop after SIGTERM or SIGINT is bounded."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import faust

from bridge.errors import EXIT_SHUTDOWN_OVERRUN
from bridge.stream import LOGGER

log = logging.getLogger(LOGGER)

#: Exit code of a worker that overran its shutdown bound (distinct from Faust's own codes).
SHUTDOWN_OVERRUN_EXIT = EXIT_SHUTDOWN_OVERRUN


class BridgeWorker(faust.Worker):
    """A Faust worker whose stop after SIGTERM or SIGINT is bounded.

    Faust stops gracefully: the batch in flight finishes, its offsets are committed and the
    worker leaves the group. Should that take longer than ``shutdown_timeout_s`` (a database
    that does not answer, a broker that is gone), the process exits anyway. Nothing is lost
    then: offsets are committed only for durable work, so the rest is redelivered.
    """

    def __init__(self, app: faust.App, *, shutdown_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._shutdown_bound = shutdown_timeout_s
        self._watchdog: threading.Timer | None = None

    def _schedule_shutdown(self, signum: Any) -> None:
        if self._watchdog is None:
            self._watchdog = threading.Timer(self._shutdown_bound, self._overran)
            self._watchdog.daemon = True
            self._watchdog.start()
        super()._schedule_shutdown(signum)

    def _overran(self) -> None:
        log.error(
            "the worker did not stop within %.0f s (BRIDGE_SHUTDOWN_TIMEOUT_S); exiting now, "
            "uncommitted work will be redelivered to the next worker",
            self._shutdown_bound,
        )
        logging.shutdown()
        os._exit(SHUTDOWN_OVERRUN_EXIT)
