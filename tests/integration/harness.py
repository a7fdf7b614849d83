"""A real bridge for integration tests: its own embedded broker, database and worker processes."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from sqlalchemy import text

from bridge import cli as bridge_cli
from bridge.tools.admin import apply_topics
from bridge.tools.broker import EmbeddedBroker, free_port
from bridge.tools.demo import Progress, WorkerProcess, wait_outbox_empty, wait_until_consumed
from bridge.core.records import DeadLetter
from bridge.core.sealing import Sealer, SealError
from bridge.settings import DEVELOPMENT_DEADLETTER_KEY, Settings
from bridge.store.engine import build_engine
from bridge.store.uow import reading
from bridge.tools.topicio import Message, compacted, producer, read_topic
from tests.operators import write_keys
from topics import catalogue


def kafka_security_env(settings: Settings) -> dict[str, str]:
    """The ``BRIDGE_KAFKA_*`` variables that connect as ``settings`` do (none for plaintext)."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        return {}
    env = {"BRIDGE_KAFKA_SECURITY_PROTOCOL": settings.kafka_security_protocol}
    if settings.kafka_security_protocol.startswith("SASL_"):
        env.update(
            BRIDGE_KAFKA_SASL_MECHANISM=settings.kafka_sasl_mechanism,
            BRIDGE_KAFKA_SASL_USERNAME=settings.kafka_sasl_username or "",
            BRIDGE_KAFKA_SASL_PASSWORD=settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else "",
        )
    if settings.kafka_ssl_cafile is not None:
        env["BRIDGE_KAFKA_SSL_CAFILE"] = str(settings.kafka_ssl_cafile)
    return env


class Bridge:
    """One isolated bridge: a fresh broker (topics applied), a database URL and its workers."""

    def __init__(self, workdir: Path, database_url: str, *, broker: Any = None, **settings: Any) -> None:
        """``broker``: a started broker of the caller's (with ``url`` and ``stop()``), whose
        security settings (``kafka_*``) come in ``settings``; by default an embedded one."""
        self.workdir = workdir
        self.broker = broker or EmbeddedBroker(log_dir=workdir / "broker").start()
        self.settings = Settings(
            broker_url=self.broker.url,
            database_url=database_url,
            group_id="bridge-test",
            web_host="127.0.0.1",
            **settings,
        )
        apply_topics(self.settings)
        self.workers: list[WorkerProcess] = []
        #: Messages this harness wrote to the (initially empty) input topics.
        self.sent = 0
        self._producer = producer(self.settings)
        self.engine = build_engine(database_url)
        #: The workers trust every test operator's key; ``operator_env`` signs as one of them.
        self.operator_keys, self.signing_keys = write_keys(workdir / "operators")

    def operator_env(self, operator: str) -> dict[str, str]:
        """The settings of an operator's commands (``bridge review ...``): this bridge, signing as ``operator``."""
        return {**self.env(), "BRIDGE_OPERATOR_SIGNING_KEY": str(self.signing_keys[operator])}

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
        s = self.settings
        env.update(
            BRIDGE_BROKER_URL=s.broker_url,
            BRIDGE_DATABASE_URL=s.database_url,
            BRIDGE_GROUP_ID=s.group_id,
            BRIDGE_WEB_HOST="127.0.0.1",
            BRIDGE_HOURS_PER_CREDIT=str(s.hours_per_credit),
            BRIDGE_BATCH_WINDOW_S="0.1",
            BRIDGE_OPERATOR_KEYS=str(self.operator_keys),
            BRIDGE_DEADLETTER_KEY=s.deadletter_key.get_secret_value(),
        )
        if s.course_equivalences:
            env["BRIDGE_COURSE_EQUIVALENCES"] = str(s.course_equivalences)
        env.update(kafka_security_env(s))
        env.setdefault("BRIDGE_WEB_PORT", str(free_port()))
        env.update(extra)
        return env

    def start_worker(self, **extra: str) -> WorkerProcess:
        worker = WorkerProcess.start(self.env(**extra), self.workdir / f"worker-{len(self.workers)}.log")
        self.workers.append(worker)
        return worker

    def send(self, topic: str, key: str | bytes | None, value: bytes | dict) -> None:
        if isinstance(value, dict):
            value = json.dumps(value, ensure_ascii=False).encode()
        if isinstance(key, str):
            key = key.encode()
        self._producer.send(topic, key=key, value=value)
        if topic in {t.name for t in catalogue.INPUT_TOPICS}:
            self.sent += 1

    def flush(self) -> None:
        self._producer.flush()

    def settle(self, worker: WorkerProcess | None = None) -> None:
        """Wait until the input topics are consumed and every result is published."""
        self.flush()
        worker = worker or self.workers[-1]
        wait_until_consumed(self.settings, worker, Progress(), expected=self.sent)
        wait_outbox_empty(self.engine, worker)

    # -- what subscribers see ---------------------------------------------------------------

    def topic(self, spec: catalogue.TopicSpec) -> list:
        return read_topic(self.settings, spec.name)

    def latest(self, spec: catalogue.TopicSpec) -> dict[str, dict | None]:
        return {
            k.decode(): (json.loads(v) if v is not None else None) for k, v in compacted(self.topic(spec)).items()
        }

    def records(self) -> dict[str, dict]:
        return {k: v for k, v in self.latest(catalogue.CREDIT_RECORDS).items() if v is not None}

    def identities(self) -> dict[str, dict]:
        return {k: v for k, v in self.latest(catalogue.LEARNER_IDENTITIES).items() if v is not None}

    def live_learners(self) -> dict[str, dict]:
        return {k: v for k, v in self.identities().items() if v["merged_into"] is None}

    def dead_letters(self) -> list[dict]:
        return [json.loads(m.value) for m in self.topic(catalogue.DEADLETTER)]

    def reviews(self) -> list[dict]:
        return [json.loads(m.value) for m in self.topic(catalogue.REVIEW)]

    def counts(self) -> dict[str, Any]:
        with reading(self.engine)() as uow:
            return uow.totals.counts()

    def cli(self, *argv: str) -> tuple[int, str, str]:
        """Run ``bridge ARGV`` in-process against this bridge's broker: ``(exit code, stdout, stderr)``."""
        out, err = io.StringIO(), io.StringIO()
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
        env["BRIDGE_BROKER_URL"] = self.settings.broker_url or ""
        env.update(kafka_security_env(self.settings))
        with mock.patch.dict(os.environ, env, clear=True), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = bridge_cli.main(list(argv))
        return code, out.getvalue(), err.getvalue()

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self._producer.close()
        self.engine.dispose()
        self.broker.stop()


# -- hostile traffic (issue 11): sent messages with their coordinates, outputs read as they grow ------

MiB = 1024 * 1024
#: What the test producer may send: the broker (tansu 0.6) takes at least 20 MB per message, so
#: inputs over the contract's 1 MiB can be sent to see the bridge refuse them.
LARGE_REQUEST_BYTES = 16 * MiB
#: Any of these in a topic's key or value is a message that exceeds the output bound.
OUTPUT_TOPIC_NAMES = tuple(t.name for t in catalogue.OUTPUT_TOPICS)


@contextlib.contextmanager
def backend_database(backend: str, workdir: Path) -> Iterator[str]:
    """A URL of an empty database of ``backend`` (``sqlite`` or ``postgresql``) for as long as the
    context lasts: for bridges that outlive one test (module-scoped fixtures). PostgreSQL needs
    ``TEST_POSTGRES_URL`` as in ``tests/conftest.py``: skipped without it, failed under CI."""
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'bridge.db'}"
        return
    from tests.conftest import _postgres_database

    yield from _postgres_database()


def install_insert_poison(engine: Any, data_prefix: str, constraint_prefix: str | None = None) -> None:
    """Make the database refuse every credit fact whose event id starts with ``data_prefix`` (and
    ``constraint_prefix``).

    Stands for whatever gets past validation and still makes the database fail: a trigger, so the
    messages themselves are valid. ``data_prefix``: a data error (PostgreSQL SQLSTATE 22021, what a
    NUL byte in text gives; SQLite "malformed JSON", an OperationalError that is no outage).
    ``constraint_prefix``: a constraint the batch breaks every time (PostgreSQL 23505, SQLite
    ``RAISE(ABORT)``: an IntegrityError, which a worker may first take for a race it lost).
    Install it after the worker created the schema.
    """
    prefixes = {"data": data_prefix, "constraint": constraint_prefix}
    with engine.begin() as conn:
        for kind, prefix in prefixes.items():
            if prefix is None:
                continue
            pattern = prefix.replace("'", "''") + "%"
            name = f"hostile_{kind}_poison"
            if engine.dialect.name == "postgresql":
                state = "22021" if kind == "data" else "23505"
                conn.execute(text(
                    f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger AS $$ BEGIN "
                    f"IF NEW.event_id LIKE '{pattern}' THEN "
                    f"RAISE EXCEPTION 'refused by the hostile-input test trigger' USING ERRCODE = '{state}'; "
                    "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
                ))
                conn.execute(text(f"DROP TRIGGER IF EXISTS {name} ON credit_facts"))
                conn.execute(text(
                    f"CREATE TRIGGER {name} BEFORE INSERT OR UPDATE ON credit_facts "
                    f"FOR EACH ROW EXECUTE FUNCTION {name}()"
                ))
            else:
                body = "SELECT json('not json')" if kind == "data" else \
                    "SELECT RAISE(ABORT, 'refused by the hostile-input test trigger')"
                conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
                conn.execute(text(
                    f"CREATE TRIGGER {name} BEFORE INSERT ON credit_facts "
                    f"WHEN NEW.event_id LIKE '{pattern}' BEGIN {body}; END"
                ))


def readyz(port: int | str, timeout_s: float = 10.0) -> tuple[int, dict]:
    """``(HTTP status, body)`` of a worker's ``/readyz``; ``(0, {"error": ...})`` when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=timeout_s) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read() or b"{}")
        except ValueError:
            body = {}
        return exc.code, body
    except (OSError, ValueError) as exc:
        return 0, {"error": repr(exc)}


def wait_ready(port: int | str, worker: WorkerProcess, timeout_s: float = 90.0) -> None:
    """Wait until the worker's ``/readyz`` answers 200 (it joined the group, the database answers)."""
    deadline = time.monotonic() + timeout_s
    while True:
        worker.check_alive()
        status, body = readyz(port, timeout_s=2.0)
        if status == 200:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the worker is not ready after {timeout_s:.0f} s: {status} {body}; see {worker.log_path}")
        time.sleep(0.3)


@dataclass(frozen=True)
class Sent:
    """A message as the broker acknowledged it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    @property
    def coordinates(self) -> tuple[str, int, int]:
        return (self.topic, self.partition, self.offset)


class TopicTail:
    """Every message of some topics from their beginning, read further on each :meth:`poll`."""

    def __init__(self, bootstrap: list[str], topics: Iterable[str]) -> None:
        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
        tps = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(self._consumer.partitions_for_topic(topic) or ())
        ]
        self._consumer.assign(tps)
        self._consumer.seek_to_beginning(*tps)

    def poll(self, timeout_ms: int = 200) -> list[Message]:
        """The messages that arrived since the last poll (maybe none)."""
        new = []
        for records in self._consumer.poll(timeout_ms=timeout_ms, max_records=100_000).values():
            new.extend(Message(r.topic, r.partition, r.offset, r.key, r.value) for r in records)
        return new

    def close(self) -> None:
        self._consumer.close()


@dataclass
class Observer:
    """Sends messages and records their coordinates; reads every output topic as it grows.

    After :meth:`refresh`: ``dead`` holds each dead letter by the coordinates it names, ``sources``
    the latest record key that names each ``(platform, event id)``, ``records`` and ``identities``
    the latest value of each key, ``reviews`` every review item, and ``violations`` every output
    message that breaks CONTRACT §2 on its own (over 1 MiB, a key that is not UTF-8, a value that
    is not a JSON object).
    """

    bridge: Bridge
    dead: dict[tuple[str, int, int], dict] = field(default_factory=dict)
    sources: dict[tuple[str, str], str] = field(default_factory=dict)
    records: dict[str, dict | None] = field(default_factory=dict)
    identities: dict[str, dict | None] = field(default_factory=dict)
    reviews: list[dict] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    #: How many messages were read per output topic, and the largest (key + value bytes).
    counts: dict[str, int] = field(default_factory=dict)
    largest: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bootstrap = self.bridge.settings.bootstrap_servers()
        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap, acks="all", linger_ms=5, retries=5,
            max_in_flight_requests_per_connection=1, max_request_size=LARGE_REQUEST_BYTES,
        )
        self.tail = TopicTail(bootstrap, OUTPUT_TOPIC_NAMES)

    def send(self, messages: Sequence[tuple[str, bytes | None, bytes | None]]) -> list[Sent]:
        """Send ``(topic, key, value)`` in order; returns each one's coordinates once acknowledged."""
        futures = [self.producer.send(topic, key=key, value=value) for topic, key, value in messages]
        self.producer.flush()
        sent = []
        for (topic, key, value), future in zip(messages, futures):
            meta = future.get(timeout=60)
            sent.append(Sent(topic, meta.partition, meta.offset, key, value))
            if topic in {t.name for t in catalogue.INPUT_TOPICS}:
                self.bridge.sent += 1
        return sent

    def refresh(self, timeout_ms: int = 200) -> int:
        """Read what the output topics gained; returns how many messages that was."""
        new = self.tail.poll(timeout_ms)
        for msg in new:
            self._note(msg)
        return len(new)

    def _note(self, msg: Message) -> None:
        where = f"{msg.topic}[{msg.partition}]@{msg.offset}"
        size = len(msg.key or b"") + len(msg.value or b"")
        self.counts[msg.topic] = self.counts.get(msg.topic, 0) + 1
        self.largest[msg.topic] = max(self.largest.get(msg.topic, 0), size)
        if size > MiB:
            self.violations.append(f"{where}: {size:,} bytes, over the 1 MiB bound")
        if msg.key is not None:
            try:
                key = msg.key.decode("utf-8")
            except UnicodeDecodeError:
                self.violations.append(f"{where}: the key is not UTF-8 ({msg.key[:40]!r})")
                key = msg.key.decode("utf-8", "replace")
        else:
            key = None
        if msg.value is None:
            if msg.topic == catalogue.CREDIT_RECORDS.name and key is not None:
                self.records[key] = None
            elif msg.topic == catalogue.LEARNER_IDENTITIES.name and key is not None:
                self.identities[key] = None
            else:
                self.violations.append(f"{where}: a null value on a topic without tombstones")
            return
        try:
            value = json.loads(msg.value)
        except ValueError as exc:
            self.violations.append(f"{where}: the value is not JSON ({exc})")
            return
        if not isinstance(value, dict):
            self.violations.append(f"{where}: the value is not a JSON object")
            return
        if key is None and msg.topic != catalogue.DEADLETTER.name:
            self.violations.append(f"{where}: no key")
            return
        if msg.topic == catalogue.DEADLETTER.name:
            value["_size"] = size
            value["_key"] = msg.key
            try:
                self.dead[(value["topic"], value["partition"], value["offset"])] = value
            except (KeyError, TypeError):
                self.violations.append(f"{where}: a dead letter without its coordinates")
        elif msg.topic == catalogue.CREDIT_RECORDS.name:
            self.records[key] = value
            for source in value.get("sources") or ():
                self.sources[(source.get("platform"), source.get("event_id"))] = key
        elif msg.topic == catalogue.LEARNER_IDENTITIES.name:
            self.identities[key] = value
        elif msg.topic == catalogue.REVIEW.name:
            self.reviews.append(value)

    def record_of(self, event: tuple[str, str]) -> dict | None:
        """The current record whose sources name ``event``, if any."""
        key = self.sources.get(event)
        if key is None:
            return None
        record = self.records.get(key)
        if record is None or not any((s["platform"], s["event_id"]) == event for s in record["sources"]):
            return None
        return record

    def wait(self, check: Callable[[], tuple[list[str], list[str]]], timeout_s: float, what: str,
             worker: WorkerProcess | None = None) -> None:
        """Read the outputs until ``check()`` returns no pending items; ``check`` returns ``(pending,
        failures)``. Fails at once on a failure, and after ``timeout_s`` listing what is still pending."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.refresh()
            pending, failures = check()
            if failures:
                raise AssertionError(f"{what}:\n  " + "\n  ".join(failures[:30]))
            if not pending:
                return
            if worker is not None:
                worker.check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{what}: after {timeout_s:.0f} s, {len(pending)} still pending:\n  " + "\n  ".join(pending[:30])
                    + (f"\n  (worker log: {worker.log_path})" if worker is not None else "")
                )

    def close(self) -> None:
        self.tail.close()
        self.producer.close()


def sha256_hex(value: bytes | None) -> str:
    return hashlib.sha256(value or b"").hexdigest()


def open_dead_letter(letter: dict, sealer: Sealer | None = None) -> bytes:
    """The original bytes of a dead letter (as read from the topic), opened with the test key."""
    sealer = sealer or Sealer.from_secret(DEVELOPMENT_DEADLETTER_KEY)
    return sealer.open(DeadLetter.model_validate({k: v for k, v in letter.items() if not k.startswith("_")}))


def sealed_payload_problems(letter: dict, value: bytes, label: str) -> list[str]:
    """What in a dead letter's sealed payload breaks CONTRACT §2 for the message bytes ``value``."""
    if "payload_base64" in letter:
        return [f"{label}: the dead letter carries the readable payload_base64"]
    if letter.get("payload_encrypted") is None:
        return [] if letter.get("key_id") is None else [f"{label}: a key_id without a payload"]
    try:
        same = open_dead_letter(letter) == value
    except SealError as exc:
        return [f"{label}: the sealed payload does not open: {exc}"]
    return [] if same else [f"{label}: payload_encrypted does not open to the message's bytes"]


def dead_letter_problems(letter: dict, hostile: Any, sent: Sent) -> list[str]:
    """What in one dead letter breaks CONTRACT §2 for the message ``hostile`` (a
    :class:`tests.hostile.Hostile`) sent as ``sent``."""
    from tests.hostile import is_printable_sentence, repeated_part

    label = f"{hostile.label} at {sent.coordinates}"
    problems = []
    code, reason = letter.get("reason_code"), letter.get("reason")
    if not isinstance(code, str) or not code:
        problems.append(f"{label}: the dead letter has no reason_code ({code!r})")
    elif hostile.reason_code is not None and code != hostile.reason_code:
        problems.append(f"{label}: reason_code {code!r}, expected {hostile.reason_code!r}")
    if not isinstance(reason, str) or not reason.strip():
        problems.append(f"{label}: the dead letter has no reason")
    else:
        if not is_printable_sentence(reason):
            problems.append(f"{label}: the reason holds control characters or surrogates: {reason[:200]!r}")
        part = repeated_part(reason, hostile.needles)
        if part is not None:
            problems.append(f"{label}: the reason repeats the hostile value ({part!r} in {reason[:300]!r})")
    digest = letter.get("payload_sha256")
    if sent.value is not None:
        # A content that lost to another content of its event id after it was processed may be
        # dead-lettered once its bytes are gone (then without digest).
        lost_later = code == "duplicate_event_id" and digest is None
        if digest != sha256_hex(sent.value) and not lost_later:
            problems.append(f"{label}: payload_sha256 is {digest!r}, not the SHA-256 of the message's bytes")
        problems.extend(sealed_payload_problems(letter, sent.value, label))
    if letter.get("_size", 0) > MiB:
        problems.append(f"{label}: the dead letter is {letter['_size']:,} bytes, over 1 MiB")
    return problems


def outcome_check(observer: Observer, sent: Sequence[tuple[Any, Sent]], pairs: Sequence[tuple[int, int]] = ()
                  ) -> Callable[[], tuple[list[str], list[str]]]:
    """A ``check`` for :meth:`Observer.wait`: has each message of ``sent`` (``tests.hostile.Hostile``
    and its coordinates) become what it must (processed, dead-lettered, either), and of each pair of
    indexes in ``pairs`` (one event id, two contents) exactly one been kept and the other
    dead-lettered? Once nothing is pending, each dead letter is checked too."""
    paired = {i for pair in pairs for i in pair}

    def processed(hostile: Any) -> tuple[bool, str | None]:
        if hostile.event is None:
            return False, None
        record = observer.record_of(hostile.event)
        if record is None:
            return False, None
        if hostile.status is not None and record["status"] != hostile.status:
            return False, f"its record is {record['status']}, expected {hostile.status}"
        return True, None

    def check() -> tuple[list[str], list[str]]:
        pending: list[str] = []
        failures: list[str] = []
        for i, (hostile, where) in enumerate(sent):
            if i in paired:
                continue
            label = f"{hostile.label} at {where.coordinates}"
            letter = observer.dead.get(where.coordinates)
            done, wrong = processed(hostile)
            if hostile.expect == "process":
                if letter is not None:
                    failures.append(f"{label}: dead-lettered but valid ({letter.get('reason_code')}: {letter.get('reason')})")
                elif not done:
                    pending.append(f"{label}: not processed yet" + (f" ({wrong})" if wrong else ""))
            elif hostile.expect == "dead_letter":
                if letter is None and hostile.event is not None and observer.record_of(hostile.event) is not None:
                    failures.append(f"{label}: processed as event {hostile.event[1][:60]!r} instead of dead-lettered")
                elif letter is None:
                    pending.append(f"{label}: not dead-lettered yet")
            elif letter is None and not done and hostile.event is not None:
                pending.append(f"{label}: neither processed nor dead-lettered yet")
        for i, j in pairs:
            (a, sa), (b, sb) = sent[i], sent[j]
            la, lb = observer.dead.get(sa.coordinates), observer.dead.get(sb.coordinates)
            label = f"{a.label} / {b.label} at {sa.coordinates} / {sb.coordinates}"
            if la is not None and lb is not None:
                failures.append(f"{label}: both contents dead-lettered ({la.get('reason_code')}, {lb.get('reason_code')})")
                continue
            if la is None and lb is None:
                pending.append(f"{label}: neither content dead-lettered yet")
                continue
            kept = b if la is not None else a
            record = observer.record_of(kept.event)
            if record is None:
                pending.append(f"{label}: the kept content is not processed yet")
            elif a.status != b.status and record["status"] != kept.status:
                pending.append(f"{label}: the record is {record['status']}, not {kept.status} of the kept content")
        if not pending and not failures:
            for hostile, where in sent:
                letter = observer.dead.get(where.coordinates)
                if letter is not None:
                    failures.extend(dead_letter_problems(letter, hostile, where))
        return pending, failures

    return check
