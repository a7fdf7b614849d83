"""Topic administration: create the catalogue's topics, or check them against a broker (CONTRACT §5).

``bridge topics apply`` calls :func:`apply_topics` and prints :func:`format_report`. Existing
topics are never altered: a partition count or config that differs is reported for an operator
to decide, because adding partitions moves keys and changing a cleanup policy changes what
downstream consumers can rely on.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Literal

import kafka.errors as kafka_errors
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from bridge.errors import EXIT_CONFIG, BridgeError, ConfigurationError, DependencyUnavailable
from bridge.kafka import kafka_python_client
from bridge.settings import Settings
from topics.catalogue import TOPICS, TopicSpec

#: Seconds an admin call may take. Topic creation on a healthy cluster takes well under a second;
#: the margin covers a controller election.
DEFAULT_TIMEOUT_S = 15.0


class BrokerUnavailable(DependencyUnavailable):
    """No Kafka broker answered at ``bootstrap`` within ``timeout_s`` seconds."""

    def __init__(self, bootstrap: Sequence[str], timeout_s: float, cause: str, security: str = "PLAINTEXT") -> None:
        hint = "check BRIDGE_BROKER_URL and that the broker is running and reachable"
        if security in ("SSL", "SASL_SSL"):
            hint += (" over TLS, that BRIDGE_KAFKA_SSL_CAFILE holds the CA that signed its certificate and that "
                     "the certificate names the host")
        if security.startswith("SASL_"):
            hint += ", and that BRIDGE_KAFKA_SASL_USERNAME, _PASSWORD and _MECHANISM are the broker's"
        super().__init__(f"no Kafka broker answered at {', '.join(bootstrap)} within {timeout_s:g} s ({cause}): {hint}")
        self.bootstrap = list(bootstrap)
        self.timeout_s = timeout_s
        self.cause = cause


class CredentialsRefused(BrokerUnavailable):
    """A broker at ``bootstrap`` answered and refused this client's SASL credentials.

    A configuration error (exit code 5), not an unavailable broker: retrying will not help.
    """

    exit_code = EXIT_CONFIG

    def __init__(self, bootstrap: Sequence[str], timeout_s: float, cause: str, username: str | None) -> None:
        super().__init__(bootstrap, timeout_s, cause, "SASL_PLAINTEXT")
        self.args = (
            f"the Kafka broker at {', '.join(bootstrap)} refused the credentials of user {username!r} ({cause}): "
            "check BRIDGE_KAFKA_SASL_USERNAME, BRIDGE_KAFKA_SASL_PASSWORD and BRIDGE_KAFKA_SASL_MECHANISM "
            "against the broker's SCRAM user",
        )


class _RefusalRecorder(logging.Filter):
    """Keeps the last SASL refusal kafka-python met while bootstrapping.

    kafka-python retries a refused authentication like any failed connection until its bootstrap
    timeout, reports only the timeout, and tells of the refusal nowhere but in its log (a
    warning of ``kafka.net.manager`` carrying the exception). This filter, on that logger, keeps
    the exception; the record goes on as before (shown only at ``BRIDGE_LOG_LEVEL=DEBUG``, since
    the command line quiets kafka-python).
    """

    def __init__(self) -> None:
        super().__init__()
        self.last: tuple[float, BaseException] | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        for arg in args:
            if isinstance(arg, (kafka_errors.SaslAuthenticationFailedError, kafka_errors.AuthorizationError)):
                self.last = (time.monotonic(), arg)
        return logging.getLogger("kafka").isEnabledFor(record.levelno)


_REFUSALS = _RefusalRecorder()


def watch_refusals() -> None:
    """Install the recorder once: kafka-python's bootstrap warnings reach it whatever the level
    set for ``kafka`` (the filter then drops them unless that level admits them)."""
    manager_log = logging.getLogger("kafka.net.manager")
    if _REFUSALS not in manager_log.filters:
        manager_log.addFilter(_REFUSALS)
    manager_log.setLevel(min(logging.WARNING, logging.getLogger("kafka").getEffectiveLevel()))


def refused_since(started: float) -> BaseException | None:
    """The SASL refusal kafka-python logged after ``started`` (``time.monotonic()``), if any."""
    last = _REFUSALS.last
    return last[1] if last is not None and last[0] >= started else None


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
    specs: Iterable[TopicSpec] = TOPICS,
    *,
    create: bool = True,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[TopicReport]:
    """Create the missing topics of ``specs`` (unless ``create`` is false) and check the others.

    Returns one report per spec, in order. Another worker creating the same topic at the same
    time is not an error: the topic is then checked like any existing one.
    """
    specs = list(specs)
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
            raise BridgeError(f"the broker did not list the committed offsets of consumer group {group}: {_cause(exc)}") from exc
    return {(tp.topic, tp.partition): meta.offset for tp, meta in found.items() if tp.topic in wanted and meta.offset >= 0}


def kafka_failure(exc: kafka_errors.KafkaError, started: float) -> BridgeError:
    """What a command says when its own kafka-python client gave up with ``exc``: the broker
    refused its credentials (as logged since ``started``), refused the request, or none answered."""
    try:
        settings = Settings()
    except Exception:  # noqa: BLE001 - the settings were good enough to connect with; describe without them
        settings = None
    bootstrap = settings.bootstrap_servers() if settings is not None and settings.broker_url else ["BRIDGE_BROKER_URL"]
    waited = time.monotonic() - started
    refusal = refused_since(started)
    if refusal is not None:
        return CredentialsRefused(bootstrap, waited, type(refusal).__name__,
                                  settings.kafka_sasl_username if settings is not None else None)
    if isinstance(exc, kafka_errors.AuthorizationError):
        return ConfigurationError(
            f"the Kafka broker at {', '.join(bootstrap)} refused the request ({_cause(exc)}): check the ACLs of "
            "the user in BRIDGE_KAFKA_SASL_USERNAME (docs/operations.md, Least privilege)"
        )
    security = settings.kafka_security_protocol if settings is not None else "PLAINTEXT"
    return BrokerUnavailable(bootstrap, round(waited), _cause(exc), security)


def check_broker(settings: Settings, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Connect as ``settings`` say (TLS, SASL) and list the topics once.

    Raises :class:`CredentialsRefused` when the broker refuses the credentials and
    :class:`BrokerUnavailable` when none answers (a certificate not trusted included): a worker
    checks this before it starts, since its own client would retry either for ever.
    """
    with open_admin(settings, timeout_s) as admin:
        admin.list_topics()


def wait_for_broker(bootstrap: str | Sequence[str], timeout: float) -> None:
    """Block until a Kafka broker at ``bootstrap`` answers a metadata request.

    Polls a plain TCP connect first (cheap, no client threads), then asks for metadata.
    Raises :class:`BrokerUnavailable` after ``timeout`` seconds.
    """
    servers = [bootstrap] if isinstance(bootstrap, str) else list(bootstrap)
    deadline = time.monotonic() + timeout
    cause = "not tried"
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerUnavailable(servers, timeout, cause)
        if not any(_accepts_tcp(server, min(remaining, 1.0)) for server in servers):
            cause = "connection refused"
            time.sleep(min(0.05, max(remaining, 0)))
            continue
        try:
            with open_admin(servers, min(remaining, 2.0)) as admin:
                admin.list_topics()
            return
        except BrokerUnavailable as exc:
            cause = exc.cause
        except kafka_errors.KafkaError as exc:
            cause = _cause(exc)
        time.sleep(0.1)


@contextmanager
def open_admin(target: Settings | str | Sequence[str], timeout_s: float) -> Iterator[KafkaAdminClient]:
    """A connected ``KafkaAdminClient`` whose calls are bounded by ``timeout_s``; closed on exit.

    ``target`` is the settings (their TLS and SASL apply) or a bare bootstrap list. Raises
    :class:`BrokerUnavailable` when no broker answers in time.
    """
    client = kafka_python_client(target)
    bootstrap = client["bootstrap_servers"]
    security = client.get("security_protocol", "PLAINTEXT")
    timeout_ms = max(int(timeout_s * 1000), 100)
    watch_refusals()
    started = time.monotonic()
    try:
        admin = _BoundedAdmin(
            **client,
            client_id="bridge-admin",
            bootstrap_timeout_ms=timeout_ms,
            request_timeout_ms=timeout_ms,
        )
    except kafka_errors.KafkaError as exc:
        refusal = refused_since(started)
        if refusal is not None:
            raise CredentialsRefused(bootstrap, timeout_s, type(refusal).__name__, client.get("sasl_plain_username")) from exc
        raise BrokerUnavailable(bootstrap, timeout_s, _cause(exc), security) from exc
    try:
        yield admin
    except (kafka_errors.KafkaTimeoutError, kafka_errors.KafkaConnectionError) as exc:
        raise BrokerUnavailable(bootstrap, timeout_s, _cause(exc), security) from exc
    finally:
        admin.close()


class _BoundedAdmin(KafkaAdminClient):
    """``KafkaAdminClient`` that stops its I/O thread when bootstrapping fails.

    kafka-python 3.0 starts that thread before it bootstraps and leaks it when bootstrapping
    raises; a readiness loop would pile up one thread per attempt.
    """

    def __init__(self, **configs: Any) -> None:
        try:
            super().__init__(**configs)
        except BaseException:
            if hasattr(self, "_net"):
                self._closed = False
                with suppress(Exception):
                    self.close()
            raise


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


def _cause(exc: kafka_errors.KafkaError) -> str:
    # kafka-python's messages already start with the error's name.
    text = str(exc)
    return text if text.startswith(type(exc).__name__) else f"{type(exc).__name__}: {text}"


def _accepts_tcp(server: str, timeout: float) -> bool:
    host, sep, port = server.rpartition(":")
    if not sep:
        host, port = server, "9092"
    try:
        with socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False
