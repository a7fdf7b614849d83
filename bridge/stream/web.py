"""The worker's web pages: ``/metrics``, ``/healthz`` (the event loop and the app's timers run)
and ``/readyz`` (the group answered with an assignment and the database answers)."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bridge.stream.handler import StreamWorker


def add_pages(app: faust.App, worker: StreamWorker) -> None:
    """Serve the pages of ``worker`` on ``app``'s web server."""
    metrics = worker.metrics

    @app.page("/metrics")
    async def _metrics(web: Any, request: Any) -> Any:
        metrics.ready.set(1 if worker.is_ready() else 0)
        return web.bytes(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def _healthz(web: Any, request: Any) -> Any:
        alive = worker.is_alive()
        body = {"status": "ok" if alive else "stalled", "loop_lag_seconds": round(worker.health.loop_lag_s, 3)}
        return web.json(body, status=200 if alive else 503)

    @app.page("/readyz")
    async def _readyz(web: Any, request: Any) -> Any:
        database_ok = await asyncio.get_running_loop().run_in_executor(None, worker.check_database)
        reason = worker.not_ready_because()
        metrics.ready.set(0 if reason else 1)
        body = {
            "ready": reason is None,
            "assigned": worker.health.assigned,
            "partitions": worker.health.partitions,
            "database": database_ok,
            "pending": worker.health.pending,
            "failing": worker.health.failing,
        }
        if reason:
            body["reason"] = reason
        return web.json(body, status=503 if reason else 200)
