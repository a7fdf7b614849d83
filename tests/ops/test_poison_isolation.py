"""A message that makes its batch fail is isolated and dead-lettered; the rest is committed.

These run the worker's batch handling (``StreamWorker.handle``) over a real pipeline and database,
without a broker. The poison reaches the store on purpose: a trigger refuses the facts of valid
events whose id starts with ``poison`` (a data error, or a constraint the batch breaks every time).
So the tests show the second line of defence: whatever gets past validation and fails in the
database every time is found by splitting the batch, never retried forever.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from datetime import datetime, timezone

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, ProgrammingError

import adapters
from bridge.bootstrap import Runtime
from bridge.core.courses import CourseKeys
from bridge.core.pseudonym import Pseudonymiser
from bridge.core.records import DEADLETTER_KEY_BOUND, DEADLETTER_PAYLOAD_BOUND, OUTPUT_VALUE_BOUND
from bridge.errors import RegistryChanged
from bridge.failures import Failure, classify
from bridge.core.sealing import Sealer
from bridge.metrics import Metrics
from bridge.pipeline import Inbound, Pipeline, dead_letter
from bridge.settings import Settings
from bridge.store import schema as t
from bridge.store.uow import writing
from bridge.stream import health as health_module
from bridge.stream import retry as retry_module
from bridge.stream.handler import StreamWorker
from bridge.stream.health import Health
from bridge.stream.publisher import deadletter_key
from tests.factories import UNION, encode, union_event
from tests.integration.harness import install_insert_poison
from topics import catalogue

POISON_KEY = b"POISON"


@pytest.fixture(params=["data", "constraint"])
def runtime(request: pytest.FixtureRequest, engine: Engine, database_url: str) -> Runtime:
    if request.param == "data":
        install_insert_poison(engine, "poison")
    else:
        install_insert_poison(engine, "no-such-prefix", constraint_prefix="poison")
    units = writing(engine)
    pipeline = Pipeline(units.writer(serializable=True), adapters.parsers(), Pseudonymiser.from_secret("k" * 32), CourseKeys(), 16.0)
    return Runtime(Settings(database_url=database_url), engine, units, pipeline, Metrics(CollectorRegistry()))


class Sent(list):
    async def __call__(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        self.append((topic, key, value))


def _message(offset: int, account: str) -> Inbound:
    event_id = f"poison-{offset}" if account.startswith("POISON") else f"u-{offset}"
    raw = union_event(event_id, member_no=account, name=None, mobile=None, course=f"C-{offset}")
    return Inbound(UNION, 0, offset, account.encode(), encode(raw))


def _handle(runtime: Runtime, batch: list[Inbound]):
    sent = Sent()
    worker = StreamWorker(runtime, sent)
    try:
        result = asyncio.run(worker.handle(batch))
    finally:
        worker.close()
    return result, sent


def _facts(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(t.credit_facts)).scalar_one()


@pytest.mark.parametrize("poisons", [(3,), (0, 6), (0, 1, 2, 3, 4, 5, 6)])
def test_the_messages_that_fail_their_batch_are_isolated_and_the_rest_committed(
    runtime: Runtime, poisons: tuple[int, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retry_module, "RETRY_FIRST_S", 0.01)
    batch = [_message(i, f"POISON-{i}" if i in poisons else f"GH{i}") for i in range(7)]
    result, sent = _handle(runtime, batch)

    letters = [(m.offset, letter) for m, letter in result.dead_letters]
    assert [offset for offset, _ in letters] == list(poisons)
    for offset, letter in letters:
        assert letter.reason_code == "unprocessable"
        assert (letter.topic, letter.partition, letter.offset) == (UNION, 0, offset)
        assert letter.payload_sha256 == hashlib.sha256(batch[offset].value).hexdigest()
        assert "POISON" not in letter.reason
    assert sum(result.processed.values()) == 7 - len(poisons)
    assert _facts(runtime.engine) == 7 - len(poisons)
    deadletters = [v for topic, _k, v in sent if topic == catalogue.DEADLETTER.name]
    assert sorted(json.loads(v)["offset"] for v in deadletters) == list(poisons)
    assert runtime.metrics.registry.get_sample_value("bridge_poison_messages_total") == len(poisons)


def test_a_redelivered_batch_with_its_poison_changes_nothing_more(runtime: Runtime) -> None:
    batch = [_message(0, "GH0"), _message(1, "POISON-1"), _message(2, "GH2")]
    _handle(runtime, batch)
    result, _ = _handle(runtime, batch)
    assert result.duplicates == 2
    assert [m.offset for m, _ in result.dead_letters] == [1]
    assert _facts(runtime.engine) == 2


def test_a_transient_failure_is_retried_not_isolated(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry_module, "RETRY_FIRST_S", 0.01)
    real = runtime.pipeline.process
    calls: list[int] = []

    def flaky(batch):
        calls.append(len(batch))
        if len(calls) <= 3:
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))
        return real(batch)

    monkeypatch.setattr(runtime.pipeline, "process", flaky)
    result, _ = _handle(runtime, [_message(i, f"GH{i}") for i in range(4)])
    assert calls == [4, 4, 4, 4]  # the whole batch each time: never split for a database outage
    assert not result.dead_letters and sum(result.processed.values()) == 4


def test_a_fatal_failure_stops_the_worker_without_committing(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    exits: list[int] = []

    def exit_now(code: int) -> None:
        exits.append(code)
        raise SystemExit(code)

    monkeypatch.setattr(retry_module.os, "_exit", exit_now)

    def replaced(batch):
        raise RegistryChanged("the registry id changed")

    monkeypatch.setattr(runtime.pipeline, "process", replaced)
    with pytest.raises(SystemExit):
        _handle(runtime, [_message(0, "GH0")])
    assert exits == [retry_module.FATAL_EXIT]


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (OperationalError("x", {}, Exception("server closed the connection")), Failure.TRANSIENT),
        (ConnectionResetError(), Failure.TRANSIENT),
        (DataError("x", {}, Exception("value too long")), Failure.DATA),
        (ProgrammingError("x", {}, Exception("syntax")), Failure.DATA),
        (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), Failure.DATA),
        (ValueError("PostgreSQL text fields cannot contain NUL (0x00) bytes"), Failure.DATA),
        (IntegrityError("x", {}, Exception("UNIQUE constraint failed")), Failure.RACE),
        (IntegrityError("x", {}, sqlite3.IntegrityError("UNIQUE constraint failed")), Failure.DATA),
        (RegistryChanged("gone"), Failure.FATAL),
    ],
)
def test_failures_are_classified(exc: BaseException, kind: Failure) -> None:
    assert classify(exc) is kind


def test_sqlstates_decide_on_postgresql() -> None:
    class Orig(Exception):
        def __init__(self, sqlstate: str) -> None:
            self.sqlstate = sqlstate

    def failure(state: str) -> Failure:
        return classify(OperationalError("x", {}, Orig(state)))

    assert failure("40001") is Failure.RACE and failure("40P01") is Failure.RACE
    assert failure("08006") is Failure.TRANSIENT and failure("57P01") is Failure.TRANSIENT
    assert failure("22001") is Failure.DATA and failure("22021") is Failure.DATA
    assert failure("42P01") is Failure.FATAL  # the registry's tables are gone
    assert failure("23505") is Failure.RACE


def test_a_race_lost_again_and_again_is_treated_as_caused_by_the_data(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retry_module, "CONFLICT_RETRY_S", 0.011)
    monkeypatch.setattr(retry_module, "MAX_QUICK_RACES", 3)
    real = runtime.pipeline.process

    def always_conflicting_for_poison(batch):
        if any(m.key == POISON_KEY for m in batch):
            raise IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed"))
        return real(batch)

    monkeypatch.setattr(runtime.pipeline, "process", always_conflicting_for_poison)
    batch = [_message(0, "GH0"), Inbound(UNION, 0, 1, POISON_KEY, encode(union_event("u-1")))]
    result, _ = _handle(runtime, batch)
    assert [(m.offset, letter.reason_code) for m, letter in result.dead_letters] == [(1, "unprocessable")]
    assert _facts(runtime.engine) == 1


def test_a_dead_letter_of_a_huge_message_carries_its_digest_not_its_bytes() -> None:
    now = datetime.now(timezone.utc)
    small = Inbound(UNION, 0, 1, b"k", b"x" * DEADLETTER_PAYLOAD_BOUND)
    huge = Inbound(UNION, 0, 2, b"k", b"{" + b" " * (1_048_576 - 2) + b"}")
    sealer = Sealer.from_secret("a test dead-letter key of some length")
    kept, digest_only = dead_letter(small, "r", "c", now, sealer), dead_letter(huge, "r", "c", now, sealer)
    assert kept.payload_encrypted is not None and len(kept.model_dump_json()) <= OUTPUT_VALUE_BOUND
    assert sealer.open(kept) == small.value
    assert digest_only.payload_encrypted is None and digest_only.key_id is None
    assert digest_only.payload_sha256 == hashlib.sha256(huge.value).hexdigest()
    assert digest_only.payload_bytes == len(huge.value)
    assert len(digest_only.model_dump_json()) < 2_000


def test_a_dead_letter_keeps_a_short_key_and_digests_a_long_one() -> None:
    assert deadletter_key(b"GH1") == b"GH1"
    assert deadletter_key(None) is None
    long_key = b"9" * (DEADLETTER_KEY_BOUND + 1)
    assert deadletter_key(long_key) == b"sha256:" + hashlib.sha256(long_key).hexdigest().encode()
    assert deadletter_key(b"\xff\xfe") == b"sha256:" + hashlib.sha256(b"\xff\xfe").hexdigest().encode()


def test_a_value_over_the_message_bound_is_held_back_not_sent(runtime: Runtime) -> None:
    _handle(runtime, [_message(0, "GH0")])
    with runtime.units() as uow:
        learner_id = uow.conn.execute(select(t.learners.c.learner_id)).scalar_one()
        huge = '{"learner_id":"' + learner_id + '","pad":"' + "x" * OUTPUT_VALUE_BOUND + '"}'
        uow.conn.execute(update(t.learners).values(value=huge))
        uow.outbox.enqueue(catalogue.LEARNER_IDENTITIES.name, learner_id)
    sent = Sent()
    worker = StreamWorker(runtime, sent)
    try:
        asyncio.run(worker.drain_outbox())
    finally:
        worker.close()
    assert all(value is None or len(value) <= OUTPUT_VALUE_BOUND for _t, _k, value in sent)
    assert not [k for topic, k, _ in sent if topic == catalogue.LEARNER_IDENTITIES.name]
    with runtime.units.reader()() as uow:
        [(topic, key, size, _at)] = uow.outbox.held()
        pending = uow.conn.execute(select(func.count()).select_from(t.outbox)).scalar_one()
    assert (topic, key) == (catalogue.LEARNER_IDENTITIES.name, learner_id) and size > OUTPUT_VALUE_BOUND
    assert pending == 0  # publication goes on past it
    held = runtime.metrics.registry.get_sample_value(
        "bridge_outputs_held_back_total", {"topic": catalogue.LEARNER_IDENTITIES.name}
    )
    assert held == 1


def test_readiness_says_why_a_worker_makes_no_progress() -> None:
    health = Health(assigned=True, database_ok=True)
    health.idle_since = 0.0
    assert health.stalled(120, now=1000.0) is None  # idle with nothing waiting: fine
    health.pending = 5
    assert "5 messages wait" in (health.stalled(120, now=1000.0) or "")
    assert health.stalled(120, now=100.0) is None
    health.batch_started, health.failing = 900.0, "process: DataError"
    assert health.stalled(120, now=1000.0) is None
    assert "failing at process: DataError" in (health.stalled(120, now=1100.0) or "")


def test_a_worker_stuck_on_a_batch_is_not_ready(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    worker = StreamWorker(runtime, Sent())
    try:
        worker.health.assigned = True
        assert worker.check_database() and worker.is_ready()
        clock = [5000.0]
        monkeypatch.setattr(health_module.time, "monotonic", lambda: clock[0])
        worker.health.batch_started = clock[0]
        clock[0] += runtime.settings.stall_timeout_s + 1
        assert not worker.is_ready()
        assert "no progress" in (worker.not_ready_because() or "")
    finally:
        worker.close()


def _sqlite_error(message: str, code: int) -> OperationalError:
    orig = sqlite3.OperationalError(message)
    orig.sqlite_errorcode = code  # type: ignore[attr-defined]
    return OperationalError("INSERT", {}, orig)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (_sqlite_error("database or disk is full", 13), Failure.TRANSIENT),
        (_sqlite_error("attempt to write a readonly database", 8), Failure.TRANSIENT),
        (_sqlite_error("database is locked", 5), Failure.TRANSIENT),
        (_sqlite_error("database disk image is malformed", 11), Failure.FATAL),
        (_sqlite_error("string or blob too big", 18), Failure.DATA),
    ],
)
def test_sqlite_failures_are_told_by_their_result_code(exc: BaseException, kind: Failure) -> None:
    assert classify(exc) is kind


def test_outages_and_wrong_deployments_are_never_blamed_on_the_data() -> None:
    class Orig(Exception):
        def __init__(self, sqlstate: str) -> None:
            self.sqlstate = sqlstate

    assert classify(OperationalError("x", {}, Orig("25006"))) is Failure.TRANSIENT  # read-only standby
    assert classify(ProgrammingError("x", {}, Orig("42501"))) is Failure.FATAL  # no privilege
    assert classify(ProgrammingError("x", {}, Orig("42703"))) is Failure.FATAL  # schema behind the code


def test_a_database_that_takes_no_writes_dead_letters_nothing(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every message fails alike (say, a cause the classification does not know): the probe before
    the first dead letter finds the database refusing writes, and the worker waits instead."""
    monkeypatch.setattr(retry_module, "RETRY_FIRST_S", 0.01)
    real_process, real_probe = runtime.pipeline.process, runtime.pipeline.probe
    broken = [True]
    probes: list[bool] = []

    def process(batch):
        if broken[0]:
            raise DataError("INSERT", {}, Exception("something the database says about every row"))
        return real_process(batch)

    def probe():
        probes.append(broken[0])
        if len(probes) >= 3:
            broken[0] = False  # the database recovers
        if broken[0]:
            raise DataError("DELETE", {}, Exception("same"))
        real_probe()

    monkeypatch.setattr(runtime.pipeline, "process", process)
    monkeypatch.setattr(runtime.pipeline, "probe", probe)
    result, _ = _handle(runtime, [_message(i, f"GH{i}") for i in range(4)])
    assert not result.dead_letters
    assert sum(result.processed.values()) == 4
    assert probes[:2] == [True, True]


def test_serialization_failures_are_never_blamed_on_the_data(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Orig(Exception):
        sqlstate = "40001"

    monkeypatch.setattr(retry_module, "CONFLICT_RETRY_S", 0.011)
    monkeypatch.setattr(retry_module, "RETRY_FIRST_S", 0.01)
    monkeypatch.setattr(retry_module, "MAX_QUICK_RACES", 2)
    real = runtime.pipeline.process
    calls = [0]

    def contended(batch):
        calls[0] += 1
        if calls[0] <= 6:
            raise OperationalError("UPDATE", {}, Orig())
        return real(batch)

    monkeypatch.setattr(runtime.pipeline, "process", contended)
    result, _ = _handle(runtime, [_message(i, f"GH{i}") for i in range(3)])
    assert not result.dead_letters and sum(result.processed.values()) == 3
