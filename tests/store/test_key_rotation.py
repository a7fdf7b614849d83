"""Rotating the pseudonym key (issue 3): digests carry their key id, and during a rotation the
retiring key still matches what was stored under it."""

from __future__ import annotations

from sqlalchemy import select

import adapters
from bridge.core.courses import CourseKeys
from bridge.core.pseudonym import Pseudonymiser
from bridge.core.records import learner_id_for
from bridge.pipeline import Inbound, Pipeline
from bridge.store.uow import writing
from bridge.store import schema as t
from bridge.store.engine import build_engine, upgrade
from tests.factories import OU, UNION, encode, ou_event, resident_id, union_event

OLD, NEW = "o" * 32, "n" * 32
DOC = resident_id()


def pipeline(engine, key: str, previous: tuple[str, ...] = ()) -> Pipeline:
    return Pipeline(writing(engine, serializable=True), adapters.parsers(), Pseudonymiser.from_secret(key, previous=previous), CourseKeys(), 16.0)


def test_a_rotation_keeps_linking_and_raises_no_conflict(database_url: str) -> None:
    engine = build_engine(database_url)
    upgrade(engine)
    old_id, new_id = Pseudonymiser.from_secret(OLD).key_id, Pseudonymiser.from_secret(NEW).key_id
    assert old_id != new_id

    pipeline(engine, OLD).process([Inbound(OU, 0, 0, b"S1", encode(ou_event("o-1", student_no="S1", document=("RESIDENT_ID", DOC))))])
    # Rotation under way: the new key is current, the old one still matches stored digests.
    rotating = pipeline(engine, NEW, previous=(OLD,))
    result = rotating.process([Inbound(UNION, 0, 0, b"GH1", encode(union_event("u-1", member_no="GH1", id_card=DOC)))])
    assert result.identity.get("resident_id") == 1 and result.reviews == 0
    # The rotation is finished for S1 once it is seen again: its document under both keys is one
    # document, not a contradiction.
    result = rotating.process([Inbound(OU, 0, 1, b"S1", encode(ou_event("o-2", student_no="S1", document=("RESIDENT_ID", DOC))))])
    assert result.reviews == 0

    with engine.connect() as conn:
        owners = dict(conn.execute(select(t.accounts.c.account, t.accounts.c.learner_id)).all())
        keys = set(conn.execute(select(t.evidence.c.account, t.evidence.c.kind, t.evidence.c.key_id)).all())
    assert owners == {"S1": learner_id_for("ou", "S1"), "GH1": learner_id_for("ou", "S1")}
    assert {("S1", "RESIDENT_ID", old_id), ("S1", "RESIDENT_ID", new_id), ("GH1", "RESIDENT_ID", new_id)} <= keys
    engine.dispose()
