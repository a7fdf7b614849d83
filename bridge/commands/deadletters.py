"""Operator commands on dead letters: ``bridge deadletters list|show|replay`` (CONTRACT §5).

They read ``bridge.deadletter.v1`` whole with a plain consumer (no group, nothing committed).
``show`` and ``replay`` open sealed payloads with the dead-letter key (``BRIDGE_DEADLETTER_KEY``,
or one of ``BRIDGE_DEADLETTER_PREVIOUS_KEYS``); ``replay`` produces the original bytes back onto
their source topic, where the workers recognise an event they already processed by (platform,
event id), so replaying twice changes nothing. No command prints a payload except ``show``.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import ValidationError

from bridge.core.records import DeadLetter
from bridge.core.sealing import Sealer, SealError
from bridge.errors import BridgeError
from bridge.settings import Settings, broker_settings
from bridge.tools.topicio import iter_topic, producer
from bridge.tools.transcript import parse_published
from topics import catalogue

#: The only topics a payload may be produced back to.
REPLAYABLE = frozenset(t.name for t in catalogue.INPUT_TOPICS)
#: The dead letter's key when the source key was too long or not UTF-8 (``bridge.stream.publisher.deadletter_key``).
_DIGEST_KEY = re.compile(rb"sha256:[0-9a-f]{64}")


class NoSuchDeadLetter(BridgeError):
    """No dead letter names the given source coordinates."""


class PayloadNotCarried(BridgeError):
    """The dead letter holds only the digest of its message (too large to carry, or no longer held)."""


@dataclass(frozen=True)
class Letter:
    """A dead letter as read from the topic, with its message key."""

    letter: DeadLetter
    key: bytes | None

    @property
    def where(self) -> str:
        return f"{self.letter.topic}:{self.letter.partition}:{self.letter.offset}"


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``deadletters list|show|replay`` to the ``bridge`` command."""
    parser = sub.add_parser("deadletters", help="inspect dead letters and re-drive them after a fix")
    dsub = parser.add_subparsers(dest="deadletters_command", required=True)

    listing = dsub.add_parser("list", help="one line per dead letter, and a count by reason (no payload)")
    _filters(listing)
    listing.add_argument("--json", action="store_true", help="JSON lines (the count goes to standard error)")
    listing.set_defaults(fn=cmd_list)

    show = dsub.add_parser("show", help="one dead letter and, given the dead-letter key, its original bytes")
    show.add_argument("coordinates", type=_coordinates, help="the source message as TOPIC:PARTITION:OFFSET")
    show.set_defaults(fn=cmd_show)

    replay = dsub.add_parser(
        "replay",
        help="produce the original bytes back onto their source topic",
        description="Opens each selected payload with the dead-letter key and produces it back onto its source "
        "topic with the source key. Safe to repeat: the workers ignore events they already processed. "
        "Exit code 1 when some could not be re-sent (listed with their coordinates).",
    )
    _filters(replay)
    replay.add_argument("coordinates", nargs="*", type=_coordinates, help="only these, as TOPIC:PARTITION:OFFSET")
    replay.add_argument("--all", action="store_true", help="select every dead letter when no filter is given")
    replay.add_argument("--dry-run", action="store_true", help="open and report, send nothing")
    replay.set_defaults(fn=cmd_replay)


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason-code", action="append", metavar="CODE", help="only this reason code (repeatable)")
    parser.add_argument("--topic", choices=sorted(REPLAYABLE), help="only dead letters of this source topic")
    parser.add_argument("--since", type=_moment, metavar="ISO-TIME", help="dead-lettered at or after this time")
    parser.add_argument("--until", type=_moment, metavar="ISO-TIME", help="dead-lettered before this time")


# -- commands ----------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    letters = sorted(select(read_letters(broker_settings("the Kafka bootstrap of bridge.deadletter.v1")), args), key=lambda x: (_utc(x.letter.dead_lettered_at), x.where))
    for item in letters:
        print(json.dumps(summary_json(item), ensure_ascii=False) if args.json else format_line(item))
    counts = Counter(item.letter.reason_code for item in letters)
    total = ", ".join(f"{code} {n}" for code, n in sorted(counts.items()))
    line = f"{len(letters)} dead letter{'s' if len(letters) != 1 else ''}" + (f": {total}" if total else "")
    print(line, file=sys.stderr if args.json else sys.stdout)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    settings = broker_settings("the Kafka bootstrap of bridge.deadletter.v1")
    wanted = args.coordinates
    found = [item for item in read_letters(settings) if _coords_of(item) == wanted]
    if not found:
        raise NoSuchDeadLetter(f"no dead letter names {':'.join(map(str, wanted))} on {catalogue.DEADLETTER.name} "
                               "(they are kept 30 days; `bridge deadletters list` shows what there is)")
    sealer = _sealer(settings)
    for item in found:
        print(format_letter(item))
        print(format_payload(open_payload(sealer, item)))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    filtered = any((args.reason_code, args.topic, args.since, args.until, args.coordinates))
    if not (filtered or args.all):
        raise BridgeError("select what to replay: --reason-code, --topic, --since/--until, coordinates, or --all")
    return replay(broker_settings("the Kafka bootstrap of bridge.deadletter.v1"), args)


def replay(settings: Settings, args: argparse.Namespace, report: Callable[[str], object] = print) -> int:
    """``replay`` on ``settings``'s broker, each line of its report given to ``report`` (the
    console shares it): 1 when some could not be re-sent, else 0."""
    wanted = set(args.coordinates)
    chosen = [x for x in select(read_letters(settings), args) if not wanted or _coords_of(x) in wanted]
    chosen.sort(key=_coords_of)  # source order: a key's events go back in the order they came
    sealer = _sealer(settings)
    verb = "would re-send" if args.dry_run else "re-sent"
    sendable: list[tuple[Letter, bytes]] = []
    failed: list[str] = []
    seen: set[tuple[object, ...]] = set()
    skipped = 0
    for item in chosen:
        letter = item.letter
        # The same bytes dead-lettered twice (a replay that failed again) are one event: send them once.
        same = (letter.topic, letter.payload_sha256) if letter.payload_sha256 else _coords_of(item)
        if same in seen:
            skipped += 1
            report(f"skipped {item.where}: the same bytes are already selected")
            continue
        seen.add(same)
        if letter.topic not in REPLAYABLE:
            failed.append(f"{item.where}: refused, {letter.topic} is not an input topic")
            continue
        try:
            sendable.append((item, open_payload(sealer, item)))
        except BridgeError as exc:
            failed.append(f"{item.where}: {exc}")
    if not args.dry_run and sendable:
        _send(settings, sendable, report)
    else:
        for item, _ in sendable:
            report(f"{verb} {item.where}")
    report(f"{verb} {len(sendable)} of {len(chosen)} selected dead letters; could not re-send {len(failed)}"
           + (f"; skipped {skipped} carrying the same bytes as another" if skipped else ""))
    for line in failed:
        report(f"  not re-sent {line}")
    return 1 if failed else 0


# -- reading and selecting ----------------------------------------------------------------------


def read_letters(settings: Settings) -> Iterator[Letter]:
    """Every dead letter on the topic; a value that is not a dead letter is reported and skipped."""
    try:
        for msg in iter_topic(settings, catalogue.DEADLETTER.name):
            where = f"{msg.topic}[{msg.partition}]@{msg.offset}"
            try:
                letter = parse_published(DeadLetter, json.loads(msg.value or b""))
            except (ValueError, TypeError, AttributeError, ValidationError):
                print(f"skipped {where}: not a dead letter", file=sys.stderr)
                continue
            yield Letter(letter, msg.key)
    except TimeoutError as exc:
        raise BridgeError(f"{exc}; check the broker") from None


def select(letters: Iterable[Letter], args: argparse.Namespace) -> Iterator[Letter]:
    """The dead letters that pass ``--reason-code``, ``--topic``, ``--since`` and ``--until``."""
    for item in letters:
        letter, when = item.letter, _utc(item.letter.dead_lettered_at)
        if args.reason_code and letter.reason_code not in args.reason_code:
            continue
        if args.topic and letter.topic != args.topic:
            continue
        if (args.since and when < args.since) or (args.until and when >= args.until):
            continue
        yield item


def open_payload(sealer: Sealer, item: Letter) -> bytes:
    """The original bytes of a dead letter, or a :class:`BridgeError` saying what to do."""
    letter = item.letter
    if letter.payload_encrypted is None:
        raise PayloadNotCarried(
            f"the dead letter carries no payload (message of {_size(letter.payload_bytes)}, too large or no longer "
            f"held): read it from {letter.topic} at partition {letter.partition}, offset {letter.offset} while the "
            "topic still holds it; payload_sha256 identifies it"
        )
    try:
        return sealer.open(letter)
    except SealError as exc:
        if letter.key_id in sealer.key_ids():
            # Same key id, wrong secret: only possible with BRIDGE_DEADLETTER_KEY_ID set by hand.
            hint = "; or BRIDGE_DEADLETTER_KEY is not the key that sealed it"
            raise type(exc)(exc.reason + hint, key_id=exc.key_id) from None
        raise


# -- output -------------------------------------------------------------------------------------


def format_line(item: Letter) -> str:
    """One line of ``list``: when, source coordinates, reason code, size, whether a payload is carried."""
    letter = item.letter
    carried = "sealed" if letter.payload_encrypted is not None else "not-carried"
    return (f"{_iso(letter.dead_lettered_at)}  {letter.topic}[{letter.partition}]@{letter.offset}  "
            f"{letter.reason_code}  {_size(letter.payload_bytes)}  {carried}")


def summary_json(item: Letter) -> dict[str, object]:
    """A dead letter as ``list --json`` prints it: every field but the sealed payload."""
    data = item.letter.model_dump(mode="json", exclude={"payload_encrypted"})
    data["payload_carried"] = item.letter.payload_encrypted is not None
    return data


def format_letter(item: Letter) -> str:
    """The dead letter's fields as ``show`` prints them (the reason always)."""
    letter = item.letter
    carried = f"sealed under key {letter.key_id}" if letter.payload_encrypted is not None else "not carried"
    return "\n".join((
        f"--- dead letter of {letter.topic}[{letter.partition}]@{letter.offset}",
        f"dead_lettered_at  {_iso(letter.dead_lettered_at)}",
        f"reason_code       {letter.reason_code}",
        f"reason            {letter.reason}",
        f"source key        {_text(_replay_key(item.key))}",
        f"payload           {_size(letter.payload_bytes)}, sha256 {letter.payload_sha256 or '-'}, {carried}",
    ))


def format_payload(value: bytes) -> str:
    """The opened bytes: as text when they are printable UTF-8, else base64."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    # Control characters (an escape sequence) would act on the operator's terminal: base64 instead.
    if text is not None and all(c.isprintable() or c in "\n\r\t" for c in text):
        return f"--- payload ({len(value)} bytes, UTF-8 text)\n{text}"
    return f"--- payload ({len(value)} bytes, base64)\n{base64.b64encode(value).decode('ascii')}"


# -- shared -------------------------------------------------------------------------------------


def _send(settings: Settings, items: list[tuple[Letter, bytes]], report: Callable[[str], object] = print) -> None:
    # A broker failure ends the command (exit 2) with what was sent so far printed: running the
    # same replay again is safe.
    prod = producer(settings)
    try:
        futures = [(item, prod.send(item.letter.topic, key=_replay_key(item.key), value=v)) for item, v in items]
        prod.flush()
        for item, future in futures:
            meta = future.get(timeout=30)
            report(f"re-sent {item.where} as {meta.topic}:{meta.partition}:{meta.offset}")
    finally:
        prod.close()


def _replay_key(key: bytes | None) -> bytes | None:
    # The dead letter's key is the source key, unless that was too long or not UTF-8 (then its digest).
    if key is None or _DIGEST_KEY.fullmatch(key):
        return None
    return key


def _sealer(settings: Settings) -> Sealer:
    from bridge.bootstrap import build_sealer

    return build_sealer(settings)


def _coords_of(item: Letter) -> tuple[str, int, int]:
    return (item.letter.topic, item.letter.partition, item.letter.offset)


def _coordinates(text: str) -> tuple[str, int, int]:
    topic, _, rest = text.rpartition(":")
    topic, _, partition = topic.rpartition(":")
    try:
        if not topic:
            raise ValueError
        return (topic, int(partition), int(rest))
    except ValueError:
        example = f"{catalogue.PLATFORM_TOPICS[0].name}:0:42"
        raise argparse.ArgumentTypeError(f"expected TOPIC:PARTITION:OFFSET, e.g. {example}") from None


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected an ISO 8601 time, e.g. 2024-05-01T08:00:00Z") from None
    return _utc(moment)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return _utc(moment).isoformat(timespec="seconds").replace("+00:00", "Z")


def _text(key: bytes | None) -> str:
    if key is None:
        return "(not carried)"
    text = key.decode("utf-8", "replace")
    return text if text.isprintable() else ascii(text)  # no control characters to the terminal


def _size(n: int | None) -> str:
    return f"{n} B" if n is not None else "size unknown"
