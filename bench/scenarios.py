"""One scenario: a fresh embedded broker, a system under test in its own process, two phases.

Phase 1 (throughput): the input is preloaded, the system starts, and the harness waits until the
system's consumer group has committed every input offset (and, for the bridge, its outbox is
empty). Phase 2 (latency): more messages at a paced rate, and the same wait. The output topics
are read only afterwards, so no consumer of the harness competes with the system for the two
cores while it is measured; every timing comes from message timestamps and the system's
process, never from the harness's polling.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url

from bench import kafkaio
from bench.kafkaio import Consumed, Produced
from bench.passthrough import SOURCE_HEADER, parse_source
from bench.processes import BenchError, Process, ProcessGroup, base_env, http_get, metric_values
from bench.report import Result, percentile
from bench.workload import Workload, event_key
from bridge.tools.admin import apply_topics
from bridge.tools.broker import EmbeddedBroker, free_port
from bridge.settings import Settings
from bridge.tools.simulate import SimMessage
from bridge.store import schema
from bridge.store.engine import build_engine
from topics import catalogue

PASSTHROUGH_TOPIC = "bench.passthrough.v1"
#: Longest a phase may go without the system committing anything before the run is abandoned.
STALL_TIMEOUT_S = 180.0
#: How often the harness looks at the system's progress. Only detection waits on it; no figure does.
POLL_S = 0.5
#: How often the harness looks for the system's first batch; its error bounds the start time.
START_POLL_S = 0.05

Show = Callable[[str], None]


# -- systems under test -----------------------------------------------------------------------


@dataclass
class Start:
    """When the system started consuming, and its CPU time then."""

    at: float
    cpu_s: float
    how: str


class System(ABC):
    """What the harness needs of a system under test."""

    name: str
    output_topics: Sequence[str]
    process: Process | ProcessGroup
    #: Started on empty topics and measured from the first preloaded message (several workers:
    #: the group settles its assignment before the clock starts, see METHOD).
    warm: bool = False

    @abstractmethod
    def launch(self, settings: Settings, workdir: Path) -> None:
        """Start the system's process against ``settings``' broker, logging into ``workdir``."""

    @abstractmethod
    async def started(self) -> Start:
        """Wait until the system consumes; when it started and its CPU time then."""

    def settled(self) -> bool:
        """Extra condition for "done" beyond committed offsets."""
        return True

    def expected_outputs(self, inputs: int) -> int | None:
        return None

    @abstractmethod
    def latencies(self, outputs: Sequence[Consumed], phase: Sequence[tuple[SimMessage, Produced]]) -> tuple[list[float], int]:
        """Latency (ms) of each input of ``phase`` with an output, and how many had none."""

    @abstractmethod
    def phase_end_ms(self, outputs: Sequence[Consumed], phase: Sequence[tuple[SimMessage, Produced]], before_ms: int | None) -> int | None:
        """Timestamp of the last output of ``phase`` (the bridge: of any output before ``before_ms``)."""

    def close(self) -> None:
        pass


class Passthrough(System):
    """(a) ``aiokafka`` or (b) ``faust`` from :mod:`bench.passthrough`."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.name = f"{kind} pass-through"
        self.output_topics = (PASSTHROUGH_TOPIC,)
        self.produced_total = 0

    def launch(self, settings: Settings, workdir: Path) -> None:
        self.status = workdir / f"{self.kind}-status.json"
        env = base_env(settings)
        env.update(BENCH_GROUP=settings.group_id, BENCH_OUTPUT=PASSTHROUGH_TOPIC, BENCH_STATUS=str(self.status))
        self.process = Process.start(["-m", "bench.passthrough", self.kind], env, workdir / f"{self.kind}.log")

    async def started(self) -> Start:
        while not self.status.exists() or not self.status.read_text():
            self.process.check_alive()
            await asyncio.sleep(START_POLL_S)
        cpu = self.process.cpu_seconds()
        return Start(json.loads(self.status.read_text())["first_consumed"], cpu, "reported by the pass-through")

    def expected_outputs(self, inputs: int) -> int | None:
        return inputs

    def _by_source(self, outputs: Sequence[Consumed]) -> dict[tuple[str, int, int], int]:
        first: dict[tuple[str, int, int], int] = {}
        for out in outputs:
            src = out.header(SOURCE_HEADER)
            if src is not None:
                key = parse_source(src)
                first[key] = min(first.get(key, out.timestamp_ms), out.timestamp_ms)
        return first

    def latencies(self, outputs, phase):
        first = self._by_source(outputs)
        found, missing = [], 0
        for _, produced in phase:
            at = first.get((produced.topic, produced.partition, produced.offset))
            if at is None:
                missing += 1
            else:
                found.append(float(at - produced.timestamp_ms))
        return found, missing

    def phase_end_ms(self, outputs, phase, before_ms):
        first = self._by_source(outputs)
        times = [first[k] for _, p in phase if (k := (p.topic, p.partition, p.offset)) in first]
        return max(times) if times else None


class Bridge(System):
    """(c) real ``bridge worker`` processes (one by default) in one consumer group, on SQLite or PostgreSQL."""

    def __init__(self, name: str, database_url: str, workers: int = 1) -> None:
        self.name = name
        self.database_url = database_url
        self.workers = workers
        self.warm = workers > 1
        self.output_topics = tuple(t.name for t in catalogue.OUTPUT_TOPICS)
        # Reads only, after the worker is idle; a plain engine, because the bridge's SQLite
        # engine opens every transaction with BEGIN IMMEDIATE (a write lock).
        url = make_url(database_url)
        self._engine = create_engine(url) if url.get_backend_name() == "sqlite" else build_engine(database_url)

    def launch(self, settings: Settings, workdir: Path) -> None:
        slug = self.name.replace(" ", "-").replace("/", "-").replace(",", "")
        members, self.bases = [], []
        for index in range(self.workers):
            port = settings.web_port if index == 0 else free_port()
            env = base_env(settings)
            env["BRIDGE_WEB_PORT"] = str(port)
            self.bases.append(f"http://127.0.0.1:{port}")
            log = workdir / (f"{slug}.log" if self.workers == 1 else f"{slug}-{index + 1}.log")
            members.append(Process.start(["-m", "bridge", "worker"], env, log))
        self.process = members[0] if self.workers == 1 else ProcessGroup(members)

    async def _all_ready(self) -> None:
        for base in self.bases:
            while (await asyncio.to_thread(http_get, base + "/readyz"))[0] != 200:
                self.process.check_alive()
                await asyncio.sleep(START_POLL_S)

    async def assigned(self, partitions: int) -> None:
        """Wait until the group has settled: every worker ready and all ``partitions`` assigned."""
        await self._all_ready()
        deadline = time.monotonic() + STALL_TIMEOUT_S
        while time.monotonic() < deadline:
            self.process.check_alive()
            counts = []
            for base in self.bases:
                _, body = await asyncio.to_thread(http_get, base + "/metrics")
                counts.append(metric_values(body, "bridge_assigned_partitions").get("", 0.0))
            if all(counts) and sum(counts) >= partitions:
                return
            await asyncio.sleep(POLL_S)
        raise BenchError(f"{self.name}: the group did not assign {partitions} partitions in {STALL_TIMEOUT_S:.0f}s")

    async def started(self) -> Start:
        await self._all_ready()
        ready_at, cpu = time.time(), self.process.cpu_seconds()
        # The first batch's start: its end (the first sample that counts it) minus its duration.
        deadline = time.monotonic() + STALL_TIMEOUT_S
        while time.monotonic() < deadline:
            self.process.check_alive()
            starts = []
            for base in self.bases:
                status, body = await asyncio.to_thread(http_get, base + "/metrics")
                seen = time.time()
                count = metric_values(body, "bridge_batch_duration_seconds_count").get("")
                if status == 200 and count is None:
                    return Start(ready_at, cpu, "readiness (/readyz)")  # the metric is gone
                if count:
                    starts.append(seen - metric_values(body, "bridge_batch_duration_seconds_sum").get("", 0.0))
            if starts:
                return Start(min(starts), cpu, "first batch (/metrics)")
            await asyncio.sleep(START_POLL_S)
        return Start(ready_at, cpu, "readiness (/readyz)")

    def metric_total(self, name: str) -> float | None:
        """``name`` summed over every series and every worker; ``None`` if a worker did not answer."""
        total = 0.0
        for base in self.bases:
            status, body = http_get(base + "/metrics")
            if status != 200:
                return None
            total += sum(metric_values(body, name).values())
        return total

    def settled(self) -> bool:
        with self._engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(schema.outbox)).scalar_one() == 0

    def expected_outputs(self, inputs: int) -> int | None:
        published = self.metric_total("bridge_messages_published_total")
        return int(published) if published else None

    def _first_output(self, outputs: Sequence[Consumed]) -> tuple[dict[tuple[str, str], int], dict[tuple[str, int, int], int]]:
        by_event: dict[tuple[str, str], int] = {}
        by_offset: dict[tuple[str, int, int], int] = {}
        for out in outputs:
            if out.value is None:
                continue
            if out.topic == catalogue.CREDIT_RECORDS.name:
                for source in json.loads(out.value).get("sources", ()):
                    key = (source["platform"], source["event_id"])
                    by_event[key] = min(by_event.get(key, out.timestamp_ms), out.timestamp_ms)
            elif out.topic == catalogue.DEADLETTER.name:
                letter = json.loads(out.value)
                key = (letter["topic"], letter["partition"], letter["offset"])
                by_offset[key] = min(by_offset.get(key, out.timestamp_ms), out.timestamp_ms)
        return by_event, by_offset

    def latencies(self, outputs, phase):
        by_event, by_offset = self._first_output(outputs)
        found, missing, counted = [], 0, set()
        for msg, produced in phase:
            key = event_key(msg)
            if key is not None and key in counted:
                continue  # a redelivery: its event was counted at its first delivery
            at = by_event.get(key) if key is not None else None
            if at is None:
                at = by_offset.get((produced.topic, produced.partition, produced.offset))
            if at is None:
                missing += 1
                continue
            if key is not None:
                counted.add(key)
            found.append(float(at - produced.timestamp_ms))
        return found, missing

    def phase_end_ms(self, outputs, phase, before_ms):
        times = [o.timestamp_ms for o in outputs if before_ms is None or o.timestamp_ms < before_ms]
        return max(times) if times else None

    def close(self) -> None:
        self._engine.dispose()


# -- a scenario -------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a scenario measured, with the raw material for the report."""

    result: Result
    start: Start | None = None
    cpu_s: float | None = None
    notes: list[str] = field(default_factory=list)


async def _wait_committed(system: System, bootstrap: str, group: str, ends: dict[tuple[str, int], int],
                          show: Show) -> None:
    total = sum(ends.values())
    last, last_change = -1, time.monotonic()
    async with kafkaio.Committed(bootstrap, group) as committed:
        while True:
            system.process.check_alive()
            done = await committed.of(ends)
            count = sum(min(done[tp], end) for tp, end in ends.items())
            show(f"{system.name}: {count}/{total} input messages committed")
            if count >= total and await asyncio.to_thread(system.settled):
                return
            if count != last:
                last, last_change = count, time.monotonic()
            elif time.monotonic() - last_change > STALL_TIMEOUT_S:
                raise BenchError(
                    f"{system.name} made no progress for {STALL_TIMEOUT_S:.0f}s ({count}/{total}); see {system.process.log_path}"
                )
            await asyncio.sleep(POLL_S)


async def run(system: System, workload: Workload, *, workdir: Path, rate: float, equivalences: Path,
              show: Show, on_started: Callable[[int], None] | None = None,
              on_phase1: Callable[[], None] | None = None) -> Outcome:
    """Measure ``system`` on a broker of its own; the bridge's database is prepared by the caller."""
    workdir.mkdir(parents=True, exist_ok=True)
    database_url = system.database_url if isinstance(system, Bridge) else f"sqlite:///{workdir / 'unused.db'}"
    with EmbeddedBroker(log_dir=workdir / "broker") as broker:
        settings = Settings(
            broker_url=broker.url,
            database_url=database_url,
            course_equivalences=equivalences,
            web_port=free_port(),
            web_host="127.0.0.1",
            group_id=f"bench-{uuid.uuid4().hex[:8]}",
        )
        apply_topics(settings)
        if isinstance(system, Passthrough):
            await kafkaio.create_topic(broker.bootstrap, PASSTHROUGH_TOPIC, settings.topic_partitions)
        show(f"{system.name}: broker at {broker.url}; preloading {len(workload.preloaded)} messages")
        phase1: list[Produced] = []
        if not system.warm:
            phase1 = await kafkaio.preload(broker.bootstrap, workload.preloaded, show)
        system.launch(settings, workdir)
        try:
            if system.warm:
                assert isinstance(system, Bridge)
                partitions = sum(t.partitions_or(settings.topic_partitions) for t in catalogue.INPUT_TOPICS)
                show(f"{system.name}: waiting for {system.workers} workers to share {partitions} partitions")
                await system.assigned(partitions)
                cpu_before = system.process.cpu_seconds()
                phase1 = await kafkaio.preload(broker.bootstrap, workload.preloaded, show)
                first = min((p.timestamp_ms for p in phase1), default=int(time.time() * 1000))
                start = Start(first / 1000, cpu_before, "first preloaded message (warm group)")
            else:
                start = await system.started()
            if on_started:
                on_started(system.process.pid)
            await _wait_committed(system, broker.bootstrap, settings.group_id, kafkaio.ends_of(phase1), show)
            cpu_end = system.process.cpu_seconds()
            if on_phase1:
                on_phase1()
            phase2: list[Produced] = []
            if workload.paced:
                show(f"{system.name}: sending {len(workload.paced)} messages at {rate:g}/s")
                phase2 = await kafkaio.paced(broker.bootstrap, workload.paced, rate, show)
                await _wait_committed(
                    system, broker.bootstrap, settings.group_id, kafkaio.ends_of([*phase1, *phase2]), show
                )
            expected = system.expected_outputs(len(phase1) + len(phase2))
            peak = system.process.peak_rss_mb()
        finally:
            system.process.stop()
        show(f"{system.name}: reading the output topics")
        outputs = await kafkaio.read_all(broker.bootstrap, system.output_topics, expected=expected)
    return _outcome(system, workload, phase1, phase2, outputs, start, cpu_end - start.cpu_s, peak, rate, expected)


def _outcome(system: System, workload: Workload, phase1: list[Produced], phase2: list[Produced],
             outputs: list[Consumed], start: Start, cpu_s: float, peak: float | None, rate: float,
             expected: int | None) -> Outcome:
    notes = []
    if expected is not None and len(outputs) < expected:
        notes.append(f"read {len(outputs)} of {expected} output messages")
    first_paced = min((p.timestamp_ms for p in phase2), default=None)
    pairs1 = list(zip(workload.preloaded, phase1))
    end_ms = system.phase_end_ms(outputs, pairs1, first_paced)
    throughput = None
    if end_ms is not None and end_ms / 1000 > start.at:
        throughput = len(phase1) / (end_ms / 1000 - start.at)
    latencies, missing = system.latencies(outputs, list(zip(workload.paced, phase2)))
    if missing:
        notes.append(f"{missing} paced inputs without output")
    if phase2 and throughput is not None and throughput < rate:
        notes.append("saturated: the rate is above its throughput, so latency is mostly queueing")
    result = Result(
        name=system.name,
        events=len(phase1),
        throughput=throughput,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        latency_events=len(latencies),
        rate=rate if phase2 else None,
        cpu_ms_per_event=1000 * cpu_s / len(phase1) if phase1 else None,
        peak_rss_mb=peak,
        note="; ".join(notes),
    )
    return Outcome(result, start, cpu_s, notes)
