"""The topic catalogue and the JSON Schemas derived from it."""

from __future__ import annotations

import json
import typing
from datetime import UTC, datetime

import pytest
from jsonschema import Draft202012Validator

from bridge.core.records import CreditRecord, OutputTopicName, Source, record_id_for
from topics import catalogue, schemas
from topics.catalogue import (
    CREDIT_RECORDS,
    DEADLETTER,
    INPUT_TOPICS,
    LEARNER_IDENTITIES,
    OUTPUT_TOPICS,
    REVIEW,
    TOPICS,
)

CONTRACT_INPUTS = {"union.training.events.v1", "ou.lifelong.events.v1", "vocational.learning.events.v1"}
CONTRACT_OUTPUTS = {
    "credit.records.v1": "compact",
    "learner.identities.v1": "compact",
    "bridge.review.v1": "delete",
    "bridge.deadletter.v1": "delete",
}


def test_topic_names_are_the_contracts():
    assert {t.name for t in catalogue.PLATFORM_TOPICS} == CONTRACT_INPUTS
    # Beyond the contract, the bridge consumes only its own operators' decisions.
    assert {t.name for t in INPUT_TOPICS} - CONTRACT_INPUTS == {catalogue.DECISIONS.name}
    assert {t.name: t.cleanup_policy for t in OUTPUT_TOPICS} == CONTRACT_OUTPUTS
    assert len({t.name for t in TOPICS}) == len(TOPICS) == len(INPUT_TOPICS) + len(OUTPUT_TOPICS)


def test_output_names_match_the_records_module():
    assert set(typing.get_args(OutputTopicName)) == {t.name for t in OUTPUT_TOPICS}


def test_by_name_finds_every_topic_and_names_the_known_ones_otherwise():
    for spec in TOPICS:
        assert catalogue.by_name(spec.name) is spec
    with pytest.raises(KeyError, match="credit.records.v1"):
        catalogue.by_name("credit.records.v2")


def test_only_output_topics_and_decisions_have_value_models():
    assert all(t.value_model is None for t in INPUT_TOPICS if t.name != "bridge.decisions.v1")
    assert all(t.value_model is not None for t in OUTPUT_TOPICS)


def test_state_topics_are_compacted_and_event_topics_kept_long():
    assert CREDIT_RECORDS.kafka_configs() == {"cleanup.policy": "compact"}
    assert LEARNER_IDENTITIES.kafka_configs() == {"cleanup.policy": "compact"}
    day_ms = 24 * 60 * 60 * 1000
    assert DEADLETTER.kafka_configs() == {"cleanup.policy": "delete", "retention.ms": str(30 * day_ms)}
    assert REVIEW.kafka_configs() == {"cleanup.policy": "delete", "retention.ms": str(90 * day_ms)}


def test_partitions_default_to_the_settings():
    assert all(t.partitions_or(7) == 7 for t in TOPICS if t.partitions is None)


def test_every_output_topic_has_a_committed_schema_file():
    for spec in OUTPUT_TOPICS:
        assert (schemas.SCHEMA_DIR / f"{spec.name}.schema.json").is_file(), spec.name


def test_committed_schemas_match_the_models():
    problems = schemas.drift()
    assert not problems, (
        "topics/schemas/ is out of date with the models: "
        + "; ".join(problems)
        + ". Run `python -m topics.schemas` and commit the result."
    )


@pytest.mark.parametrize("spec", OUTPUT_TOPICS, ids=lambda s: s.name)
def test_schema_is_valid_and_names_topic_key_and_policy(spec):
    schema = json.loads(schemas.render_schemas()[f"{spec.name}.schema.json"])
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(spec.name)
    assert schema["x-kafka-topic"] == spec.name
    assert schema["x-kafka-key"] == spec.key
    assert schema["x-cleanup-policy"] == spec.cleanup_policy
    assert spec.name in schema["description"] and spec.cleanup_policy in schema["description"]


def test_credit_record_schema_accepts_a_record_and_extra_fields_and_mentions_tombstones():
    schema = schemas.build_schema(CREDIT_RECORDS)
    record = CreditRecord(
        record_id=record_id_for("lrn_1", "course-1"),
        learner_id="lrn_1",
        course_key="course-1",
        status="AWARDED",
        credits=1.5,
        hours=24,
        score=None,
        enrolled_at=None,
        completed_at=datetime(2024, 4, 26, 1, 30, tzinfo=UTC),
        sources=[Source(platform="union", account="GH2101000123", event_id="u-1")],
        version=1,
        rule="hours/16",
    )
    value = record.model_dump(mode="json")
    validator = Draft202012Validator(schema)
    validator.validate(value)
    # CONTRACT §2: extra fields are allowed, so consumers must not reject them.
    validator.validate(value | {"added_later": True})
    validator.validate(value | {"sources": [dict(value["sources"][0], added_later=1)]})
    assert not validator.is_valid({k: v for k, v in value.items() if k != "rule"})
    assert "null" in schema["description"] and "tombstone" in schema["description"]


def test_write_schemas_writes_what_render_gives(tmp_path):
    written = schemas.write_schemas(tmp_path)
    rendered = schemas.render_schemas()
    assert sorted(p.name for p in written) == sorted(rendered)
    assert all(p.read_text(encoding="utf-8") == rendered[p.name] for p in written)
    assert all(text.endswith("}\n") for text in rendered.values())
    assert schemas.drift(tmp_path) == []


def test_check_mode_reports_a_stale_file(tmp_path, capsys):
    schemas.write_schemas(tmp_path)
    (tmp_path / "bridge.review.v1.schema.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "old.topic.v0.schema.json").write_text("{}\n", encoding="utf-8")
    assert schemas.main(["--check", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "bridge.review.v1.schema.json: differs" in err
    assert "old.topic.v0.schema.json" in err
    assert "python -m topics.schemas" in err
