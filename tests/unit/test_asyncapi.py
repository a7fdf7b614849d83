"""The AsyncAPI document of the output topics: committed, current, and structurally AsyncAPI 3.0."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from jsonschema import Draft7Validator, Draft202012Validator

from bridge.core.records import CreditRecord, LearnerIdentity, Source, record_id_for
from topics import asyncapi
from topics.catalogue import CREDIT_RECORDS, LEARNER_IDENTITIES, OUTPUT_TOPICS

# The structural requirements of AsyncAPI 3.0.0 that a document of ours must meet: the fixed
# fields the specification marks REQUIRED (asyncapi, info.title, info.version, channel and
# operation shapes, operation.action/channel) plus channels and operations, which our document
# must have. Schema and binding contents are checked separately below.
_REF = {"type": "object", "required": ["$ref"], "properties": {"$ref": {"type": "string", "pattern": "^#/"}}}
ASYNCAPI_3_STRUCTURE: dict[str, Any] = {
    "type": "object",
    "required": ["asyncapi", "info", "channels", "operations"],
    "properties": {
        "asyncapi": {"type": "string", "pattern": r"^3\.0\.\d+$"},
        "id": {"type": "string", "format": "uri"},
        "info": {
            "type": "object",
            "required": ["title", "version"],
            "properties": {
                "title": {"type": "string", "minLength": 1},
                "version": {"type": "string", "minLength": 1},
                "description": {"type": "string"},
            },
        },
        "defaultContentType": {"type": "string"},
        "channels": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": r"^[A-Za-z0-9_\-]+$"},
            "additionalProperties": {
                "type": "object",
                "required": ["address", "messages"],
                "properties": {
                    "address": {"type": ["string", "null"]},
                    "messages": {"type": "object", "minProperties": 1, "additionalProperties": _REF},
                    "bindings": {"type": "object"},
                },
            },
        },
        "operations": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": r"^[A-Za-z0-9_\-]+$"},
            "additionalProperties": {
                "type": "object",
                "required": ["action", "channel"],
                "properties": {
                    "action": {"enum": ["send", "receive"]},
                    "channel": _REF,
                    "messages": {"type": "array", "items": _REF},
                },
            },
        },
        "components": {
            "type": "object",
            "properties": {
                "schemas": {"type": "object", "propertyNames": {"pattern": r"^[A-Za-z0-9.\-_]+$"}},
                "messages": {
                    "type": "object",
                    "propertyNames": {"pattern": r"^[A-Za-z0-9.\-_]+$"},
                    "additionalProperties": {
                        "type": "object",
                        "required": ["payload"],
                        "properties": {"payload": {"type": "object"}, "bindings": {"type": "object"}},
                    },
                },
            },
        },
    },
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return json.loads(asyncapi.render_document())


def _resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def test_committed_document_matches_the_catalogue_and_models():
    problems = asyncapi.drift()
    assert not problems, (
        "topics/asyncapi.json is out of date: "
        + "; ".join(problems)
        + ". Run `python -m topics.asyncapi` (or `make schemas`) and commit the result."
    )


def test_document_has_the_structure_asyncapi_3_requires(document):
    Draft202012Validator(ASYNCAPI_3_STRUCTURE).validate(document)
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] and document["info"]["version"]


def test_every_reference_resolves_inside_the_document(document):
    refs = _refs(document)
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), f"{ref} points outside the document"
        _resolve(document, ref)  # raises KeyError when dangling


def test_operations_send_the_messages_of_their_own_channel(document):
    for name, operation in document["operations"].items():
        assert operation["action"] == "send", "the document describes the bridge, which sends"
        channel_ref = operation["channel"]["$ref"]
        assert channel_ref.startswith("#/channels/")
        # AsyncAPI 3.0: an operation's messages MUST be a subset of its channel's messages.
        for message in operation["messages"]:
            assert message["$ref"].startswith(channel_ref + "/messages/"), name


def test_one_channel_per_output_topic_with_its_kafka_binding(document):
    channels = {c["address"]: c for c in document["channels"].values()}
    assert set(channels) == {spec.name for spec in OUTPUT_TOPICS}
    for spec in OUTPUT_TOPICS:
        binding = channels[spec.name]["bindings"]["kafka"]
        assert binding["topic"] == spec.name
        assert binding["topicConfiguration"]["cleanup.policy"] == [spec.cleanup_policy]
        assert binding["topicConfiguration"].get("retention.ms") == spec.retention_ms
        assert binding["bindingVersion"] == asyncapi.KAFKA_BINDING_VERSION
    assert len(document["operations"]) == len(OUTPUT_TOPICS)


def test_every_message_has_a_string_key_and_a_payload(document):
    for channel in document["channels"].values():
        for ref in channel["messages"].values():
            message = _resolve(document, ref["$ref"])
            assert message["bindings"]["kafka"]["key"]["type"] == "string"
            assert "payload" in message


def test_compacted_topics_describe_tombstones(document):
    for channel in document["channels"].values():
        spec = next(s for s in OUTPUT_TOPICS if s.name == channel["address"])
        messages = [_resolve(document, ref["$ref"]) for ref in channel["messages"].values()]
        tombstones = [m for m in messages if m["payload"] == {"type": "null"}]
        if spec.cleanup_policy == "compact":
            assert len(tombstones) == 1, spec.name
            assert "null" in tombstones[0]["summary"] and tombstones[0]["description"]
        else:
            assert not tombstones, spec.name
    credit_tombstone = document["components"]["messages"]["creditRecordTombstone"]
    assert "merged" in credit_tombstone["description"] and "survivor" in credit_tombstone["description"]


def test_payload_schemas_are_valid_and_reuse_the_published_schemas(document):
    schemas = document["components"]["schemas"]
    for name, schema in schemas.items():
        Draft7Validator.check_schema(schema)
        Draft202012Validator.check_schema(schema)
        assert "$id" not in schema, f"{name}: an $id would break the document's references"
    for spec in OUTPUT_TOPICS:
        title = spec.value_model.__name__
        assert schemas[title]["x-kafka-topic"] == spec.name
        assert schemas[title]["x-schema-file"] == f"topics/schemas/{spec.name}.schema.json"


def _validator(document: dict[str, Any], ref: str) -> Draft202012Validator:
    # References inside the payload schemas resolve against the document root.
    return Draft202012Validator({"$ref": ref, "components": document["components"]})


def test_payloads_accept_published_values_and_tombstones_accept_only_null(document):
    record = CreditRecord(
        record_id=record_id_for("lrn_1", "union:C-1"),
        learner_id="lrn_1",
        course_key="union:C-1",
        status="AWARDED",
        credits=1.5,
        hours=24,
        score=86.5,
        enrolled_at=None,
        completed_at=datetime(2024, 4, 26, 1, 30, tzinfo=UTC),
        sources=[Source(platform="union", account="GH1", event_id="u-1")],
        version=2,
        rule="hours/16",
    ).model_dump(mode="json")
    learner = LearnerIdentity(
        learner_id="lrn_1", accounts=[], links=[], merged_into="lrn_2", version=3
    ).model_dump(mode="json")
    messages = document["components"]["messages"]
    for value, message_id in ((record, "creditRecord"), (learner, "learnerIdentity")):
        payload = _validator(document, messages[message_id]["payload"]["$ref"])
        payload.validate(value)
        payload.validate(value | {"added_later": 1})  # CONTRACT §2: extra fields are allowed
        assert not payload.is_valid(None)
        tombstone = Draft202012Validator(messages[f"{message_id}Tombstone"]["payload"])
        assert tombstone.is_valid(None) and not tombstone.is_valid(value)
    assert not _validator(document, messages["creditRecord"]["payload"]["$ref"]).is_valid(
        {k: v for k, v in record.items() if k != "version"}
    )


def test_channel_ids_are_derived_from_topic_names(document):
    ids = {c["address"]: cid for cid, c in document["channels"].items()}
    assert ids[CREDIT_RECORDS.name] == "creditRecordsV1"
    assert ids[LEARNER_IDENTITIES.name] == "learnerIdentitiesV1"


def test_check_mode_reports_a_stale_or_missing_document_and_regeneration_fixes_it(tmp_path, capsys):
    path = tmp_path / "asyncapi.json"
    assert asyncapi.main(["--check", str(path)]) == 1
    assert "missing" in capsys.readouterr().err
    path.write_text("{}\n", encoding="utf-8")
    assert asyncapi.main(["--check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "differs" in err and "python -m topics.asyncapi" in err
    assert path.read_text(encoding="utf-8") == "{}\n", "--check must write nothing"
    assert asyncapi.main([str(path)]) == 0
    assert asyncapi.main(["--check", str(path)]) == 0
    assert path.read_text(encoding="utf-8") == asyncapi.render_document()
