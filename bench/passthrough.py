"""The baselines the bridge is measured against, each run as its own process like the bridge.

``python -m bench.passthrough aiokafka``: (a) a raw aiokafka consumer that produces every consumed
message to the output topic, awaiting the batch's acknowledgements before committing its offsets.

``python -m bench.passthrough faust``: (b) a minimal Faust agent that decodes each message's JSON
and sends it re-encoded (a message that is not JSON is forwarded as it is), on a Faust app with
the bridge worker's settings (:func:`faust_settings`, mirrored from ``bridge.worker.build_app``).

Both read the broker from ``BRIDGE_BROKER_URL`` (and the Kafka timeouts from the bridge's own
``Settings``), consume both input topics in group ``BENCH_GROUP`` and write to ``BENCH_OUTPUT``.
Each output message carries a ``bench-src`` header (``topic:partition:offset`` of its input) for
the latency measurement, and the time of the first consumed message is written to the file
``BENCH_STATUS`` as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from bridge.settings import Settings
from topics import catalogue

SOURCE_HEADER = "bench-src"
INPUTS = tuple(t.name for t in catalogue.INPUT_TOPICS)


def source_header(topic: str, partition: int, offset: int) -> tuple[str, bytes]:
    return SOURCE_HEADER, f"{topic}:{partition}:{offset}".encode()


def parse_source(value: bytes) -> tuple[str, int, int]:
    topic, partition, offset = value.decode().rsplit(":", 2)
    return topic, int(partition), int(offset)


class FirstConsumed:
    """Writes the wall-clock time of the first consumed message, once."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.done = False

    def mark(self) -> None:
        if not self.done:
            self.done = True
            Path(self.path).write_text(json.dumps({"first_consumed": time.time()}))


def reencode(value: bytes | None) -> bytes | None:
    """Decode the JSON and encode it again; anything else goes through unchanged."""
    if value is None:
        return None
    try:
        return json.dumps(json.loads(value), ensure_ascii=False).encode()
    except ValueError:  # not UTF-8 (UnicodeDecodeError) or not JSON
        return value


def faust_settings(settings: Settings, group_id: str) -> dict[str, Any]:
    """The keyword arguments of ``faust.App`` in ``bridge.worker.build_app``, for ``group_id``."""
    # Imported here so that the aiokafka baseline does not load Faust (it would count in its RSS).
    from bridge.worker import faust_settings as bridge_faust_settings

    return bridge_faust_settings(settings.with_overrides(group_id=group_id))


def run_faust(settings: Settings, group_id: str, output: str, status: FirstConsumed) -> int:
    import faust

    app = faust.App(group_id, **faust_settings(settings, group_id))
    inputs = app.topic(*INPUTS, key_serializer="raw", value_serializer="raw")
    out = app.topic(output, key_serializer="raw", value_serializer="raw")

    @app.agent(inputs, concurrency=1)
    async def passthrough(stream: Any) -> None:
        async for event in stream.events():
            status.mark()
            msg = event.message
            await out.send(
                key=msg.key, value=reencode(msg.value), headers=[source_header(msg.topic, msg.partition, msg.offset)]
            )

    worker = faust.Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


async def _aiokafka(settings: Settings, group_id: str, output: str, status: FirstConsumed) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    session_ms = int(settings.effective_session_timeout_s * 1000)
    bootstrap = settings.bootstrap_servers()
    consumer = AIOKafkaConsumer(
        *INPUTS,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=max(session_ms // 6, 500),
        rebalance_timeout_ms=max(session_ms, 10_000),
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await producer.start()
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=500)
            acks = []
            for records in batches.values():
                status.mark()
                for r in records:
                    acks.append(
                        await producer.send(
                            output, r.value, key=r.key, headers=[source_header(r.topic, r.partition, r.offset)]
                        )
                    )
            if acks:
                await asyncio.gather(*acks)
                await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("aiokafka", "faust"):
        print("usage: python -m bench.passthrough aiokafka|faust", file=sys.stderr)
        return 2
    settings = Settings()
    group_id, output = os.environ["BENCH_GROUP"], os.environ["BENCH_OUTPUT"]
    status = FirstConsumed(os.environ["BENCH_STATUS"])
    if argv[0] == "faust":
        return run_faust(settings, group_id, output, status)
    asyncio.run(_aiokafka(settings, group_id, output, status))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
