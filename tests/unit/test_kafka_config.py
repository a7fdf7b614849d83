"""One place turns the settings into Kafka client configuration (bridge/kafka.py): kafka-python
for the admin and the tools, aiokafka and Faust for the worker, all from the same settings."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest

from bridge.errors import ConfigurationError
from bridge.kafka import aiokafka_kwargs, faust_kwargs, kafka_python_client, kafka_python_kwargs
from bridge.settings import Settings
from tests.integration.secure import make_ca_and_server

PASSWORD = "Xq9-sasl-pass-Zr4"


def _sasl(tmp_path: Path, protocol: str = "SASL_SSL", mechanism: str = "SCRAM-SHA-512") -> Settings:
    ca, _cert, _key = make_ca_and_server(tmp_path)
    return Settings(broker_url="kafka://k1:9093;k2:9093", kafka_security_protocol=protocol,
                    kafka_sasl_mechanism=mechanism, kafka_sasl_username="bridge-worker",
                    kafka_sasl_password=PASSWORD, kafka_ssl_cafile=ca)


def test_plaintext_adds_nothing_but_the_protocol() -> None:
    settings = Settings(broker_url="kafka://k1:9092")
    assert kafka_python_client(settings) == {"bootstrap_servers": ["k1:9092"], "security_protocol": "PLAINTEXT"}
    assert faust_kwargs(settings) == {}
    assert kafka_python_client(["h:1"]) == {"bootstrap_servers": ["h:1"]}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_reaches_every_client(tmp_path: Path, mechanism: str) -> None:
    settings = _sasl(tmp_path, mechanism=mechanism)
    client = kafka_python_client(settings)
    assert client["bootstrap_servers"] == ["k1:9093", "k2:9093"]
    assert (client["security_protocol"], client["sasl_mechanism"], client["sasl_plain_username"],
            client["sasl_plain_password"]) == ("SASL_SSL", mechanism, "bridge-worker", PASSWORD)
    assert client["ssl_cafile"] == str(settings.kafka_ssl_cafile) and client["ssl_check_hostname"] is True
    aio = aiokafka_kwargs(settings)
    assert isinstance(aio["ssl_context"], ssl.SSLContext) and aio["sasl_mechanism"] == mechanism
    credentials = faust_kwargs(settings)["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL" and credentials.username == "bridge-worker"


def test_sasl_without_tls_has_no_tls_arguments(tmp_path: Path) -> None:
    client = kafka_python_kwargs(_sasl(tmp_path, protocol="SASL_PLAINTEXT"))
    assert client["security_protocol"] == "SASL_PLAINTEXT" and "ssl_cafile" not in client
    assert faust_kwargs(_sasl(tmp_path, protocol="SASL_PLAINTEXT"))["broker_credentials"].protocol.value == "SASL_PLAINTEXT"


def test_tls_alone_gives_faust_ssl_credentials(tmp_path: Path) -> None:
    ca, _cert, _key = make_ca_and_server(tmp_path)
    settings = Settings(broker_url="kafka://k:9093", kafka_security_protocol="SSL", kafka_ssl_cafile=ca)
    assert isinstance(faust_kwargs(settings)["broker_credentials"], faust.SSLCredentials)
    assert "sasl_mechanism" not in kafka_python_kwargs(settings)


@pytest.mark.parametrize("variable", ["kafka_ssl_cafile", "kafka_ssl_certfile"])
def test_an_unreadable_file_names_its_variable_and_no_secret(tmp_path: Path, variable: str) -> None:
    settings = _sasl(tmp_path).with_overrides(**{variable: tmp_path / "missing.pem"})
    for build in (kafka_python_kwargs, aiokafka_kwargs, faust_kwargs):
        with pytest.raises(ConfigurationError) as caught:
            build(settings)
        assert f"BRIDGE_{variable.upper()}" in str(caught.value) and PASSWORD not in str(caught.value)


def test_a_ca_file_that_holds_no_certificate_is_a_configuration_error(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    settings = _sasl(tmp_path).with_overrides(kafka_ssl_cafile=bogus)
    with pytest.raises(ConfigurationError, match="BRIDGE_KAFKA_SSL_CAFILE"):
        faust_kwargs(settings)


def test_the_password_never_shows_in_the_settings_repr(tmp_path: Path) -> None:
    settings = _sasl(tmp_path)
    assert PASSWORD not in repr(settings) and PASSWORD not in settings.model_dump_json()
