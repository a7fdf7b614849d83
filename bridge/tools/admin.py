"""Topic administration: create the catalogue's topics, or check them against a broker (CONTRACT §5).

``bridge topics apply`` calls :func:`apply_topics` and prints :func:`format_report`. Existing
topics are never altered: a partition count or config that differs is reported for an operator
to decide, because adding partitions moves keys and changing a cleanup policy changes what
downstream consumers can rely on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import kafka.errors as kafka_errors
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from bridge.errors import BridgeError, DependencyUnavailable
from bridge.settings import Settings
from bridge.tools.connection import DEFAULT_TIMEOUT_S, failure_cause, open_admin
from topics import catalogue
from topics.catalogue import TopicSpec

class TopicAdminError(DependencyUnavailable):
    """The broker refused to ``operation`` (create, delete) ``topic``; ``error`` is the Kafka error."""

    def __init__(self, topic: str, operation: str, error: str, message: str | None = None) -> None:
        super().__init__(
            f"the broker refused to {operation} topic {topic}: {error}"
            + (f" ({message})" if message else "")
            + "; check the broker's topic policy and the client's permissions"
        )
        self.topic = topic
        self.operation = operation
        self.error = error


@dataclass(frozen=True)
class TopicReport:
    """What :func:`apply_topics` found or did for one topic."""

    name: str
    action: Literal["created", "ok", "differs", "missing"]
    details: list[str] = field(default_factory=list)


def apply_topics(
    settings: Settings,
    specs: Iterable[TopicSpec] | None = None,
    *,
    create: bool = True,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[TopicReport]:
    """Create the missing topics of ``specs`` (unless ``create`` is false) and check the others.

    Returns one report per spec, in order (by default the catalogue's topics, read now: an external
    platform's topic included). Another worker creating the same topic at the same time is not an
    error: the topic is then checked like any existing one.
    """
    specs = list(catalogue.TOPICS if specs is None else specs)
    with open_admin(settings, timeout_s) as admin:
        existing = set(admin.list_topics())
        reports: dict[str, TopicReport] = {}
        missing = [spec for spec in specs if spec.name not in existing]
        if create and missing:
            created, raced = _create(admin, missing, settings, timeout_s)
            reports.update((r.name, r) for r in created)
            existing.update(raced)
        else:
            hint = ["run `bridge topics apply` to create it"]
            reports.update((spec.name, TopicReport(spec.name, "missing", hint)) for spec in missing)
        to_check = [spec for spec in specs if spec.name in existing]
        if to_check:
            reports.update((r.name, r) for r in _check(admin, to_check, settings))
    return [reports[spec.name] for spec in specs]


def format_report(reports: Sequence[TopicReport]) -> str:
    """A plain-text table of ``reports``: topic, action, details (one line per detail)."""
    rows = [("TOPIC", "ACTION", "DETAILS")]
    for report in reports:
        details = report.details or [""]
        rows.append((report.name, report.action, details[0]))
        rows.extend(("", "", detail) for detail in details[1:])
    name_width = max(len(row[0]) for row in rows)
    action_width = max(len(row[1]) for row in rows)
    lines = [f"{n:<{name_width}}  {a:<{action_width}}  {d}".rstrip() for n, a, d in rows]
    return "\n".join(lines) + "\n"


def delete_topics(
    settings: Settings, names: Iterable[str], *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> None:
    """Delete the topics ``names``; topics that do not exist are ignored. For tests and demos."""
    names = list(names)
    if not names:
        return
    with open_admin(settings, timeout_s) as admin:
        result = admin.delete_topics(names, timeout_ms=int(timeout_s * 1000), raise_errors=False)
    for topic in result["topics"]:
        error = kafka_errors.for_code(topic["error_code"])
        if error not in (kafka_errors.NoError, kafka_errors.UnknownTopicOrPartitionError):
            raise TopicAdminError(topic["name"], "delete", error.__name__)


def committed_offsets(
    settings: Settings, topics: Iterable[str], *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> dict[tuple[str, int], int]:
    """The offsets ``settings.group_id`` has committed on ``topics``: ``{(topic, partition): offset}``.

    One OffsetFetch for the whole group (partitions without a committed offset are left out).
    Raises :class:`BrokerUnavailable` when no broker answers, :class:`BridgeError` when the
    broker refuses the request.
    """
    wanted = set(topics)
    group = settings.group_id
    with open_admin(settings, timeout_s) as admin:
        try:
            found = admin.list_group_offsets({group: None}).get(group, {})
        except (kafka_errors.KafkaTimeoutError, kafka_errors.KafkaConnectionError):
            raise
        except kafka_errors.KafkaError as exc:
            raise BridgeError(f"the broker did not list the committed offsets of consumer group {group}: {failure_cause(exc)}") from exc
    return {(tp.topic, tp.partition): meta.offset for tp, meta in found.items() if tp.topic in wanted and meta.offset >= 0}


def _create(
    admin: KafkaAdminClient, specs: list[TopicSpec], settings: Settings, timeout_s: float
) -> tuple[list[TopicReport], set[str]]:
    """Create ``specs``; return reports of those created and the names another client created first."""
    request = {
        spec.name: {
            "num_partitions": spec.partitions_or(settings.topic_partitions),
            "replication_factor": settings.replication_factor,
            "configs": spec.kafka_configs(),
        }
        for spec in specs
    }
    result = admin.create_topics(request, timeout_ms=int(timeout_s * 1000), raise_errors=False)
    outcomes = {topic["name"]: topic for topic in result["topics"]}
    created, raced = [], set()
    for spec in specs:
        outcome = outcomes.get(spec.name)
        if outcome is None:
            raise TopicAdminError(spec.name, "create", "no answer", "the reply did not mention it")
        error = kafka_errors.for_code(outcome["error_code"])
        if error is kafka_errors.TopicAlreadyExistsError:
            raced.add(spec.name)
        elif error is kafka_errors.NoError:
            wanted = request[spec.name]
            details = [
                f"{wanted['num_partitions']} partitions, replication {wanted['replication_factor']}",
                *(f"{key}={value}" for key, value in wanted["configs"].items()),
            ]
            created.append(TopicReport(spec.name, "created", details))
        else:
            raise TopicAdminError(spec.name, "create", error.__name__, outcome.get("error_message"))
    return created, raced


def _check(admin: KafkaAdminClient, specs: list[TopicSpec], settings: Settings) -> list[TopicReport]:
    """Compare existing topics with their specs; differences go into the reports, nothing changes."""
    described = {topic["name"]: topic for topic in admin.describe_topics([spec.name for spec in specs])}
    configs = _describe_configs(admin, specs)
    reports = []
    for spec in specs:
        problems, notes = _compare_layout(spec, described.get(spec.name), settings)
        config_problems, config_notes = _compare_configs(spec, configs.get(spec.name))
        problems += config_problems
        notes += config_notes
        reports.append(TopicReport(spec.name, "differs" if problems else "ok", problems + notes))
    return reports


def _compare_layout(
    spec: TopicSpec, described: dict[str, Any] | None, settings: Settings
) -> tuple[list[str], list[str]]:
    if described is None or described["error_code"] != 0:
        return ["the broker did not describe the topic"], []
    partitions = described["partitions"]
    wanted = spec.partitions_or(settings.topic_partitions)
    problems = []
    if len(partitions) != wanted:
        problems.append(
            f"partitions: {len(partitions)} on the broker, {wanted} in the catalogue "
            "(not changed automatically: adding partitions moves keys to other partitions)"
        )
    replication = {len(p["replica_nodes"]) for p in partitions}
    if replication and replication != {settings.replication_factor}:
        shown = ", ".join(str(r) for r in sorted(replication))
        problems.append(
            f"replication: {shown} on the broker, {settings.replication_factor} configured"
        )
    return problems, [] if problems else [f"{len(partitions)} partitions"]


def _describe_configs(admin: KafkaAdminClient, specs: list[TopicSpec]) -> dict[str, dict[str, Any]]:
    resources = [
        ConfigResource(ConfigResourceType.TOPIC, spec.name, list(spec.kafka_configs())) for spec in specs
    ]
    try:
        # "all", not the default "modified": a topic left at a broker default still has a value.
        result = admin.describe_configs(resources, config_filter="all")
    except kafka_errors.KafkaError:
        return {}
    return result.get("topic", {})


def _compare_configs(spec: TopicSpec, reported: dict[str, Any] | None) -> tuple[list[str], list[str]]:
    problems, unreported = [], []
    for key, wanted in spec.kafka_configs().items():
        entry = (reported or {}).get(key)
        actual = entry.get("value") if isinstance(entry, dict) else None
        if actual is None:
            unreported.append(key)
        elif not _same_config(key, actual, wanted):
            problems.append(f"{key}: {actual} on the broker, {wanted} in the catalogue")
    notes = [f"{', '.join(unreported)}: not reported by the broker, not checked"] if unreported else []
    return problems, notes


def _same_config(key: str, actual: str, wanted: str) -> bool:
    if key == "cleanup.policy":
        # Kafka accepts the list in either order ("compact,delete" == "delete,compact").
        return {p.strip() for p in actual.split(",")} == {p.strip() for p in wanted.split(",")}
    return actual.strip() == wanted.strip()
