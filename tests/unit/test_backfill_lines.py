"""``bridge backfill`` reads its files line by line without ever holding a line longer than a
message may be: such a line is read in pieces for its digest and size and dead-lettered as
``too_large`` with its file and line number, and the lines around it load as usual."""

from __future__ import annotations

import asyncio
import io
import gzip
import hashlib
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

import pytest

from bridge.core.records import MESSAGE_BOUND
from bridge.pipeline import BatchResult
from bridge.tools import backfill
from bridge.tools.backfill import Backfill, Checkpoint, LongLine, read_lines
from topics import catalogue

GOOD = [b'{"msgId": "u-%d"}' % n for n in range(3)]


def _write(path: Path, body: bytes) -> Path:
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as out:
            out.write(body)
    else:
        path.write_bytes(body)
    return path


@pytest.mark.parametrize("name", ["plain.jsonl", "packed.jsonl.gz"])
def test_a_line_longer_than_a_message_comes_as_its_digest_and_size(tmp_path, name) -> None:
    long = b'{"msgId": "' + b"x" * (3 * MESSAGE_BOUND) + b'"}'
    path = _write(tmp_path / name, GOOD[0] + b"\n" + long + b"\r\n" + GOOD[1] + b"\n\n" + GOOD[2])
    read = [(number, value) for number, value, _fraction in read_lines(path)]
    assert read == [
        (1, GOOD[0]),
        (2, LongLine(hashlib.sha256(long).hexdigest(), len(long))),
        (3, GOOD[1]),
        (5, GOOD[2]),  # line 4 is blank; the last line has no line end
    ]
    # Resuming after the long line skips it without reading it whole.
    assert [number for number, _v, _f in read_lines(path, start=2)] == [3, 5]


def test_a_line_just_within_the_limit_is_read_whole(tmp_path) -> None:
    edge = b"y" * backfill.LINE_LIMIT
    path = _write(tmp_path / "edge.jsonl", edge + b"\n" + GOOD[0] + b"\n")
    assert [value for _n, value, _f in read_lines(path)] == [edge, GOOD[0]]
    # A long line whose \r\n is split between two pieces: the digest is of the line without them.
    long = b"z" * (backfill.LINE_LIMIT + backfill.LONG_LINE_CHUNK - 1)
    path = _write(tmp_path / "split.jsonl", long + b"\r\n" + GOOD[0])
    assert [value for _n, value, _f in read_lines(path)] == [LongLine(hashlib.sha256(long).hexdigest(), len(long)), GOOD[0]]


def test_a_line_of_many_megabytes_without_a_newline_costs_no_more_than_a_message(tmp_path) -> None:
    path = tmp_path / "huge.jsonl"
    with path.open("wb") as out:
        out.write(GOOD[0] + b"\n")
        for _ in range(48):
            out.write(b"w" * (1 << 20))
    tracemalloc.start()
    try:
        read = list(read_lines(path))
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [number for number, _v, _f in read] == [1, 2] and read[1][1].size == 48 << 20
    assert peak < 8 * MESSAGE_BOUND, f"reading a 48 MiB line held {peak:,} bytes at once"


class _Sealer:
    def seal(self, value, topic, partition, offset):
        return "sealed", "k1"


class _Pipeline:
    sealer = _Sealer()

    @staticmethod
    def clock() -> datetime:
        return datetime(2026, 12, 6, tzinfo=timezone.utc)


class _Worker:
    """What a backfill needs of a worker: it records what it is given."""

    pipeline = _Pipeline()

    def __init__(self) -> None:
        self.handled: list[list[int]] = []
        self.letters: list = []

    async def handle(self, batch):
        self.handled.append([m.offset for m in batch])
        return BatchResult()

    async def publish_dead_letters(self, letters):
        self.letters.extend(letters)


def test_a_long_line_is_dead_lettered_with_its_file_line_digest_and_size(tmp_path) -> None:
    long = b'{"msgId": "' + b"x" * (2 * MESSAGE_BOUND) + b'"}'
    path = _write(tmp_path / "union.jsonl", b"\n".join([GOOD[0], long, GOOD[1], long, GOOD[2]]) + b"\n")
    worker = _Worker()
    state = tmp_path / "state"
    loader = Backfill(worker, state, platform="union", batch_size=2, progress=backfill.Progress(out=io.StringIO()))
    summary = asyncio.run(loader.load(path))
    assert summary.lines == 5 and summary.dead_lettered == 2
    assert [offset for batch in worker.handled for offset in batch] == [1, 3, 5]
    assert [msg.offset for msg, _letter in worker.letters] == [2, 4]
    for msg, letter in worker.letters:
        assert letter.reason_code == "too_large" and letter.source_file == "union.jsonl"
        assert letter.partition == -1 and letter.offset == msg.offset and letter.topic == catalogue.UNION_EVENTS.name
        assert letter.payload_sha256 == hashlib.sha256(long).hexdigest() and letter.payload_bytes == len(long)
        assert letter.payload_encrypted is None and "x" * 16 not in letter.reason
        assert f"{len(long):,} bytes" in letter.reason
    assert Checkpoint(state, path).load().line == 5
