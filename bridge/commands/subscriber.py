"""Subscriber tools: ``bridge tail``, ``bridge transcript`` and ``bridge export``.

They read the published topics with a plain Kafka consumer (no consumer group, nothing
committed), exactly as a downstream team would, and never touch the bridge's database.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from pydantic import BaseModel, ValidationError

from bridge.core.records import CreditRecord, LearnerIdentity, Source
from bridge.errors import BridgeError, DataError, UsageError
from bridge.tools.export import DEFAULT_ISSUER, FORMATS, Issuer, export
from bridge.settings import Settings, broker_settings
from bridge.tools import topicio
from bridge.tools.topicio import QUIET_MS, Target, compacted, read_topic
from bridge.tools.transcript import Transcript, build_transcript, parse_published
from topics import catalogue

#: Messages ``bridge tail`` shows when neither ``--limit`` nor ``--from-beginning`` says otherwise,
#: as ``tail`` does.
DEFAULT_TAIL = 10
#: How long one poll waits in follow mode: short enough for Ctrl-C to feel immediate.
_FOLLOW_POLL_MS = 500
#: How long reading up to the end offsets may stall before we call the broker stuck.
_READ_TIMEOUT_MS = 10_000


class UnreadableValue(DataError):
    """A value on a published topic that is not the JSON its schema describes."""

    def __init__(self, topic: str, key: str, problem: str) -> None:
        super().__init__(f"{topic}: the value of key {key} is not a valid published value ({problem})")
        self.topic = topic
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class Shown:
    """One message as ``bridge tail`` prints it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``tail``, ``transcript`` and ``export`` to the ``bridge`` command."""
    tail = subparsers.add_parser(
        "tail",
        help="print a topic's messages (pretty JSON, key, partition/offset, tombstones)",
        description="Print the messages of a topic. Without --from-beginning or --follow: the last "
        f"{DEFAULT_TAIL} (or --limit) messages. Reads with no consumer group and commits nothing.",
    )
    tail.add_argument("topic", help=f"a topic of the catalogue: {', '.join(t.name for t in catalogue.TOPICS)}")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new messages until Ctrl-C")
    tail.add_argument("--from-beginning", action="store_true", help="start at the first message of every partition")
    tail.add_argument("--key", help="only messages with this key (reads the whole topic: a key's messages can be anywhere)")
    tail.add_argument("-n", "--limit", type=_positive, help="print at most this many messages, then stop")
    tail.set_defaults(fn=cmd_tail)

    transcript = subparsers.add_parser(
        "transcript",
        help="one learner's credits and totals, from the published topics",
        description="One learner's credit records and totals, read from credit.records.v1 and "
        "learner.identities.v1 (not the bridge's database). A merged learner id shows the survivor's.",
    )
    transcript.add_argument("learner_id")
    transcript.add_argument("--json", action="store_true", help="print JSON instead of a table")
    transcript.set_defaults(fn=cmd_transcript)

    exporter = subparsers.add_parser(
        "export",
        help="a learner's awarded credits as Open Badges 3.0, CLR 2.0 or xAPI statements",
        description="Export a learner's records, read from the published topics like `bridge transcript`: "
        "openbadges = one Open Badges 3.0 AchievementCredential per AWARDED record (a JSON array); "
        "clr = one CLR 2.0 ClrCredential wrapping them; xapi = xAPI 1.0.3 statements (a JSON array) "
        "for the awarded and failed courses. The credentials are unsigned.",
    )
    exporter.add_argument("learner_id")
    exporter.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
    exporter.add_argument("--out", type=Path, help="write to this file instead of standard output")
    exporter.add_argument("--issuer-url", default=DEFAULT_ISSUER.url, help="issuer id and home of the exported ids (default %(default)s)")
    exporter.add_argument("--issuer-name", default=DEFAULT_ISSUER.name, help="issuer name (default %(default)r)")
    exporter.set_defaults(fn=cmd_export)


# -- tail --------------------------------------------------------------------------------------


def cmd_tail(args: argparse.Namespace) -> int:
    spec = _topic(args.topic)
    bootstrap = _bootstrap()
    key = args.key.encode("utf-8") if args.key is not None else None
    out = sys.stdout
    printed = 0
    messages = tail_messages(
        bootstrap,
        spec.name,
        follow=args.follow,
        from_beginning=args.from_beginning,
        key=key,
        limit=args.limit,
    )
    try:
        # closing: the consumer is closed at once also when the reader of stdout went away
        # (BrokenPipeError, `bridge tail | head`), which the command line then ends quietly.
        with contextlib.closing(messages):
            for shown in messages:
                out.write(format_message(shown))
                out.flush()
                printed += 1
    except KeyboardInterrupt:
        pass  # Ctrl-C is how follow mode ends: not an error.
    if printed == 0 and not args.follow:
        print(f"no messages on {spec.name}" + (f" with key {args.key}" if key is not None else ""), file=sys.stderr)
    return 0


def tail_messages(
    bootstrap: Target,
    topic: str,
    *,
    follow: bool = False,
    from_beginning: bool = False,
    key: bytes | None = None,
    limit: int | None = None,
) -> Iterator[Shown]:
    """The messages ``bridge tail`` prints, in order (see the command's help for the modes)."""
    consumer = topicio.consumer(bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tps = _partitions(consumer, topic)
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        messages: Iterable[Shown]
        if follow:
            # Following never stops at the end offsets, so it needs no reading up to them.
            if from_beginning:
                consumer.seek_to_beginning(*tps)
            else:
                for tp in tps:
                    consumer.seek(tp, ends[tp])
            messages = _matching(_follow(consumer), key)
        elif from_beginning:
            consumer.seek_to_beginning(*tps)
            messages = _matching(_read_to_end(consumer, ends), key)
        else:
            messages = _last(consumer, tps, ends, key, limit or DEFAULT_TAIL)
        for count, shown in enumerate(messages, start=1):
            yield shown
            if limit is not None and count >= limit:
                return
    finally:
        consumer.close()


def format_message(shown: Shown) -> str:
    """One message as ``bridge tail`` prints it: a header line, the key, the value."""
    when = ""
    if shown.timestamp_ms is not None and shown.timestamp_ms >= 0:
        when = "  " + _iso(datetime.fromtimestamp(shown.timestamp_ms / 1000, UTC))
    lines = [
        f"--- {shown.topic}  partition {shown.partition}  offset {shown.offset}{when}",
        f"key: {_text(shown.key) if shown.key is not None else '(none)'}",
    ]
    if shown.value is None:
        subject = f"key {_text(shown.key)}" if shown.key is not None else "this key"
        lines.append(f"TOMBSTONE (null value): {subject} is deleted")
    else:
        try:
            value = json.loads(shown.value.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            lines.append(f"value: not UTF-8 JSON ({len(shown.value)} bytes): {shown.value[:200]!r}")
        else:
            lines.append(json.dumps(value, indent=2, ensure_ascii=False))
    return "\n".join(lines) + "\n\n"


def _last(
    consumer: KafkaConsumer, tps: list[TopicPartition], ends: dict[TopicPartition, int], key: bytes | None, n: int
) -> list[Shown]:
    """The last ``n`` (matching) messages of the topic, oldest first."""
    if key is None:
        # Only the last n of each partition can be among the last n of the topic (and starting
        # earlier is harmless: the surplus is cut below).
        begins = consumer.beginning_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(begins[tp], ends[tp] - n))
    else:
        consumer.seek_to_beginning(*tps)
    newest = sorted(
        _matching(_read_to_end(consumer, ends), key),
        key=lambda s: (s.timestamp_ms if s.timestamp_ms is not None else -1, s.partition, s.offset),
    )
    return list(deque(newest, maxlen=n))


def _read_to_end(consumer: KafkaConsumer, ends: dict[TopicPartition, int]) -> Iterator[Shown]:
    """Every message from the consumer's positions to the end of the topic.

    The end is the end offsets seen at the start, then on until the topic has been quiet for
    ``QUIET_MS``: the embedded broker reports an end offset without its latest produce batch
    (see :func:`bridge.tools.topicio.iter_topic`), and a message that is there should be shown.
    """
    while True:
        behind = any(consumer.position(tp) < end for tp, end in ends.items())
        batches = consumer.poll(timeout_ms=_READ_TIMEOUT_MS if behind else QUIET_MS)
        if not batches:
            if behind:
                topics = ", ".join(sorted({tp.topic for tp in ends}))
                raise topicio.ReadStalled(f"reading {topics} stalled before its end offsets: check the broker and try again")
            return
        for records in batches.values():
            for record in records:
                yield _shown(record)


def _follow(consumer: KafkaConsumer) -> Iterator[Shown]:
    while True:
        for records in consumer.poll(timeout_ms=_FOLLOW_POLL_MS).values():
            for record in records:
                yield _shown(record)


def _matching(messages: Iterable[Shown], key: bytes | None) -> Iterator[Shown]:
    return (m for m in messages if key is None or m.key == key)


def _shown(record: Any) -> Shown:
    timestamp = record.timestamp if record.timestamp is not None and record.timestamp >= 0 else None
    return Shown(record.topic, record.partition, record.offset, timestamp, record.key, record.value)


# -- transcript and export ---------------------------------------------------------------------


def cmd_transcript(args: argparse.Namespace) -> int:
    transcript = load_transcript(_bootstrap(), args.learner_id)
    if args.json:
        print(json.dumps(transcript.to_json(), indent=2, ensure_ascii=False))
    else:
        print(format_transcript(transcript), end="")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    try:
        issuer = Issuer(url=args.issuer_url, name=args.issuer_name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    transcript = load_transcript(_bootstrap(), args.learner_id)
    document = export(transcript, args.fmt, issuer, datetime.now(UTC))
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
        count = len(document) if isinstance(document, list) else 1
        print(f"wrote {count} {args.fmt} document(s) for learner {transcript.learner_id} to {args.out}", file=sys.stderr)
    if isinstance(document, list) and not document:
        print(f"learner {transcript.learner_id} has nothing to export as {args.fmt}", file=sys.stderr)
    return 0


def load_transcript(bootstrap: Target, learner_id: str) -> Transcript:
    """The transcript of ``learner_id`` from the current contents of the published topics."""
    identities = _latest(bootstrap, catalogue.LEARNER_IDENTITIES.name, LearnerIdentity)
    records = _latest(bootstrap, catalogue.CREDIT_RECORDS.name, CreditRecord).values()
    return build_transcript(learner_id, identities, records)


def format_transcript(transcript: Transcript) -> str:
    """The transcript as a table with its totals (``bridge transcript``)."""
    lines = []
    if transcript.was_merged:
        lines.append(
            f"{transcript.requested_id} was merged into {transcript.learner_id}: showing {transcript.learner_id}."
        )
    accounts = ", ".join(f"{a.platform} {a.account}" for a in transcript.learner.accounts)
    lines.append(f"Learner {transcript.learner_id} (accounts: {accounts or 'none'})")
    lines.append("")
    header = ("course_key", "status", "credits", "score", "completed_at", "sources")
    rows = [
        (
            r.course_key,
            r.status.value,
            _number(r.credits),
            _number(r.score) if r.score is not None else "-",
            _iso(r.completed_at) if r.completed_at is not None else "-",
            ", ".join(f"{s.platform}:{s.account}" for s in _unique_accounts(r)),
        )
        for r in transcript.records
    ]
    if rows:
        widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
        for row in (header, *rows):
            lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    else:
        lines.append("(no credit records)")
    totals = transcript.totals()
    others = ", ".join(f"{count} {status.lower()}" for status, count in totals.by_status.items() if status != "AWARDED")
    lines.append("")
    lines.append(
        f"Awarded: {_number(totals.awarded_credits)} credits in {totals.awarded_courses} "
        f"course{'s' if totals.awarded_courses != 1 else ''} ({others})"
    )
    return "\n".join(lines) + "\n"


def _unique_accounts(record: CreditRecord) -> list[Source]:
    seen: set[tuple[str, str]] = set()
    unique = []
    for source in record.sources:
        if (source.platform, source.account) not in seen:
            seen.add((source.platform, source.account))
            unique.append(source)
    return unique


def _latest(bootstrap: Target, topic: str, model: type[BaseModel]) -> dict[str, Any]:
    """The live (non-tombstoned) values of a compacted topic, by key, as ``model``."""
    latest = {}
    for key, value in compacted(read_topic(bootstrap, topic)).items():
        if key is None or value is None:
            continue
        name = _text(key)
        try:
            latest[name] = parse_published(model, json.loads(value.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError, ValidationError) as exc:
            raise UnreadableValue(topic, name, str(exc).splitlines()[0]) from None
    return latest


# -- shared ------------------------------------------------------------------------------------


def _bootstrap() -> Settings:
    """The settings to connect with (bootstrap, TLS and SASL)."""
    return broker_settings("the Kafka bootstrap of the published topics")


def _topic(name: str) -> catalogue.TopicSpec:
    try:
        return catalogue.by_name(name)
    except KeyError as exc:
        raise BridgeError(exc.args[0]) from None


def _partitions(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        raise BridgeError(f"topic {topic} does not exist on the broker (run `bridge topics apply`?)")
    return [TopicPartition(topic, p) for p in sorted(partitions)]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return repr(raw)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
