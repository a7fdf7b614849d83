"""The one place that turns :class:`Settings` into Kafka client configuration (TLS and SASL).

kafka-python (tools, admin), aiokafka and Faust (the worker) each spell security differently;
every client of the bridge takes its configuration from here. A file named in the settings that
cannot be read is a :class:`ConfigurationError` naming the variable, never showing a secret.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faust

from bridge.errors import ConfigurationError
from bridge.settings import Settings

_FILES = (
    ("kafka_ssl_cafile", "BRIDGE_KAFKA_SSL_CAFILE"),
    ("kafka_ssl_certfile", "BRIDGE_KAFKA_SSL_CERTFILE"),
    ("kafka_ssl_keyfile", "BRIDGE_KAFKA_SSL_KEYFILE"),
)


def _uses_tls(settings: Settings) -> bool:
    return settings.kafka_security_protocol in ("SSL", "SASL_SSL")


def _uses_sasl(settings: Settings) -> bool:
    return settings.kafka_security_protocol.startswith("SASL_")


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def check_files(settings: Settings) -> None:
    """Raise :class:`ConfigurationError` for a TLS file in the settings that cannot be read."""
    for attr, variable in _FILES:
        path: Path | None = getattr(settings, attr)
        if path is None:
            continue
        try:
            with open(path, "rb") as handle:
                handle.read(1)
        except OSError as exc:
            raise ConfigurationError(
                f"{variable}={path} cannot be read ({exc.strerror or type(exc).__name__}): "
                "give the path of a readable PEM file"
            ) from None
    if settings.kafka_ssl_keyfile is not None and settings.kafka_ssl_certfile is None:
        raise ConfigurationError("BRIDGE_KAFKA_SSL_KEYFILE is set without BRIDGE_KAFKA_SSL_CERTFILE: set both or neither")


def kafka_python_kwargs(settings: Settings) -> dict[str, Any]:
    """Security keyword arguments for kafka-python's producer, consumer and admin client."""
    check_files(settings)
    kwargs: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    if _uses_sasl(settings):
        kwargs.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=_secret(settings.kafka_sasl_password),
        )
    if _uses_tls(settings):
        kwargs.update(
            ssl_check_hostname=settings.kafka_ssl_check_hostname,
            ssl_cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None,
            ssl_certfile=str(settings.kafka_ssl_certfile) if settings.kafka_ssl_certfile else None,
            ssl_keyfile=str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
            ssl_password=_secret(settings.kafka_ssl_key_password),
        )
    return kwargs


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for aiokafka and Faust, or None for a protocol without TLS."""
    if not _uses_tls(settings):
        return None
    check_files(settings)
    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH,
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None,
        )
    except ssl.SSLError as exc:
        raise ConfigurationError(
            f"BRIDGE_KAFKA_SSL_CAFILE={settings.kafka_ssl_cafile} holds no usable certificate ({exc.reason}): "
            "give the PEM file of the CA that signs the brokers' certificates"
        ) from None
    context.check_hostname = settings.kafka_ssl_check_hostname
    if settings.kafka_ssl_certfile is not None:
        try:
            context.load_cert_chain(
                str(settings.kafka_ssl_certfile),
                str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
                password=_secret(settings.kafka_ssl_key_password),
            )
        except ssl.SSLError as exc:
            raise ConfigurationError(
                f"BRIDGE_KAFKA_SSL_CERTFILE/BRIDGE_KAFKA_SSL_KEYFILE cannot be loaded ({exc.reason}): "
                "check the certificate, its key and BRIDGE_KAFKA_SSL_KEY_PASSWORD"
            ) from None
    return context


def aiokafka_kwargs(settings: Settings) -> dict[str, Any]:
    """Security keyword arguments for aiokafka's clients."""
    kwargs: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    context = ssl_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    if _uses_sasl(settings):
        kwargs.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=_secret(settings.kafka_sasl_password),
        )
    return kwargs


def faust_kwargs(settings: Settings) -> dict[str, Any]:
    """Faust app settings: ``broker_credentials`` (Faust derives the protocol from them).

    ``SASLCredentials`` with an ``ssl_context`` means SASL_SSL; the SCRAM mechanisms pass through
    to aiokafka as their names.
    """
    context = ssl_context(settings)
    if _uses_sasl(settings):
        return {
            "broker_credentials": faust.SASLCredentials(
                username=settings.kafka_sasl_username,
                password=_secret(settings.kafka_sasl_password),
                mechanism=settings.kafka_sasl_mechanism,
                ssl_context=context,
            )
        }
    if context is not None:
        return {"broker_credentials": faust.SSLCredentials(context)}
    return {}


def kafka_python_client(target: Settings | Sequence[str] | str) -> dict[str, Any]:
    """``bootstrap_servers`` and the security arguments of a kafka-python client for ``target``:
    the settings (every tool connects as they say), or a bare bootstrap list (plaintext, for tests
    and the embedded broker)."""
    if isinstance(target, Settings):
        return {"bootstrap_servers": target.bootstrap_servers(), **kafka_python_kwargs(target)}
    return {"bootstrap_servers": [target] if isinstance(target, str) else list(target)}
