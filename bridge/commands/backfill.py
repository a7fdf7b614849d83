"""``bridge backfill FILE...``: load the platforms' export files (see :mod:`bridge.tools.backfill`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import adapters
from bridge.errors import UsageError
from bridge.settings import Settings, broker_settings

#: Longest wait for the broker to acknowledge one message the backfill publishes.
ACK_TIMEOUT_S = 60.0


def register(sub: argparse._SubParsersAction) -> None:
    from bridge.tools.backfill import DEFAULT_BATCH

    parser = sub.add_parser(
        "backfill",
        help="load the platforms' export files (one JSON event per line, .jsonl or gzip) as if streamed",
        description="Reads BRIDGE_DATABASE_URL, BRIDGE_BROKER_URL and the worker's settings (keys, hours per "
        "credit, equivalences, BRIDGE_KAFKA_*). Each line goes through the workers' pipeline in this process, "
        "which publishes what changed and the dead letters of bad lines (with their file and line number). "
        "Safe beside running workers, in any order relative to the live stream; a second run of the same "
        "files changes nothing; an interrupted run continues from its checkpoint.",
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument("--platform", choices=[a.name for a in adapters.registered()],
                        help="the platform of every line (default: told from each line's content)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH,
                        help="lines per transaction (default %(default)s)")
    parser.add_argument("--state-dir", type=Path, default=Path("var/backfill"),
                        help="where the per-file checkpoints are kept (default %(default)s)")
    parser.set_defaults(fn=cmd_backfill)


def cmd_backfill(args: argparse.Namespace) -> int:
    missing = [str(p) for p in args.files if not p.is_file()]
    if missing:
        raise UsageError(f"no such file: {', '.join(missing)}; give the paths of the export files")
    return asyncio.run(_run(broker_settings("the Kafka bootstrap the workers publish to"), args))


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    from bridge.tools.connection import check_broker
    from bridge.tools.backfill import Backfill
    from bridge.bootstrap import build_runtime
    from bridge.tools.topicio import producer
    from bridge.stream.handler import StreamWorker

    check_broker(settings)
    runtime = build_runtime(settings)
    kafka = producer(settings)

    async def send(topic: str, key: bytes | None, value: bytes | None) -> Any:
        future = kafka.send(topic, key=key, value=value)
        return asyncio.to_thread(future.get, ACK_TIMEOUT_S)

    worker = StreamWorker(runtime, send)
    backfill = Backfill(worker, args.state_dir, platform=args.platform, batch_size=args.batch_size)
    started = time.monotonic()
    summaries = []
    try:
        for path in args.files:
            summaries.append(await backfill.load(path))
        await worker.drain_outbox()
    finally:
        worker.close()
        kafka.close()
        runtime.engine.dispose()
    lines = sum(s.lines for s in summaries)
    elapsed = time.monotonic() - started
    print("== backfill summary ==", file=sys.stderr)
    for summary in summaries:
        print(summary.line(), file=sys.stderr)
    print(f"{len(summaries)} file(s), {lines:,} lines in {elapsed:.1f} s ({lines / max(elapsed, 1e-9):,.0f} lines/s); "
          f"{sum(s.dead_lettered for s in summaries):,} dead-lettered (bridge deadletters list)", file=sys.stderr)
    return 0
