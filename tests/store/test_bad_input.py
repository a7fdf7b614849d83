"""Bad input never escapes the pipeline: fuzzed messages are dead-lettered, good ones processed."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import adapters
from bridge.core.courses import CourseKeys
from bridge.core.pseudonym import Pseudonymiser
from bridge.pipeline import Inbound, Pipeline
from bridge.store.uow import writing
from bridge.store.engine import build_engine
from bridge.store.schema import metadata
from tests.factories import OU, UNION, encode, ou_event, union_event

GOOD = [
    (UNION, encode(union_event("u-good", member_no="GH1"))),
    (OU, encode(ou_event("o-good", "course.completed", student_no="S1"))),
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)


def mutate(value: bytes, data: st.DataObject) -> bytes:
    """A valid message with one field replaced, removed, or the bytes cut or flipped."""
    how = data.draw(st.sampled_from(["replace", "remove", "truncate", "flip"]))
    if how in ("truncate", "flip"):
        cut = data.draw(st.integers(0, len(value)))
        if how == "truncate":
            return value[:cut]
        return value[:cut] + bytes([data.draw(st.integers(0, 255))]) + value[cut + 1 :]
    doc = json.loads(value)
    target = doc
    path = []
    while isinstance(target, dict) and target:
        key = data.draw(st.sampled_from(sorted(target)))
        path.append(key)
        if not isinstance(target[key], dict) or data.draw(st.booleans()):
            break
        target = target[key]
    if how == "remove":
        del target[path[-1]]
    else:
        target[path[-1]] = data.draw(json_values)
    return json.dumps(doc, ensure_ascii=False, allow_nan=True).encode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_batches_never_escape_and_lose_nothing(data) -> None:
    batch = []
    for n in range(data.draw(st.integers(1, 12))):
        topic, good = data.draw(st.sampled_from(GOOD))
        kind = data.draw(st.sampled_from(["random", "mutated", "good"]))
        if kind == "random":
            value = data.draw(st.binary(max_size=200))
        elif kind == "mutated":
            value = mutate(good, data)
        else:
            value = good.replace(b"-good", f"-good-{n}".encode())
        batch.append(Inbound(topic, 0, n, b"k", value))
    with tempfile.TemporaryDirectory() as tmp:
        engine = build_engine(f"sqlite:///{Path(tmp) / 'b.db'}")
        metadata.create_all(engine)
        pipeline = Pipeline(writing(engine, serializable=True), adapters.parsers(), Pseudonymiser.from_secret("k" * 32), CourseKeys(), 16.0)
        result = pipeline.process(batch)
        engine.dispose()
    processed = sum(result.processed.values())
    # Every message is accounted for exactly once: processed, recognised as a duplicate, or dead-lettered.
    assert processed + result.duplicates + len(result.dead_letters) == len(batch)
    for msg, letter in result.dead_letters:
        assert letter.reason and letter.offset == msg.offset and letter.topic == msg.topic
        assert letter.reason_code != "processing_error", letter.reason
