"""docs/operations.md's reference tables are generated from the code: they cannot drift.

The configuration reference comes from the Settings model, the metrics reference from
``bridge.metrics.Metrics``. After changing either, regenerate the tables with
``python -m tests.ops.test_operations_doc``.
"""

from __future__ import annotations

import re
import sys
import types
import typing
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from bridge.metrics import Metrics
from bridge.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
SETTINGS = ("<!-- settings-table:start -->", "<!-- settings-table:end -->")
METRICS = ("<!-- metrics-table:start -->", "<!-- metrics-table:end -->")

#: Meanings of settings whose field has no ``description`` yet. Only for those: a test fails
#: when an entry here shadows a description (then delete the entry).
FALLBACK_MEANINGS: dict[str, str] = {}


def _type(annotation: object) -> str:
    optional = False
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        annotation = args[0] if len(args) == 1 else annotation
    if typing.get_origin(annotation) is typing.Literal:
        text = " \\| ".join(f"`{v}`" for v in typing.get_args(annotation))
    elif annotation is SecretStr:
        text = "secret"
    elif annotation is Path:
        text = "path"
    else:
        text = {str: "string", int: "integer", float: "number", bool: "boolean"}.get(annotation, str(annotation))
    return text + (" (optional)" if optional else "")


def _default(name: str, field: FieldInfo) -> str:
    if isinstance(field.default, SecretStr):
        return "a development key (refused by `production`)"
    if field.default is None:
        return "unset"
    return f"`{field.default}`"


def _meaning(name: str, field: FieldInfo) -> str:
    return (field.description or FALLBACK_MEANINGS[name]).replace("|", "\\|").replace("\n", " ")


def render_settings_table() -> str:
    """The Markdown table of every setting: environment variable, type, default, meaning."""
    prefix = Settings.model_config["env_prefix"]
    lines = ["| variable | type | default | meaning |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        lines.append(
            f"| `{prefix}{name.upper()}` | {_type(field.annotation)} | {_default(name, field)} | {_meaning(name, field)} |"
        )
    return "\n".join(lines)


def render_metrics_table() -> str:
    """The Markdown table of every metric ``Metrics`` exports: name, type, labels, meaning."""
    lines = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    metrics = Metrics(CollectorRegistry())
    for metric in vars(metrics).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        kind = metric._type  # noqa: SLF001 - prometheus_client keeps these two private
        labels = ", ".join(f"`{name}`" for name in metric._labelnames)  # noqa: SLF001
        name = metric._name + ("_total" if kind == "counter" else "")  # noqa: SLF001
        lines.append(f"| `{name}` | {kind} | {labels or '-'} | {metric._documentation} |")  # noqa: SLF001
    return "\n".join(lines)


def _documented(text: str, markers: tuple[str, str]) -> str:
    start, end = markers
    match = re.search(re.escape(start) + r"\n(.*?)\n" + re.escape(end), text, re.S)
    assert match, f"{DOC} lacks the {start} ... {end} markers"
    return match.group(1)


def test_configuration_reference_matches_the_settings_model() -> None:
    documented = _documented(DOC.read_text(encoding="utf-8"), SETTINGS)
    assert documented == render_settings_table(), (
        "docs/operations.md's settings table is stale: run `python -m tests.ops.test_operations_doc`"
    )


def test_metrics_reference_matches_the_metrics_object() -> None:
    documented = _documented(DOC.read_text(encoding="utf-8"), METRICS)
    assert documented == render_metrics_table(), (
        "docs/operations.md's metrics table is stale: run `python -m tests.ops.test_operations_doc`"
    )


def test_every_setting_has_a_meaning_and_fallbacks_shadow_none() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description or name in FALLBACK_MEANINGS, f"setting {name} has no description"
    for name in FALLBACK_MEANINGS:
        assert name in Settings.model_fields, f"FALLBACK_MEANINGS names no setting: {name}"
        assert not Settings.model_fields[name].description, f"{name} has a description now: drop its fallback"


def test_secrets_are_never_rendered() -> None:
    table = render_settings_table()
    assert Settings().pseudonym_key.get_secret_value() not in table


def main() -> int:
    text = DOC.read_text(encoding="utf-8")
    for markers, table in ((SETTINGS, render_settings_table()), (METRICS, render_metrics_table())):
        start, end = markers
        text = text.replace(f"{start}\n{_documented(text, markers)}\n{end}", f"{start}\n{table}\n{end}", 1)
    DOC.write_text(text, encoding="utf-8")
    print(f"updated the settings and metrics tables in {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
