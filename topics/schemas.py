"""JSON Schemas of the output topics' values, generated from the catalogue's pydantic models.

The files in ``topics/schemas/`` are what downstream teams read; they are committed, and a unit
test fails when they drift from the models. Regenerate them with ``python -m topics.schemas``
(``--check`` only reports drift, for CI).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from topics.catalogue import CREDIT_RECORDS, TOPICS, TopicSpec

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_DIR = Path(__file__).with_name("schemas")
_DAY_MS = 24 * 60 * 60 * 1000

# Topics whose values can be null (tombstones); JSON Schema describes only the non-null value.
_VALUE_NOTES = {CREDIT_RECORDS.name: "This schema describes the non-null value."}


def schema_filename(spec: TopicSpec) -> str:
    """The file that holds the value schema of ``spec``'s topic."""
    return f"{spec.name}.schema.json"


def schema_id(spec: TopicSpec) -> str:
    """The ``$id`` of the value schema of ``spec``'s topic (a URN: no host serves these)."""
    return f"urn:bridge:schema:{spec.name}"


def build_schema(spec: TopicSpec) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the values of ``spec``'s topic."""
    if spec.value_model is None:
        raise ValueError(f"topic {spec.name} has no value model to describe")
    generated = spec.value_model.model_json_schema(mode="serialization")
    # The models forbid extra fields on the way out, but CONTRACT §2 allows extra fields: a
    # consumer validating against the published schema must accept fields added later.
    _drop_closed_objects(generated)
    # The model's docstring speaks to developers; the topic's description to consumers.
    generated.pop("description", None)
    header = {
        "$schema": DRAFT,
        "$id": schema_id(spec),
        "title": generated.pop("title"),
        "description": _description(spec),
        "x-kafka-topic": spec.name,
        "x-kafka-key": spec.key,
        "x-cleanup-policy": spec.cleanup_policy,
    }
    if spec.retention_ms is not None:
        header["x-retention-ms"] = spec.retention_ms
    return header | generated


def render_schemas() -> dict[str, str]:
    """Every output topic's schema file, as ``{filename: text}`` in the committed format."""
    return {
        schema_filename(spec): json.dumps(build_schema(spec), indent=2, ensure_ascii=False) + "\n"
        for spec in TOPICS
        if spec.value_model is not None
    }


def write_schemas(directory: Path | str = SCHEMA_DIR) -> list[Path]:
    """Write every output topic's schema file into ``directory``; return the paths written."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, text in render_schemas().items():
        path = target / filename
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def drift(directory: Path | str = SCHEMA_DIR) -> list[str]:
    """Schema files in ``directory`` that are missing, stale or no longer generated."""
    target = Path(directory)
    expected = render_schemas()
    problems = []
    for filename, text in expected.items():
        path = target / filename
        if not path.is_file():
            problems.append(f"{filename}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{filename}: differs from the models")
    for path in sorted(target.glob("*.schema.json")):
        if path.name not in expected:
            problems.append(f"{path.name}: no output topic generates it")
    return problems


def generator_main(
    argv: Sequence[str] | None,
    *,
    prog: str,
    description: str | None,
    default: Path,
    drift: Callable[[Path], list[str]],
    write: Callable[[Path], Iterable[Path]],
) -> int:
    """The command line of a file generated from the catalogue: regenerate it, or with ``--check``
    report drift (exit 1)."""
    parser = argparse.ArgumentParser(prog=f"python -m {prog}", description=description)
    parser.add_argument("target", nargs="?", type=Path, default=default)
    parser.add_argument("--check", action="store_true", help="report drift, write nothing")
    args = parser.parse_args(argv)
    if args.check:
        problems = drift(args.target)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(f"run `python -m {prog}` to regenerate", file=sys.stderr)
        return 1 if problems else 0
    for path in write(args.target):
        print(path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: regenerate the schema files, or with ``--check`` report drift (exit 1)."""
    return generator_main(
        argv, prog="topics.schemas", description=__doc__, default=SCHEMA_DIR, drift=drift, write=write_schemas
    )


def _description(spec: TopicSpec) -> str:
    retention = ""
    if spec.retention_ms is not None:
        retention = f", retention {spec.retention_ms // _DAY_MS} days"
    parts = [
        spec.description,
        f"Topic `{spec.name}`. Key: {spec.key}. Cleanup policy: `{spec.cleanup_policy}`{retention}.",
        _VALUE_NOTES.get(spec.name, ""),
    ]
    return "\n\n".join(part for part in parts if part)


def _drop_closed_objects(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("additionalProperties") is False:
            del node["additionalProperties"]
        for child in node.values():
            _drop_closed_objects(child)
    elif isinstance(node, list):
        for child in node:
            _drop_closed_objects(child)


if __name__ == "__main__":
    sys.exit(main())
