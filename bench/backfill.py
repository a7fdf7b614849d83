"""Backfill rate against the streamed rate of the same machine, in one run (issue 15).

On one embedded broker: the same simulated history (a) produced onto the input topics and
consumed by one ``bridge worker`` (the stream), (b) loaded from a ``.jsonl`` file by ``bridge
backfill``, each on a fresh SQLite registry. Both times run until every record and identity is
published. Prints events/s of each, the ratio, and what 10 million events would take.

    python -m bench.backfill [--events 20000] [--batch-size 2000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bridge.tools import simulate
from bridge.tools.admin import apply_topics
from bridge.tools.broker import EmbeddedBroker, free_port
from bridge.tools.demo import Progress, WorkerProcess, wait_outbox_empty, wait_until_consumed
from bridge.settings import Settings
from bridge.store.engine import build_engine
from bridge.tools.topicio import producer


def _env(settings: Settings, database: Path, group: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env.update(BRIDGE_BROKER_URL=settings.broker_url or "", BRIDGE_DATABASE_URL=f"sqlite:///{database}",
               BRIDGE_GROUP_ID=group, BRIDGE_WEB_HOST="127.0.0.1", BRIDGE_WEB_PORT=str(free_port()))
    return env


def streamed(settings: Settings, messages: list, work: Path) -> float:
    """Seconds for one worker to consume and publish ``messages`` already on the input topics."""
    env = _env(settings, work / "stream.db", "bench-stream")
    prod = producer(settings)
    for msg in messages:
        prod.send(msg.topic, key=msg.key, value=msg.value)
    prod.flush()
    prod.close()
    started = time.monotonic()
    worker = WorkerProcess.start(env, work / "stream-worker.log")
    try:
        group = settings.with_overrides(group_id="bench-stream")
        wait_until_consumed(group, worker, Progress(), expected=len(messages))
        wait_outbox_empty(build_engine(f"sqlite:///{work / 'stream.db'}", create=False), worker, timeout_s=600)
        return time.monotonic() - started
    finally:
        worker.stop()


def backfilled(settings: Settings, messages: list, work: Path, batch_size: int) -> float:
    """Seconds for ``bridge backfill`` to load and publish ``messages`` from one file."""
    path = work / "history.jsonl"
    path.write_bytes(b"\n".join(m.value for m in messages) + b"\n")
    env = _env(settings, work / "backfill.db", "bench-backfill")
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "bridge", "backfill", str(path), "--batch-size", str(batch_size),
                    "--state-dir", str(work / "state")], env=env, check=True)
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args(argv)
    messages, _ = simulate.generate(args.events, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp, EmbeddedBroker() as broker:
        work = Path(tmp)
        settings = Settings(broker_url=broker.url)
        apply_topics(settings)
        print(f"streaming {len(messages):,} messages through one worker ...", file=sys.stderr)
        stream_s = streamed(settings, messages, work)
        print(f"backfilling the same {len(messages):,} messages from a file ...", file=sys.stderr)
        backfill_s = backfilled(settings, messages, work, args.batch_size)
    stream_rate, backfill_rate = len(messages) / stream_s, len(messages) / backfill_s
    print(f"streamed_events_per_s={stream_rate:,.0f} ({stream_s:.1f} s)")
    print(f"backfill_events_per_s={backfill_rate:,.0f} ({backfill_s:.1f} s, batch {args.batch_size})")
    print(f"ten_million_events_backfill_hours={10_000_000 / backfill_rate / 3600:.1f}")
    print(f"backfill_ratio_vs_stream={backfill_rate / stream_rate:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
