"""The scale loader: its rows are what the pipeline would have written, on every backend.

The strongest check is the pipeline itself: after a load, the registry's own refresh functions
find nothing to change, and events of preloaded learners (and of new accounts carrying their
identity) resolve to the preloaded learners.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, inspect, select

import adapters
from bench import loader, synthetic
from bench.workload import history_messages, ou_message, preloaded_learner_events, union_message
from bridge.core.courses import parse_equivalences
from bridge.core.credits import derive_record
from bridge.core.events import EventKind, Platform
from bridge.core.identity import AccountKey
from bridge.core.pseudonym import Pseudonymiser
from bridge.pipeline import Inbound, Pipeline
from bridge.tools.simulate import EQUIVALENCES
from tests.factories import OU as OU_TOPIC
from tests.factories import UNION as UNION_TOPIC
from bridge.store import schema as t
from bridge.store.engine import build_engine, upgrade
from bridge.store.uow import reading, writing
from tests.factories import encode, ou_event, union_event

KEY = Pseudonymiser.from_secret("bench-loader-suite-key-0123456789abcdef")
COURSE_KEYS = parse_equivalences("course_key,platform,course_id\n" + "\n".join(",".join(row) for row in EQUIVALENCES))
LEARNERS = 60


ROTATING = Pseudonymiser.from_secret("bench-new-key-0123456789abcdef0123", previous=(
    "bench-loader-suite-key-0123456789abcdef",))


def load(engine: Engine, learners: int = LEARNERS, key: Pseudonymiser = KEY, **options) -> loader.LoadReport:
    return loader.load(engine, learners, pseudonymiser=key, course_keys=COURSE_KEYS, hours_per_credit=16.0, **options)


def process(engine: Engine, *messages: tuple[str, str, bytes], key: Pseudonymiser = KEY) -> None:
    batch = [Inbound(topic, 0, offset, k.encode(), value) for offset, (topic, k, value) in enumerate(messages)]
    result = Pipeline(writing(engine, serializable=True), adapters.parsers(), key, COURSE_KEYS, 16.0).process(batch)
    assert not result.dead_letters


def count(engine: Engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def expected_rows(learners: int) -> dict[str, int]:
    rows = loader.Rows()
    course_keys = COURSE_KEYS
    for index in range(learners):
        loader.learner_rows(synthetic.synthetic_learner(index), KEY, course_keys, 16.0, rows)
    return {name: len(batch) for name, batch in rows.by_table.items()}


# -- who the synthetic learners are -----------------------------------------------------------


def test_synthetic_learners_are_deterministic_valid_and_distinct() -> None:
    learners = [synthetic.synthetic_learner(i) for i in range(500)]
    assert learners == [synthetic.synthetic_learner(i) for i in range(500)]
    assert len({l.resident_id for l in learners}) == 500
    assert len({l.mobile for l in learners}) == 500
    assert all(l.union_no or l.ou_no for l in learners)
    both = sum(1 for l in learners if l.union_no and l.ou_no)
    assert 0.3 < both / 500 < 0.5  # the simulator's overlap of 0.4
    for learner in learners:
        event = synthetic.history(learner)[0]
        # The resident ID is valid: it survives the adapters' normalisation as a document.
        assert event.person.document is not None
        # The first event is the anchoring account's, so the history needed no merge.
        assert (event.platform, event.account) == (learner.accounts[0].platform, learner.accounts[0].account)


def test_learner_index_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError):
        synthetic.synthetic_learner(synthetic.MAX_LEARNERS)


# -- the load ---------------------------------------------------------------------------------


def test_load_writes_the_expected_rows(engine: Engine) -> None:
    report = load(engine)
    expected = expected_rows(LEARNERS)
    assert report.learners == LEARNERS
    assert report.rows == expected
    assert expected["learners"] == LEARNERS
    counts = loader.table_counts(engine)
    assert {name: counts[name] for name in expected} == expected
    assert counts["outbox"] == 0


def test_chunked_load_in_worker_processes_restores_the_indexes(engine: Engine) -> None:
    def indexes() -> dict[str, list]:
        found = {}
        for table, _ in loader.TABLES:
            found[table.name] = sorted(
                (i["name"], tuple(i["column_names"])) for i in inspect(engine).get_indexes(table.name)
            )
        return found

    before = indexes()
    seen = []
    report = load(engine, 45, chunk=20, workers=1, progress=lambda done, total, s: seen.append((done, total)))
    assert report.rows == expected_rows(45)
    assert seen[:3] == [(20, 45), (40, 45), (45, 45)]
    assert indexes() == before


def test_preloaded_state_is_what_the_registry_would_publish(engine: Engine) -> None:
    load(engine)
    with writing(engine)() as uow:
        learners = uow.conn.execute(select(t.learners.c.learner_id)).scalars().all()
        for learner_id in learners:
            assert uow.learners.refresh_identity(learner_id) is False, learner_id
        records = uow.conn.execute(select(t.credit_records.c.learner_id, t.credit_records.c.course_key)).all()
        for learner_id, course_key in records:
            facts = uow.ledger.facts_for(learner_id, course_key)
            assert facts
            assert uow.ledger.save_record(derive_record(learner_id, course_key, facts, 16.0)) is False
    assert count(engine, t.outbox) == 0


def test_event_of_a_preloaded_account_belongs_to_the_preloaded_learner(engine: Engine) -> None:
    load(engine)
    learner = next(synthetic.synthetic_learner(i) for i in range(LEARNERS) if synthetic.synthetic_learner(i).union_no)
    course = next(c for c in learner.courses if c.platform == "union")
    state = select(t.learners.c.state).where(t.learners.c.learner_id == learner.learner_id)
    with engine.connect() as conn:
        before = conn.execute(state).scalar_one()
    msg = union_message(learner, course, event_id="u-new-1", kind=EventKind.COMPLETED,
                        at=datetime(2024, 5, 2, tzinfo=UTC), passed=True, score=99.0)
    process(engine, (msg.topic, msg.key.decode(), msg.value))

    assert count(engine, t.learners) == LEARNERS
    with reading(engine)() as uow:
        assert uow.identity.learner_of(AccountKey("union", learner.union_no)) == learner.learner_id
        facts = uow.ledger.facts_for(learner.learner_id, COURSE_KEYS.key_for("union", course.course_id))
        assert "u-new-1" in {f.event_id for f in facts}
        # The learner's accounts and links are as loaded: the event only added to its record.
        assert uow.conn.execute(state).scalar_one() == before
        assert "credit.records.v1" in uow.conn.execute(select(t.outbox.c.topic)).scalars().all()


@pytest.mark.parametrize("key", [KEY, ROTATING], ids=["one key", "key rotation"])
def test_loaded_rows_equal_what_the_pipeline_writes_for_the_same_history(
    engine: Engine, tmp_path, key: Pseudonymiser
) -> None:
    """The strongest check: the same histories through the real pipeline, one event per batch."""
    learners = [synthetic.synthetic_learner(i) for i in range(12)]
    assert {len(l.accounts) for l in learners} == {1, 2}
    load(engine, len(learners), key=key)
    replayed = build_engine(f"sqlite:///{tmp_path / 'replayed.db'}")
    upgrade(replayed)
    try:
        for learner in learners:
            for msg in history_messages(learner):
                process(replayed, (msg.topic, msg.key.decode(), msg.value), key=key)
        assert table_rows(engine) == table_rows(replayed)
    finally:
        replayed.dispose()


def table_rows(engine: Engine) -> dict[str, list[tuple]]:
    """Every loaded table's rows, without where the facts were read (synthetic in the loader)."""
    skip = {"topic", "partition", "offset"}
    found = {}
    with engine.connect() as conn:
        for table in [*(table for table, _ in loader.TABLES), t.shared_evidence]:
            columns = [c for c in table.c if c.name not in skip]
            rows = conn.execute(select(*columns).order_by(*table.primary_key.columns)).all()
            found[table.name] = [tuple(_utc(v) for v in row) for row in rows]
    return found


def _utc(value):
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return value


def test_new_accounts_link_to_preloaded_learners_by_document_and_by_name_and_mobile(engine: Engine) -> None:
    load(engine)
    by_doc = synthetic.synthetic_learner(3)
    by_name = synthetic.synthetic_learner(4)
    when = datetime(2024, 5, 2, 9, 0, tzinfo=UTC)
    process(
        engine,
        # A new open-university account with the resident ID of learner 3 ...
        (OU_TOPIC, "S-NEW-1", encode(ou_event("o-new-1", student_no="S-NEW-1", when=when,
                                              document=("RESIDENT_ID", by_doc.resident_id), name=None, phone=None))),
        # ... and a new union account with no document, the name and mobile of learner 4.
        (UNION_TOPIC, "GH-NEW-2", encode(union_event("u-new-2", member_no="GH-NEW-2", when=when, id_card=None,
                                                     name=by_name.name, mobile=by_name.mobile))),
    )
    with reading(engine)() as uow:
        assert uow.identity.learner_of(AccountKey("ou", "S-NEW-1")) == by_doc.learner_id
        assert uow.identity.learner_of(AccountKey("union", "GH-NEW-2")) == by_name.learner_id
    assert count(engine, t.learners) == LEARNERS


def test_workload_events_of_preloaded_learners_parse_and_process(engine: Engine) -> None:
    load(engine)
    messages = preloaded_learner_events(40, LEARNERS, seed=3)
    assert len(messages) == 40
    process(engine, *((m.topic, m.key.decode(), m.value) for m in messages))
    assert count(engine, t.learners) == LEARNERS
    assert count(engine, t.credit_facts) == expected_rows(LEARNERS)["credit_facts"] + 40


def test_messages_for_learners_on_the_other_platform_are_refused() -> None:
    learner = next(synthetic.synthetic_learner(i) for i in range(100) if not synthetic.synthetic_learner(i).ou_no)
    with pytest.raises(AssertionError):
        ou_message(learner, learner.courses[0], event_id="x", kind=EventKind.ENROLLED, at=datetime(2024, 5, 1, tzinfo=UTC))


def test_during_a_key_rotation_evidence_is_loaded_under_every_key(engine: Engine) -> None:
    load(engine, 5, key=ROTATING)
    with engine.connect() as conn:
        keys = conn.execute(select(t.evidence.c.key_id).distinct()).scalars().all()
    assert sorted(keys) == sorted(k.key_id for k in ROTATING.keys())
