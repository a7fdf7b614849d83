"""The AsyncAPI 3.0 document of the output topics, generated from the catalogue and its models.

``topics/asyncapi.json`` is what a downstream team (or its tooling: code generators, AsyncAPI
Studio, contract tests) reads beside the JSON Schemas in ``topics/schemas/``. It describes the
bridge as the application: the bridge *sends* to every channel, subscribers receive. The payload
schemas are the very schemas of :mod:`topics.schemas`, moved under ``components/schemas`` so the
document stands alone. It is committed, and a unit test fails when it drifts from the catalogue
and the models. Regenerate it with ``python -m topics.asyncapi`` (``--check`` only reports drift).

JSON, not YAML: JSON is valid AsyncAPI, and it needs no YAML library.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from topics.catalogue import OUTPUT_TOPICS, TopicSpec
from topics.schemas import build_schema, generator_main, schema_filename

ASYNCAPI_VERSION = "3.0.0"
#: Version of the published contract (the ``.v1`` topics). Raise the minor version when a field is
#: added; a breaking change gets new topic names (``.v2``) rather than a new major version here.
DOCUMENT_VERSION = "1.0.0"
#: The AsyncAPI Kafka bindings version whose fields (``topicConfiguration``, message ``key``) we use.
KAFKA_BINDING_VERSION = "0.5.0"
DOCUMENT_PATH = Path(__file__).with_name("asyncapi.json")

_DEFS_PREFIX = "#/$defs/"
_COMPONENT_PREFIX = "#/components/schemas/"

_DESCRIPTION = """\
The topics the credit bridge publishes: unified learners and credit records joined from the
trade-union training platform and the open university's lifelong-education platform, plus the
review and dead-letter topics its operators work from.

Keys are plain UTF-8 strings and values plain UTF-8 JSON objects. Fields may be added to a value
at any time: ignore the ones you do not know. No value carries a resident ID number, a phone
number or a name, in any form.

On the compacted topics each key's latest value is its current state. Every value carries a
`version` that rises by one per change of that key: keep the highest you have seen and ignore
lower ones. Delivery is at least once (the same version may arrive twice) and ordered per key.
The subscriber guide is `docs/subscribers.md`; the value schemas are also published one file per
topic in `topics/schemas/`."""

# What a null value means, per compacted topic; other compacted topics get the generic sentence.
_TOMBSTONE_MEANING = {
    "credit.records.v1": (
        "A null value retires the record id: delete the record from your view. It happens when the "
        "record's learner is merged into another learner; the credits then reappear under the "
        "survivor's record id (a new key, `record_id` derived from the survivor's `learner_id`)."
    ),
    "learner.identities.v1": (
        "A merged learner is not deleted: it keeps a value whose `merged_into` names the survivor. "
        "A consumer must still accept a null value and treat it as deleting the key."
    ),
}
_GENERIC_TOMBSTONE = "A null value deletes the key: remove it from your view."


def build_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every output topic, as a JSON-ready dict."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for spec in OUTPUT_TOPICS:
        channel_id = _channel_id(spec)
        value_name = _add_value_schema(spec, schemas)
        channel_messages = {}
        value_message_id = _lower_first(value_name)
        messages[value_message_id] = _value_message(spec, value_name)
        channel_messages[value_message_id] = {"$ref": f"#/components/messages/{value_message_id}"}
        if spec.cleanup_policy == "compact":
            tombstone_id = f"{value_message_id}Tombstone"
            messages[tombstone_id] = _tombstone_message(spec, value_name)
            channel_messages[tombstone_id] = {"$ref": f"#/components/messages/{tombstone_id}"}
        channels[channel_id] = {
            "address": spec.name,
            "title": spec.name,
            "description": spec.description,
            "messages": channel_messages,
            "bindings": {"kafka": _channel_binding(spec)},
        }
        operations[f"send{channel_id[0].upper()}{channel_id[1:]}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "title": f"The bridge publishes to {spec.name}",
            "summary": _operation_summary(spec),
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{m}"} for m in channel_messages],
        }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Credit bridge: published topics",
            "version": DOCUMENT_VERSION,
            "description": _DESCRIPTION,
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def render_document() -> str:
    """The document in its committed format."""
    return json.dumps(build_document(), indent=2, ensure_ascii=False) + "\n"


def write_document(path: Path | str = DOCUMENT_PATH) -> Path:
    """Write the document to ``path``; return the path."""
    target = Path(path)
    target.write_text(render_document(), encoding="utf-8")
    return target


def drift(path: Path | str = DOCUMENT_PATH) -> list[str]:
    """What is wrong with the committed document at ``path``: missing or stale (empty: nothing)."""
    target = Path(path)
    if not target.is_file():
        return [f"{target.name}: missing"]
    if target.read_text(encoding="utf-8") != render_document():
        return [f"{target.name}: differs from the catalogue and the models"]
    return []


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: regenerate the document, or with ``--check`` report drift (exit 1)."""
    return generator_main(
        argv,
        prog="topics.asyncapi",
        description=__doc__,
        default=DOCUMENT_PATH,
        drift=drift,
        write=lambda path: [write_document(path)],
    )


def _channel_id(spec: TopicSpec) -> str:
    """``credit.records.v1`` -> ``creditRecordsV1`` (AsyncAPI ids allow no dots)."""
    first, *rest = spec.name.replace("-", ".").replace("_", ".").split(".")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def _add_value_schema(spec: TopicSpec, schemas: dict[str, Any]) -> str:
    """Move ``spec``'s value schema (and its ``$defs``) into ``schemas``; return its name."""
    schema = build_schema(spec)
    # ``$id`` would change the base URI that the rewritten references resolve against, and the
    # dialect is the document's; the topic, key and policy are in the channel already.
    for key in ("$schema", "$id"):
        schema.pop(key, None)
    schema["x-schema-file"] = f"topics/schemas/{schema_filename(spec)}"
    definitions = schema.pop("$defs", {})
    name = schema["title"]
    for def_name, definition in {**definitions, name: schema}.items():
        definition = _rewrite_refs(definition)
        if def_name in schemas and schemas[def_name] != definition:
            raise ValueError(
                f"two output models define different schemas named {def_name!r}; rename one of them"
            )
        schemas[def_name] = definition
    return name


def _rewrite_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: (
                _COMPONENT_PREFIX + value[len(_DEFS_PREFIX):]
                if key == "$ref" and isinstance(value, str) and value.startswith(_DEFS_PREFIX)
                else _rewrite_refs(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(item) for item in node]
    return node


def _key_binding(spec: TopicSpec) -> dict[str, Any]:
    return {
        "key": {"type": "string", "description": f"The message key: {spec.key}."},
        "bindingVersion": KAFKA_BINDING_VERSION,
    }


def _value_message(spec: TopicSpec, value_name: str) -> dict[str, Any]:
    return {
        "name": value_name,
        "title": value_name,
        "summary": f"The value of a message on {spec.name}.",
        "contentType": "application/json",
        "payload": {"$ref": f"{_COMPONENT_PREFIX}{value_name}"},
        "bindings": {"kafka": _key_binding(spec)},
    }


def _tombstone_message(spec: TopicSpec, value_name: str) -> dict[str, Any]:
    return {
        "name": f"{value_name}Tombstone",
        "title": "Tombstone",
        "summary": f"A message on {spec.name} whose value is null (a Kafka tombstone).",
        "description": _TOMBSTONE_MEANING.get(spec.name, _GENERIC_TOMBSTONE)
        + " Compaction removes the key, and the tombstone itself after the topic's "
        "`delete.retention.ms`: a consumer that starts from the beginning later may never see it.",
        "payload": {"type": "null"},
        "bindings": {"kafka": _key_binding(spec)},
    }


def _channel_binding(spec: TopicSpec) -> dict[str, Any]:
    topic_configuration: dict[str, Any] = {"cleanup.policy": [spec.cleanup_policy]}
    if spec.retention_ms is not None:
        topic_configuration["retention.ms"] = spec.retention_ms
    binding: dict[str, Any] = {"topic": spec.name}
    if spec.partitions is not None:
        binding["partitions"] = spec.partitions
    binding["topicConfiguration"] = topic_configuration
    binding["bindingVersion"] = KAFKA_BINDING_VERSION
    return binding


def _operation_summary(spec: TopicSpec) -> str:
    if spec.cleanup_policy == "compact":
        return (
            f"Compacted: the latest value per key ({spec.key}) is the current state; "
            "a null value deletes the key."
        )
    return f"An event stream keyed by {spec.key}; each message is one event, kept for its retention."


if __name__ == "__main__":
    sys.exit(main())
