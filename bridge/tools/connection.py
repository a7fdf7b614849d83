"""Reaching the Kafka broker: one check before a worker or command starts, bounded admin clients,
and failures an operator can act on (an unreachable broker, refused credentials, an untrusted
certificate), each in one line that never shows a secret.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import kafka.errors as kafka_errors
from kafka.admin import KafkaAdminClient

from bridge.errors import EXIT_CONFIG, BridgeError, ConfigurationError, DependencyUnavailable
from bridge.kafka import kafka_python_client
from bridge.settings import Settings


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
            f"the Kafka broker at {', '.join(bootstrap)} refused the request ({failure_cause(exc)}): check the ACLs of "
            "the user in BRIDGE_KAFKA_SASL_USERNAME (docs/operations.md, Least privilege)"
        )
    security = settings.kafka_security_protocol if settings is not None else "PLAINTEXT"
    return BrokerUnavailable(bootstrap, round(waited), failure_cause(exc), security)


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
            cause = failure_cause(exc)
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
        raise BrokerUnavailable(bootstrap, timeout_s, failure_cause(exc), security) from exc
    try:
        yield admin
    except (kafka_errors.KafkaTimeoutError, kafka_errors.KafkaConnectionError) as exc:
        raise BrokerUnavailable(bootstrap, timeout_s, failure_cause(exc), security) from exc
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


def failure_cause(exc: kafka_errors.KafkaError) -> str:
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
