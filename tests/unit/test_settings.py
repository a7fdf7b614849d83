"""Settings from ``BRIDGE_*`` environment variables (CONTRACT §5): parsing, defaults, secrets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from bridge.errors import ConfigurationError
from bridge.keys import estimated_bits, key_problem
from bridge.settings import DEVELOPMENT_DEADLETTER_KEY, DEVELOPMENT_PSEUDONYM_KEY, Settings, secret_variables

# Random-looking keys (drawn once with `openssl rand -base64 36`): the production profile judges
# keys, and a run like "0123456789abcdef" is refused as predictable.
REAL_KEY = "q7Rz0pLw2VnK9xT4bYc8MdE1sHfJ6uGa3WkN5oQi"
REAL_DEADLETTER_KEY = "Hb4Tq9ZmW2cXr7LpN0vKs5DyE8gFa1JuR6oYi3Me"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No BRIDGE_* variable of the developer's shell or CI leaks into a test. The dead-letter key
    is set to a real one, so that tests of the production profile judge the key they are about."""
    for name in list(os.environ):
        if name.upper().startswith("BRIDGE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BRIDGE_DEADLETTER_KEY", REAL_DEADLETTER_KEY)
    return monkeypatch


def test_defaults_without_any_variable() -> None:
    s = Settings()
    assert s.profile == "dev"
    assert s.broker_url is None
    assert s.database_url == "sqlite:///bridge.db"
    assert s.pseudonym_key.get_secret_value() == DEVELOPMENT_PSEUDONYM_KEY
    assert s.uses_development_key
    assert s.pseudonym_key_id is None
    assert s.hours_per_credit == 16.0
    assert s.course_equivalences is None
    assert s.web_port == 6066
    assert s.session_timeout_s is None


def test_contract_variables_are_read(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    table = tmp_path / "eq.csv"
    clean_env.setenv("BRIDGE_BROKER_URL", "kafka://10.0.0.5:9092")
    clean_env.setenv("BRIDGE_DATABASE_URL", "postgresql://bridge:pw@db:5432/bridge")
    clean_env.setenv("BRIDGE_PSEUDONYM_KEY", REAL_KEY)
    clean_env.setenv("BRIDGE_HOURS_PER_CREDIT", "12.5")
    clean_env.setenv("BRIDGE_COURSE_EQUIVALENCES", str(table))
    clean_env.setenv("BRIDGE_WEB_PORT", "8080")
    s = Settings()
    assert s.broker_url == "kafka://10.0.0.5:9092"
    assert s.database_url == "postgresql://bridge:pw@db:5432/bridge"
    assert s.pseudonym_key.get_secret_value() == REAL_KEY
    assert not s.uses_development_key
    assert s.hours_per_credit == 12.5
    assert s.course_equivalences == table
    assert isinstance(s.course_equivalences, Path)
    assert s.web_port == 8080


def test_other_variables_are_read(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("BRIDGE_PROFILE", "production")
    clean_env.setenv("BRIDGE_PSEUDONYM_KEY", REAL_KEY)
    clean_env.setenv("BRIDGE_PSEUDONYM_KEY_ID", "2024-q2")
    clean_env.setenv("BRIDGE_GROUP_ID", "bridge-blue")
    clean_env.setenv("BRIDGE_BATCH_SIZE", "50")
    clean_env.setenv("BRIDGE_SESSION_TIMEOUT_S", "45")
    clean_env.setenv("BRIDGE_LOG_LEVEL", "DEBUG")
    s = Settings()
    assert (s.profile, s.pseudonym_key_id, s.group_id, s.batch_size, s.log_level) == (
        "production", "2024-q2", "bridge-blue", 50, "DEBUG",
    )
    assert s.effective_session_timeout_s == 45.0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BRIDGE_HOURS_PER_CREDIT", "0"),
        ("BRIDGE_HOURS_PER_CREDIT", "-16"),
        ("BRIDGE_HOURS_PER_CREDIT", "sixteen"),
        ("BRIDGE_WEB_PORT", "70000"),
        ("BRIDGE_WEB_PORT", "-1"),
        ("BRIDGE_WEB_PORT", "http"),
        ("BRIDGE_PROFILE", "prod"),
        ("BRIDGE_LOG_LEVEL", "LOUD"),
        ("BRIDGE_BATCH_SIZE", "0"),
        ("BRIDGE_SESSION_TIMEOUT_S", "0"),
    ],
)
def test_bad_values_are_rejected_naming_the_setting(clean_env: pytest.MonkeyPatch, name: str, value: str) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    field = name.removeprefix("BRIDGE_").lower()
    assert any(field in error["loc"] for error in caught.value.errors())


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_broker_url_means_unset(clean_env: pytest.MonkeyPatch, blank: str) -> None:
    clean_env.setenv("BRIDGE_BROKER_URL", blank)
    assert Settings().broker_url is None


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(ValidationError):
        s.hours_per_credit = 8.0  # type: ignore[misc]


# -- the production profile and the pseudonym key ---------------------------------------------


def test_production_refuses_the_development_key(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("BRIDGE_PROFILE", "production")
    with pytest.raises(ConfigurationError) as caught:
        Settings()
    assert "BRIDGE_PSEUDONYM_KEY" in str(caught.value)
    assert DEVELOPMENT_PSEUDONYM_KEY not in str(caught.value)


def test_production_refuses_the_development_key_set_explicitly(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("BRIDGE_PROFILE", "production")
    clean_env.setenv("BRIDGE_PSEUDONYM_KEY", DEVELOPMENT_PSEUDONYM_KEY)
    with pytest.raises(ConfigurationError):
        Settings()


def test_production_accepts_a_real_key(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("BRIDGE_PROFILE", "production")
    clean_env.setenv("BRIDGE_PSEUDONYM_KEY", REAL_KEY)
    s = Settings()
    assert s.profile == "production"
    assert not s.uses_development_key


@pytest.mark.parametrize("weak", ["x", "", "short-key"])
def test_production_refuses_a_weak_key(clean_env: pytest.MonkeyPatch, weak: str) -> None:
    clean_env.setenv("BRIDGE_PROFILE", "production")
    clean_env.setenv("BRIDGE_PSEUDONYM_KEY", weak)
    with pytest.raises((ConfigurationError, ValidationError)):
        Settings()


def test_the_development_profile_accepts_the_development_key() -> None:
    assert Settings(profile="dev").uses_development_key


def test_with_overrides_validates_again_and_keeps_the_key(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("BRIDGE_PSEUDONYM_KEY", REAL_KEY)
    s = Settings()
    changed = s.with_overrides(hours_per_credit=10.0, profile="production")
    assert changed.hours_per_credit == 10.0
    assert changed.pseudonym_key.get_secret_value() == REAL_KEY
    assert s.hours_per_credit == 16.0  # the original is untouched
    with pytest.raises(ConfigurationError):
        Settings(pseudonym_key=DEVELOPMENT_PSEUDONYM_KEY).with_overrides(profile="production")
    with pytest.raises(ConfigurationError):
        s.with_overrides(profile="production", deadletter_key=DEVELOPMENT_DEADLETTER_KEY)
    with pytest.raises(ValidationError):
        s.with_overrides(hours_per_credit=0)


@pytest.mark.parametrize("profile", ["dev", "production"])
def test_secrets_never_appear_in_repr_str_or_json(clean_env: pytest.MonkeyPatch, profile: str) -> None:
    clean_env.setenv("BRIDGE_PROFILE", profile)
    clean_env.setenv("BRIDGE_PSEUDONYM_KEY", REAL_KEY)
    s = Settings()
    for text in (repr(s), str(s), s.model_dump_json(), repr(s.pseudonym_key), str(s.pseudonym_key)):
        assert REAL_KEY not in text
    assert REAL_KEY[:8] not in repr(s)


# -- what the production profile accepts as a key ----------------------------------------------


@pytest.mark.parametrize(
    "weak",
    [
        "abcdefghijklmnopqrstuvwxyz0123456789",  # a run
        "0123456789abcdef0123456789abcdef-real",  # runs and a word-like tail
        "aK3$" * 10,  # a repeated block
        "x" * 40,
        "ab" * 20,
        "REPLACE-ME-with-at-least-32-random-characters",  # the k8s placeholder of earlier releases
        "compose-only-placeholder-key-replace-me-0123456789",  # the compose one
        "my-super-secret-pseudonym-key-for-the-bridge",
        DEVELOPMENT_PSEUDONYM_KEY,
        DEVELOPMENT_DEADLETTER_KEY,
    ],
)
@pytest.mark.parametrize("variable", ["BRIDGE_PSEUDONYM_KEY", "BRIDGE_DEADLETTER_KEY"])
def test_production_refuses_guessable_keys_naming_the_setting(
    clean_env: pytest.MonkeyPatch, weak: str, variable: str
) -> None:
    clean_env.setenv("BRIDGE_PROFILE", "production")
    clean_env.setenv("BRIDGE_PSEUDONYM_KEY", REAL_KEY)
    clean_env.setenv(variable, weak)
    with pytest.raises(ConfigurationError) as caught:
        Settings()
    message = str(caught.value)
    assert variable in message and "openssl rand" in message
    assert weak not in message and weak[:12] not in message


def test_random_keys_pass_the_judge() -> None:
    import base64
    import secrets

    for _ in range(2000):
        assert key_problem(base64.b64encode(secrets.token_bytes(48)).decode()) is None
        assert key_problem(secrets.token_urlsafe(32)) is None
    # 128 bits written in hex are estimated low (few distinct characters) but still pass.
    assert sum(key_problem(secrets.token_hex(16)) is not None for _ in range(2000)) <= 2
    assert estimated_bits("aaaa" * 10) == 0.0


def test_production_refuses_a_placeholder_sasl_password(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("BRIDGE_PROFILE", "production")
    clean_env.setenv("BRIDGE_PSEUDONYM_KEY", REAL_KEY)
    clean_env.setenv("BRIDGE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    clean_env.setenv("BRIDGE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    clean_env.setenv("BRIDGE_KAFKA_SASL_USERNAME", "bridge-worker")
    clean_env.setenv("BRIDGE_KAFKA_SASL_PASSWORD", "REPLACE-ME")
    with pytest.raises(ConfigurationError, match="BRIDGE_KAFKA_SASL_PASSWORD"):
        Settings()
    clean_env.setenv("BRIDGE_KAFKA_SASL_PASSWORD", "Zt8-wq1LmX")
    assert Settings().kafka_sasl_password.get_secret_value() == "Zt8-wq1LmX"


@pytest.mark.parametrize("missing", ["BRIDGE_KAFKA_SASL_MECHANISM", "BRIDGE_KAFKA_SASL_USERNAME", "BRIDGE_KAFKA_SASL_PASSWORD"])
def test_sasl_needs_mechanism_user_and_password(clean_env: pytest.MonkeyPatch, missing: str) -> None:
    clean_env.setenv("BRIDGE_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    for name, value in (("BRIDGE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256"), ("BRIDGE_KAFKA_SASL_USERNAME", "u"),
                        ("BRIDGE_KAFKA_SASL_PASSWORD", "pw-of-the-user")):
        if name != missing:
            clean_env.setenv(name, value)
    with pytest.raises(ConfigurationError) as caught:
        Settings()
    assert missing in str(caught.value) and "pw-of-the-user" not in str(caught.value)


def test_the_development_key_is_not_printed_either() -> None:
    s = Settings()
    assert DEVELOPMENT_PSEUDONYM_KEY not in repr(s) + str(s) + s.model_dump_json()


# -- Kafka session timeout ----------------------------------------------------------------------


def test_session_timeout_defaults_per_profile(clean_env: pytest.MonkeyPatch) -> None:
    assert Settings().effective_session_timeout_s == 6.0
    clean_env.setenv("BRIDGE_PROFILE", "production")
    clean_env.setenv("BRIDGE_PSEUDONYM_KEY", REAL_KEY)
    assert Settings().effective_session_timeout_s == 30.0


def test_explicit_session_timeout_wins_in_both_profiles(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("BRIDGE_SESSION_TIMEOUT_S", "12.5")
    assert Settings().effective_session_timeout_s == 12.5
    clean_env.setenv("BRIDGE_PROFILE", "production")
    clean_env.setenv("BRIDGE_PSEUDONYM_KEY", REAL_KEY)
    assert Settings().effective_session_timeout_s == 12.5


# -- bootstrap servers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "servers"),
    [
        ("kafka://127.0.0.1:9092", ["127.0.0.1:9092"]),
        ("127.0.0.1:9092", ["127.0.0.1:9092"]),
        ("kafka://k1:9092;kafka://k2:9092", ["k1:9092", "k2:9092"]),
        ("kafka://k1:9092,kafka://k2:9092", ["k1:9092", "k2:9092"]),
        ("k1:9092;k2:9093;k3:9094", ["k1:9092", "k2:9093", "k3:9094"]),
        ("kafka://k1:9092;", ["k1:9092"]),
        ("  kafka://k1:9092  ", ["k1:9092"]),
    ],
)
def test_bootstrap_servers(clean_env: pytest.MonkeyPatch, url: str, servers: list[str]) -> None:
    clean_env.setenv("BRIDGE_BROKER_URL", url)
    assert Settings().bootstrap_servers() == servers


@pytest.mark.parametrize("url", ["k1:9092, k2:9092", "kafka://k1:9092 ;kafka://k2:9092", "k1:9092 ; k2:9092"])
def test_bootstrap_servers_ignore_spaces_around_separators(clean_env: pytest.MonkeyPatch, url: str) -> None:
    clean_env.setenv("BRIDGE_BROKER_URL", url)
    assert Settings().bootstrap_servers() == ["k1:9092", "k2:9092"]


def test_bootstrap_servers_without_a_broker_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings().bootstrap_servers()
    assert "BRIDGE_BROKER_URL" in str(caught.value)


@pytest.mark.parametrize("name", ["BRIDGE_PSEUDONYM_PREVIOUS_KEYS", "BRIDGE_DEADLETTER_PREVIOUS_KEYS"])
def test_a_malformed_secret_is_never_repeated_in_the_error(clean_env: pytest.MonkeyPatch, name: str) -> None:
    secret = "kQ8vZ2mX7pL4nR9tW1yB6cF3hJ5sD0gA"
    clean_env.setenv(name, json.dumps({"old": secret}))
    with pytest.raises(ValidationError) as raised:
        Settings()
    assert name.removeprefix("BRIDGE_").lower() in str(raised.value)
    assert secret not in str(raised.value)


def test_the_secret_variables_are_those_of_the_secret_settings() -> None:
    assert set(secret_variables()) == {
        "BRIDGE_PSEUDONYM_KEY", "BRIDGE_PSEUDONYM_PREVIOUS_KEYS", "BRIDGE_KAFKA_SASL_PASSWORD",
        "BRIDGE_KAFKA_SSL_KEY_PASSWORD", "BRIDGE_DEADLETTER_KEY", "BRIDGE_DEADLETTER_PREVIOUS_KEYS",
        "BRIDGE_CONSOLE_SESSION_SECRET", "BRIDGE_CONSOLE_OIDC_CLIENT_SECRET",
    }


# -- transport security the production profile allows but warns about ------------------------


def _production(clean_env: pytest.MonkeyPatch, **variables: str) -> Settings:
    clean_env.setenv("BRIDGE_PROFILE", "production")
    clean_env.setenv("BRIDGE_PSEUDONYM_KEY", REAL_KEY)
    clean_env.setenv("BRIDGE_BROKER_URL", "kafka-0:9093")
    for name, value in variables.items():
        clean_env.setenv(f"BRIDGE_{name}", value)
    return Settings()


def test_production_warns_of_unencrypted_kafka_and_names_the_setting(clean_env: pytest.MonkeyPatch) -> None:
    (warning,) = _production(clean_env).transport_warnings()  # PLAINTEXT is the default
    assert warning.startswith("BRIDGE_KAFKA_SECURITY_PROTOCOL=PLAINTEXT") and "SASL_SSL" in warning


def test_production_warns_of_a_password_in_the_clear(clean_env: pytest.MonkeyPatch) -> None:
    password = "Zr8q3LmW0pT6vYb2XkN9sJc4"
    warnings = _production(
        clean_env, KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", KAFKA_SASL_MECHANISM="PLAIN",
        KAFKA_SASL_USERNAME="bridge-worker", KAFKA_SASL_PASSWORD=password,
    ).transport_warnings()
    assert [w.split("=")[0] for w in warnings] == ["BRIDGE_KAFKA_SECURITY_PROTOCOL", "BRIDGE_KAFKA_SASL_MECHANISM"]
    assert not any(password in w for w in warnings)


def test_production_warns_when_the_broker_certificate_name_is_not_checked(clean_env: pytest.MonkeyPatch) -> None:
    (warning,) = _production(clean_env, KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CHECK_HOSTNAME="false").transport_warnings()
    assert warning.startswith("BRIDGE_KAFKA_SSL_CHECK_HOSTNAME=false")


def test_no_transport_warning_for_sasl_ssl_in_production_or_for_the_dev_profile(clean_env: pytest.MonkeyPatch) -> None:
    assert _production(
        clean_env, KAFKA_SECURITY_PROTOCOL="SASL_SSL", KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
        KAFKA_SASL_USERNAME="bridge-worker", KAFKA_SASL_PASSWORD="Zr8q3LmW0pT6vYb2XkN9sJc4",
    ).transport_warnings() == []
    assert Settings(broker_url="127.0.0.1:9092").transport_warnings() == []


def test_the_runtime_logs_the_transport_warnings(clean_env: pytest.MonkeyPatch, tmp_path: Path, caplog) -> None:
    from bridge.bootstrap import build_runtime

    settings = _production(clean_env, DATABASE_URL=f"sqlite:///{tmp_path / 'b.db'}")
    with caplog.at_level("WARNING", logger="bridge.bootstrap"):
        runtime = build_runtime(settings, migrate=False)  # migrating a first start would ask the broker
    runtime.engine.dispose()
    assert any(r.getMessage().startswith("BRIDGE_KAFKA_SECURITY_PROTOCOL=PLAINTEXT") for r in caplog.records)
