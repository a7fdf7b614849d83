"""``bridge backfill``: the platforms' history, loaded from their export files (CONTRACT §5).

Each file holds one JSON event per line in the formats of CONTRACT §1 (``.jsonl``, or gzip
compressed). Lines go through the same pipeline as the stream, in batches, in this process: the
same parsing, the same unit of work (facts, evidence, identities, records and the outbox in one
transaction), the same retry of what is transient and isolation of what the data breaks
(:class:`bridge.stream.handler.StreamWorker`), and this process publishes what the batches queued and
their dead letters, as a worker does. So the result is the stream's, in any order relative to
the live stream (identities and records are functions of the set of events), and a second run
of the same files changes nothing (an event is recognised by its platform and id).

A line's coordinates are its topic (the platform's input topic), partition ``-1`` (a file, not
Kafka) and its line number as the offset; a dead letter of a bad line also names the file. A line
longer than a message may be (1 MiB) is never held whole: it is read in pieces for its digest and
size, and dead-lettered as ``too_large`` with them (a file of gigabytes without a newline costs
no more memory than a normal one). The
lines committed of each file are kept in a checkpoint under ``--state-dir``, so an interrupted
backfill continues where it stopped (what was committed again after the last checkpoint is
recognised and changes nothing).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from bridge.core.records import MESSAGE_BOUND, DeadLetter
from bridge.errors import ConfigurationError
from bridge.pipeline import BatchResult, Inbound, dead_letter
import adapters

#: The partition of every line's coordinates: it came from a file, not from Kafka.
FILE_PARTITION = -1
#: Lines per transaction. Larger than the stream's batches: a backfill has no latency to keep,
#: and each transaction's fixed costs (guard check, identity re-resolution, commit) spread over more.
DEFAULT_BATCH = 2_000
#: How many of a file's first lines tell its platform (see :func:`file_topic_of`).
FILE_SAMPLE_LINES = 1_000
#: How often the progress line is rewritten (seconds).
PROGRESS_EVERY_S = 1.0
#: The longest line read whole: a message's bound, and its line end (``\r\n``).
LINE_LIMIT = MESSAGE_BOUND + 2
#: How much of a longer line is read at a time, for its digest.
LONG_LINE_CHUNK = 1 << 20


@dataclass(frozen=True)
class LongLine:
    """A line longer than :data:`LINE_LIMIT`, read in pieces: the SHA-256 and size of its bytes
    (without its line end)."""

    sha256: str
    size: int

    def reason(self) -> str:
        return (f"line is {self.size:,} bytes, more than the {MESSAGE_BOUND:,} (1 MiB) a message may have; "
                "it was not loaded (split or fix the record in the export, then backfill the file again)")



def _signatures() -> dict[str, str]:
    """Each platform's signature field (a top-level field only its messages carry, declared by its
    adapter), with the platform's topic: how a line's platform is told from its content."""
    return {a.signature: a.topic.name for a in adapters.registered()}


def unknown_platform_reason() -> str:
    """The dead-letter reason of a line whose platform cannot be told."""
    fields = " or ".join(_signatures())
    return (
        "the platform of this line cannot be told from its content (not a JSON object with exactly one "
        f"platform's signature field: {fields}); fix the line, or give --platform for a file of one platform"
    )


def topic_of(value: bytes) -> str | None:
    """The input topic whose format ``value`` is in, told by its signature field; ``None`` if none."""
    if len(value) > MESSAGE_BOUND:
        return None
    try:
        obj = json.loads(value)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    found = {topic for name, topic in _signatures().items() if name in obj}
    return found.pop() if len(found) == 1 else None


def file_topic_of(path: Path, sample: int = FILE_SAMPLE_LINES) -> str | None:
    """The one platform topic of the lines among the first ``sample`` whose platform can be told,
    or ``None`` when they are of several (or none). A line of no told platform in a file of one
    platform is that platform's, so its own adapter says what is wrong with it."""
    found: set[str] = set()
    for _number, value, _fraction in read_lines(path):
        if sample <= 0:
            break
        sample -= 1
        topic = topic_of(value) if isinstance(value, bytes) else None
        if topic is not None:
            found.add(topic)
    return found.pop() if len(found) == 1 else None


def read_lines(path: Path, start: int = 0) -> Iterator[tuple[int, bytes | LongLine, float]]:
    """``(line number, bytes, fraction of the file read)`` of each non-blank line after ``start``;
    a line longer than :data:`LINE_LIMIT` comes as its :class:`LongLine` instead of its bytes.

    A gzip file is recognised by its magic bytes, whatever its name.
    """
    size = max(path.stat().st_size, 1)
    with open(path, "rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        lines: Any = gzip.GzipFile(fileobj=raw) if compressed else raw
        number = 0
        while line := lines.readline(LINE_LIMIT + 1):
            number += 1
            long = len(line) > LINE_LIMIT and not line.endswith(b"\n")
            value: bytes | LongLine = _rest_of_long_line(lines, line) if long else line.rstrip(b"\r\n")
            if number <= start:
                continue
            if isinstance(value, LongLine) or value.strip():
                yield number, value, raw.tell() / size


def _rest_of_long_line(lines: Any, first: bytes) -> LongLine:
    """Read the rest of a line that began with ``first`` in pieces: its digest and size."""
    digest, size, chunk = hashlib.sha256(), 0, first
    held = b""  # a trailing \r, kept back until it is known not to end the line
    while True:
        data = held + chunk
        if not chunk or chunk.endswith(b"\n"):
            data = data.rstrip(b"\r\n")
            digest.update(data)
            return LongLine(digest.hexdigest(), size + len(data))
        held = b"\r" if data.endswith(b"\r") else b""
        data = data[: len(data) - len(held)]
        digest.update(data)
        size += len(data)
        chunk = lines.readline(LONG_LINE_CHUNK)


@dataclass
class Checkpoint:
    """The last line of ``path`` whose batch committed, kept in ``state_dir`` by the file's
    identity (path, size, modification time): a changed file starts again from its first line."""

    state_dir: Path
    path: Path
    line: int = 0

    @property
    def _file(self) -> Path:
        stat = self.path.stat()
        identity = f"{self.path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}"
        return self.state_dir / f"{hashlib.sha256(identity.encode()).hexdigest()[:24]}.json"

    def load(self) -> Checkpoint:
        try:
            self.line = int(json.loads(self._file.read_text())["line"])
        except (OSError, ValueError, KeyError, TypeError):
            self.line = 0
        return self

    def save(self, line: int, done: bool = False) -> None:
        self.line = line
        self.state_dir.mkdir(parents=True, exist_ok=True)
        temporary = self._file.with_suffix(".tmp")
        temporary.write_text(json.dumps({"path": str(self.path.resolve()), "line": line, "done": done}))
        temporary.replace(self._file)


@dataclass
class FileSummary:
    path: Path
    lines: int = 0
    skipped: int = 0
    processed: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        rate = self.lines / self.seconds if self.seconds > 0 else 0.0
        resumed = f", {self.skipped:,} already loaded before" if self.skipped else ""
        return (f"{self.path.name}: {self.lines:,} lines in {self.seconds:.1f} s ({rate:,.0f}/s): "
                f"{self.processed:,} events processed, {self.duplicates:,} already known, "
                f"{self.dead_lettered:,} dead-lettered{resumed}")


@dataclass
class Progress:
    """One line on standard error, rewritten in place: lines, events/s, ETA."""

    out: TextIO = field(default_factory=lambda: sys.stderr)
    _shown: float = 0.0

    def show(self, name: str, lines: int, started: float, fraction: float, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._shown < PROGRESS_EVERY_S:
            return
        self._shown = now
        elapsed = max(now - started, 1e-9)
        eta = elapsed * (1 - fraction) / fraction if 0 < fraction < 1 else 0.0
        text = (f"backfill {name}: {lines:,} lines, {lines / elapsed:,.0f} lines/s, "
                f"{fraction:.0%}, ETA {eta:,.0f} s")
        end = "\n" if final or not self.out.isatty() else "\r"
        print(text, file=self.out, end=end, flush=True)


class Backfill:
    """Loads files through ``worker`` (a :class:`bridge.stream.handler.StreamWorker`), which persists and
    publishes each batch as the stream does."""

    def __init__(self, worker: Any, state_dir: Path, *, platform: str | None = None,
                 batch_size: int = DEFAULT_BATCH, progress: Progress | None = None) -> None:
        names = [a.name for a in adapters.registered()]
        if platform is not None and platform not in names:
            raise ConfigurationError(f"--platform must be one of {', '.join(names)}")
        self.worker = worker
        self.state_dir = state_dir
        self.topic = adapters.by_name(platform).topic.name if platform else None
        self.batch_size = max(batch_size, 1)
        self.progress = progress or Progress()
        #: Dead letters of long lines read since the last commit, published with the next one.
        self._long: list[tuple[Inbound, DeadLetter]] = []

    async def load(self, path: Path) -> FileSummary:
        """Load one file from its checkpoint on; returns what it did."""
        summary = FileSummary(path)
        checkpoint = Checkpoint(self.state_dir, path).load()
        summary.skipped = checkpoint.line
        started = time.monotonic()
        file_topic = self.topic or file_topic_of(path)
        batch: list[Inbound] = []
        fraction, last = 0.0, checkpoint.line
        for number, value, fraction in read_lines(path, checkpoint.line):
            summary.lines += 1
            last = number
            if isinstance(value, LongLine):
                self._long.append(self._long_line(path, self.topic or file_topic or "", number, value))
            else:
                topic = self.topic or topic_of(value) or file_topic or ""
                batch.append(Inbound(topic, FILE_PARTITION, number, None, value, source=path.name))
            if len(batch) + len(self._long) >= self.batch_size:
                await self._commit(batch, summary, checkpoint)
                batch = []
                self.progress.show(path.name, summary.lines, started, fraction)
        if batch or self._long:
            await self._commit(batch, summary, checkpoint)
        checkpoint.save(last, done=True)
        summary.seconds = time.monotonic() - started
        self.progress.show(path.name, summary.lines, started, 1.0, final=True)
        return summary

    async def _commit(self, batch: Sequence[Inbound], summary: FileSummary, checkpoint: Checkpoint) -> None:
        """Persist and publish one batch, then move the file's checkpoint past it."""
        known = [m for m in batch if m.topic]
        result = await self.worker.handle(known) if known else BatchResult()
        pipeline = self.worker.pipeline
        unknown = [
            (m, dead_letter(m, unknown_platform_reason(), "unknown_platform", pipeline.clock(), pipeline.sealer))
            for m in batch if not m.topic
        ]
        long, self._long = self._long, []
        if unknown or long:
            await self.worker.publish_dead_letters([*unknown, *long])
        summary.processed += sum(result.processed.values())
        summary.duplicates += result.duplicates
        summary.dead_lettered += len(result.dead_letters) + len(unknown) + len(long)
        checkpoint.save(max(m.offset for m in [*batch, *(m for m, _ in long)]))

    def _long_line(self, path: Path, topic: str, number: int, line: LongLine) -> tuple[Inbound, DeadLetter]:
        """The dead letter of a line too long to read whole: its digest and size, no bytes."""
        pipeline = self.worker.pipeline
        msg = Inbound(topic, FILE_PARTITION, number, None, None, source=path.name)
        letter = dead_letter(msg, line.reason(), "too_large", pipeline.clock(), pipeline.sealer)
        return msg, letter.model_copy(update={"payload_sha256": line.sha256, "payload_bytes": line.size})
