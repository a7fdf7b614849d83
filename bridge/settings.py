"""Settings: one frozen, typed object read from ``BRIDGE_*`` environment variables (CONTRACT §5)."""

from __future__ import annotations

import difflib
import functools
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from bridge.errors import ConfigurationError
from bridge.keys import GENERATE_HINT, MIN_KEY_LENGTH, key_problem, placeholder_problem

#: The key used when ``BRIDGE_PSEUDONYM_KEY`` is not set. Fine for the demo and tests only:
#: the worker refuses to start with it in the production profile.
DEVELOPMENT_PSEUDONYM_KEY = "bridge-development-key-not-for-production"
#: The same for ``BRIDGE_DEADLETTER_KEY``: dead letters of the demo are sealed, but under a key
#: everyone knows; production refuses it.
DEVELOPMENT_DEADLETTER_KEY = "bridge-development-deadletter-key-not-for-production"

#: 32 characters of a random secret carry at least the 128 bits HMAC-SHA256 keys want.
MIN_PRODUCTION_KEY_LENGTH = MIN_KEY_LENGTH

#: Every setting's environment variable starts with this.
PREFIX = "BRIDGE_"

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class Settings(BaseSettings):
    """Every setting of the bridge. Secrets are ``SecretStr`` and never printed."""

    # hide_input_in_errors: a value that fails to parse is never repeated (it may be a key).
    model_config = SettingsConfigDict(env_prefix="BRIDGE_", frozen=True, extra="ignore", hide_input_in_errors=True)

    profile: Literal["dev", "production"] = Field(
        default="dev",
        description="`dev` tunes Kafka timeouts for the embedded broker; `production` refuses "
        "the development pseudonym key.",
    )
    broker_url: str | None = Field(
        default=None,
        description="Kafka bootstrap, e.g. `kafka://127.0.0.1:9092` (several separated by `;`). "
        "Unset: the bridge starts the embedded broker.",
    )
    database_url: str = Field(
        default="sqlite:///bridge.db",
        description="SQLAlchemy URL of the identity registry and credit ledger.",
    )
    pseudonym_key: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_PSEUDONYM_KEY),
        description="HMAC key for pseudonyms of resident IDs, documents, names and phones.",
    )
    pseudonym_previous_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Keys being retired, as a JSON list: during a rotation, evidence is digested "
        "under these too, so new events still meet what was stored under them.",
    )
    pseudonym_key_id: str | None = Field(
        default=None,
        description="Id stored beside each digest (default: derived from the key) for rotation.",
    )
    hours_per_credit: float = Field(
        default=16.0, gt=0,
        description="Study hours per credit (`H`) of the platforms whose credit rule is `hours/H` (union, vocational).",
    )
    course_equivalences: Path | None = Field(
        default=None,
        description="CSV `course_key,platform,course_id` mapping equivalent courses to one key.",
    )
    platform_modules: str = Field(
        default="",
        description="Comma-separated importable modules of platforms that live outside this repository, each "
        "declaring `ADAPTER = PlatformAdapter(...)` with its own input topic (the platforms of `adapters/` are "
        "always loaded). Every worker and command of a deployment must name the same modules.",
    )
    web_port: int = Field(default=6066, ge=0, le=65535, description="Port of /metrics, /healthz, /readyz.")
    web_host: str = Field(default="0.0.0.0", description="Interface the web endpoints bind to.")
    group_id: str = Field(default="bridge", description="Kafka consumer group of the workers.")
    session_timeout_s: float | None = Field(
        default=None,
        gt=0,
        description="Kafka session timeout. Default: 6 s in `dev` (tansu holds each JoinGroup "
        "for half of it), 30 s in `production`.",
    )
    batch_size: int = Field(default=2000, ge=1, description="Events processed per database transaction.")
    batch_window_s: float = Field(default=0.1, gt=0, description="Longest wait to fill a batch.")
    fetch_max_wait_ms: int = Field(
        default=100,
        ge=0,
        description="Longest a consumer fetch waits for data when there is none (Faust's own is 1500 ms, "
        "a floor under the latency of a quiet stream).",
    )
    max_shared_evidence: int = Field(
        default=10,
        ge=1,
        description="Identity rule 8: a name+mobile seen on more accounts than this, without a common "
        "document, links none of them (a placeholder phone, a shop's number) and raises one review item. "
        "Changing it applies to evidence seen from then on; a rebuild applies it to the past.",
    )
    stall_timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="A worker that has input waiting and has finished no batch for this long is not "
        "ready (`/readyz` says why): a batch that keeps failing, a database that does not answer.",
    )
    kafka_security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT",
        description="How every Kafka client of the bridge connects (worker, admin and tools): "
        "`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.",
    )
    kafka_sasl_mechanism: SaslMechanism | None = Field(
        default=None,
        description="SASL mechanism for `SASL_*` protocols: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.",
    )
    kafka_sasl_username: str | None = Field(default=None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(default=None, description="SASL password.")
    kafka_ssl_cafile: Path | None = Field(
        default=None,
        description="PEM file of the certificate authorities that sign the brokers' certificates "
        "(default: the system's trust store).",
    )
    kafka_ssl_certfile: Path | None = Field(
        default=None, description="PEM client certificate, for brokers that authenticate clients by TLS."
    )
    kafka_ssl_keyfile: Path | None = Field(default=None, description="PEM private key of the client certificate.")
    kafka_ssl_key_password: SecretStr | None = Field(
        default=None, description="Password of the client certificate's private key, if it has one."
    )
    kafka_ssl_check_hostname: bool = Field(
        default=True, description="Check that the broker's certificate names the host connected to."
    )
    deadletter_key: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_DEADLETTER_KEY),
        description="Secret under which dead-letter payloads are encrypted (AES-256-GCM); only "
        "`bridge deadletters show|replay` with it can read them.",
    )
    deadletter_key_id: str | None = Field(
        default=None, description="Id published beside each sealed payload (default: derived from the key)."
    )
    deadletter_previous_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Retired dead-letter keys, as a JSON list: the tools still open payloads sealed under them.",
    )
    operator_keys: Path | None = Field(
        default=None,
        description="File of the operators' public keys the workers trust for decisions (one "
        "`OPERATOR KEY [retired=TIME]` per line, made by `bridge review keygen`). Unset: no decision is applied.",
    )
    operator_signing_key: Path | None = Field(
        default=None,
        description="The operator's private key file, with which `bridge review link|reject` signs.",
    )
    console_port: int = Field(default=8080, ge=0, le=65535, description="Port of the operators' console (`bridge console`).")
    console_host: str = Field(
        default="127.0.0.1", description="Interface the console binds to (`0.0.0.0` in a container)."
    )
    console_operators: Path | None = Field(
        default=None,
        description="The console's operators file: one `OPERATOR ROLE PASSWORD-HASH` per line, role `viewer` or "
        "`reviewer`, the hash made by `bridge console adduser` (`-` for an operator who signs in only through "
        "OpenID Connect). Unset: nobody can sign in.",
    )
    console_signing_keys: Path | None = Field(
        default=None,
        description="Directory of the reviewers' signing keys (`OPERATOR.pem`, made by `bridge review keygen`): the "
        "console signs each decision with the key of the operator who took it. Unset: the console only reads.",
    )
    console_session_secret: SecretStr | None = Field(
        default=None,
        description="Secret that signs the console's session cookies; every replica needs the same one. Unset: a "
        "random one per start (sessions end when the console restarts); the production profile requires it.",
    )
    console_session_s: float = Field(
        default=8 * 3600.0, gt=0, description="How long a console session lasts after sign-in (default: a working day)."
    )
    console_secure_cookies: bool | None = Field(
        default=None,
        description="Send the session cookie over HTTPS only. Default: on in the production profile, off in `dev`.",
    )
    console_oidc_issuer: str | None = Field(
        default=None,
        description="OpenID Connect issuer URL operators sign in with (its `/.well-known/openid-configuration` is "
        "read); the operator must also be in the operators file, which gives the role.",
    )
    console_oidc_client_id: str | None = Field(default=None, description="The console's client id at the OpenID provider.")
    console_oidc_client_secret: SecretStr | None = Field(
        default=None, description="The console's client secret at the OpenID provider."
    )
    console_oidc_username_claim: str = Field(
        default="preferred_username", description="The ID-token claim that holds the operator id."
    )
    console_workers: str = Field(
        default="",
        description="Comma-separated base URLs of the workers' web endpoints (`http://worker-0:6066`), whose "
        "`/readyz` and `/metrics` the console's health page shows; `dns+http://NAME:PORT` stands for every "
        "address NAME resolves to (a headless Service of the worker pods).",
    )
    topic_partitions: int = Field(default=6, ge=1, description="Partitions of topics `topics apply` creates.")
    replication_factor: int = Field(default=1, ge=1, description="Replication of created topics.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Level of the worker's JSON-lines logs on stdout."
    )
    shutdown_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Longest a worker takes to stop after SIGTERM: it finishes the batch in flight "
        "and commits, or exits without committing what is not durable (redelivered on restart).",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_variables(cls, data: Any) -> Any:
        check_environment()
        return data

    @field_validator("broker_url")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("database_url")
    @classmethod
    def _a_database_url(cls, value: str) -> str:
        # Never repeat the value: it may hold a password.
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                "not a database URL (write sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE)"
            ) from None
        try:
            url.get_dialect()
        except NoSuchModuleError:
            raise ValueError(
                f"an unknown kind of database ({url.drivername}: use sqlite:///PATH or postgresql+psycopg://...)"
            ) from None
        return value

    @model_validator(mode="after")
    def _production_needs_real_key(self) -> Settings:
        if self.profile != "production":
            return self
        problems = []
        for variable, secret, development in (
            ("BRIDGE_PSEUDONYM_KEY", self.pseudonym_key, DEVELOPMENT_PSEUDONYM_KEY),
            ("BRIDGE_DEADLETTER_KEY", self.deadletter_key, DEVELOPMENT_DEADLETTER_KEY),
        ):
            value = secret.get_secret_value()
            problem = "it is the development key" if value == development else key_problem(value)
            if problem:
                problems.append(f"{variable}: {problem}")
        if self.kafka_sasl_password is not None:
            problem = placeholder_problem(self.kafka_sasl_password.get_secret_value())
            if problem:
                problems.append(f"BRIDGE_KAFKA_SASL_PASSWORD: {problem}")
        if problems:
            raise ConfigurationError(
                "BRIDGE_PROFILE=production refuses these secrets: " + "; ".join(problems)
                + f". Set each to a random secret of at least {MIN_PRODUCTION_KEY_LENGTH} characters ({GENERATE_HINT})."
            )
        return self

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL_"):
            missing = [name for name, value in (
                ("BRIDGE_KAFKA_SASL_MECHANISM", self.kafka_sasl_mechanism),
                ("BRIDGE_KAFKA_SASL_USERNAME", self.kafka_sasl_username),
                ("BRIDGE_KAFKA_SASL_PASSWORD", self.kafka_sasl_password),
            ) if not (value.get_secret_value() if isinstance(value, SecretStr) else value)]
            if missing:
                raise ConfigurationError(
                    f"BRIDGE_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs {', '.join(missing)}"
                )
        return self

    def transport_warnings(self) -> list[str]:
        """What the production profile allows but an operator should know: Kafka connections
        without encryption (the platforms' messages carry personal data), a broker certificate
        whose host name is not checked, a password sent in the clear. Each names its setting."""
        if self.profile != "production" or not self.broker_url:
            return []
        warnings = []
        protocol = self.kafka_security_protocol
        if protocol in ("PLAINTEXT", "SASL_PLAINTEXT"):
            warnings.append(
                f"BRIDGE_KAFKA_SECURITY_PROTOCOL={protocol}: Kafka traffic, personal data included, is not "
                "encrypted; use SASL_SSL (or SSL) unless a service mesh encrypts it"
            )
        if protocol == "SASL_PLAINTEXT" and self.kafka_sasl_mechanism == "PLAIN":
            warnings.append(
                "BRIDGE_KAFKA_SASL_MECHANISM=PLAIN over SASL_PLAINTEXT sends the Kafka password in the clear; "
                "use SCRAM-SHA-512 or SASL_SSL"
            )
        if protocol in ("SSL", "SASL_SSL") and not self.kafka_ssl_check_hostname:
            warnings.append(
                "BRIDGE_KAFKA_SSL_CHECK_HOSTNAME=false: any certificate the CA signed is accepted for the "
                "broker, whatever its name"
            )
        return warnings

    @property
    def uses_development_key(self) -> bool:
        return self.pseudonym_key.get_secret_value() == DEVELOPMENT_PSEUDONYM_KEY

    @property
    def effective_session_timeout_s(self) -> float:
        if self.session_timeout_s is not None:
            return self.session_timeout_s
        return 6.0 if self.profile == "dev" else 30.0

    def bootstrap_servers(self) -> list[str]:
        """``host:port`` list for kafka-python/aiokafka from ``broker_url``."""
        if not self.broker_url:
            raise ConfigurationError("no broker configured: set BRIDGE_BROKER_URL")
        parts = (part.strip() for part in self.broker_url.replace(",", ";").split(";"))
        return [part.split("://", 1)[-1] for part in parts if part]

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some settings replaced (validated again)."""
        data = self.model_dump()
        data.update(changes)
        return Settings.model_validate(data)


def broker_settings(what: str) -> Settings:
    """The settings from the environment for a command that needs a broker: ``BRIDGE_BROKER_URL``
    must be set, to ``what`` (said in the error when it is not)."""
    settings = Settings()
    if not settings.broker_url:
        raise ConfigurationError(f"set BRIDGE_BROKER_URL to {what}")
    return settings


@functools.cache
def secret_variables() -> tuple[str, ...]:
    """The environment variables of the secret settings (those typed ``SecretStr``)."""
    return tuple(variable_of(name) for name, field in Settings.model_fields.items() if "SecretStr" in str(field.annotation))


def variable_of(field: str) -> str:
    """The environment variable of setting ``field`` (``hours_per_credit`` -> ``BRIDGE_HOURS_PER_CREDIT``)."""
    return f"{PREFIX}{field.upper()}"


def known_variables() -> tuple[str, ...]:
    """The environment variables of every setting, in the order of the fields."""
    return tuple(variable_of(name) for name in Settings.model_fields)


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """The ``BRIDGE_*`` variables of ``environ`` (default: the process's) that name no setting."""
    environ = os.environ if environ is None else environ
    known = set(known_variables())
    # pydantic-settings reads the variables case-insensitively; so does this check.
    return sorted(name for name in environ if name.upper().startswith(PREFIX) and name.upper() not in known)


def check_environment(environ: Mapping[str, str] | None = None) -> None:
    """Raise :class:`ConfigurationError` naming every unknown ``BRIDGE_*`` variable (CONTRACT §5),
    with the setting it most likely meant. A misspelt variable is not silently ignored."""
    unknown = unknown_variables(environ)
    if not unknown:
        return
    known = known_variables()
    described = []
    for name in unknown:
        near = difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.75)
        described.append(f"{name} (did you mean {near[0]}?)" if near else name)
    several = len(unknown) > 1
    raise ConfigurationError(
        f"unknown setting{'s' if several else ''} {', '.join(described)}: "
        f"rename or unset {'them' if several else 'it'} (`bridge worker --help` lists every setting; each BRIDGE_* "
        "variable must be one of them)"
    )


def settings_problem(exc: ValidationError | SettingsError) -> ConfigurationError:
    """A :class:`ConfigurationError` for settings that cannot be parsed, in one line, naming the
    environment variables (not the fields) and never their values."""
    if isinstance(exc, SettingsError):
        found = re.search(r'field "([a-z0-9_]+)"', str(exc))
        variable = variable_of(found.group(1)) if found else "a BRIDGE_* variable"
        cause = exc.__cause__
        why = "not valid JSON (a JSON list is expected)" if cause is not None and "JSON" in type(cause).__name__ else "cannot be parsed"
        return ConfigurationError(f"invalid setting {variable}: {why}; fix it (docs/operations.md, Configuration)")
    problems: dict[str, list[str]] = {}
    for error in exc.errors(include_url=False, include_input=False):
        loc = error.get("loc") or ()
        field = loc[0] if loc and isinstance(loc[0], str) else None
        variable = variable_of(field) if field in Settings.model_fields else "the settings"
        message = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
        problems.setdefault(variable, []).append(message[:1].lower() + message[1:])
    several = len(problems) > 1
    described = "; ".join(f"{variable}: {', '.join(messages)}" for variable, messages in problems.items())
    return ConfigurationError(
        f"invalid setting{'s' if several else ''} {described}; fix {'them' if several else 'it'} "
        "(docs/operations.md, Configuration)"
    )


def variables_for(*patterns: str) -> list[str]:
    """The settings' variables matching ``patterns`` (``fnmatch``-style, e.g. ``BRIDGE_KAFKA_*``), in
    the order of the fields."""
    from fnmatch import fnmatchcase

    return [name for name in known_variables() if any(fnmatchcase(name, pattern) for pattern in patterns)]
