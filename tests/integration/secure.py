"""A Kafka broker reached over TLS, for the tests of issue 12.

The embedded tansu 0.6 serves no TLS itself (its ``--cert`` is accepted and ignored), and its
``--authentication`` cannot be used with in-memory storage (users are created through the broker,
which then refuses the unauthenticated request that would create the first one). So TLS is
tested through a real TLS terminator in front of tansu: Debian's ``stunnel4``, installed by
``.ci/stunnel.sh`` when missing. tansu advertises the TLS port, so every connection a client
opens after the bootstrap goes through stunnel too.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bridge.tools.connection import BrokerUnavailable, open_admin
from bridge.tools.broker import free_port, resolve_binary, stop_process
from bridge.settings import Settings
from tests.integration.sasl_proxy import SaslGate

ROOT = Path(__file__).resolve().parents[2]


def stunnel_binary() -> str | None:
    """stunnel4's path, installing it when it is missing and we may; None when it cannot be had."""
    done = subprocess.run(["bash", str(ROOT / ".ci" / "stunnel.sh")], capture_output=True, text=True, timeout=300)
    return done.stdout.strip() or None if done.returncode == 0 else None


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def make_ca_and_server(directory: Path, name: str = "test") -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it: (ca, cert, key) paths."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(_name(f"bridge {name} CA")).issuer_name(_name(f"bridge {name} CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    paths = directory / f"{name}-ca.pem", directory / f"{name}-server.pem", directory / f"{name}-server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(_pem(key))
    paths[2].chmod(0o600)
    return paths


def start_tansu(directory: Path, port: int, advertised_port: int) -> subprocess.Popen:
    """The embedded broker on ``port``, advertising ``advertised_port`` (the outermost hop)."""
    log = open(directory / "tansu.log", "ab")
    return subprocess.Popen(
        [resolve_binary(), "broker",
         "--listener-url", f"tcp://127.0.0.1:{port}",
         "--advertised-listener-url", f"tcp://127.0.0.1:{advertised_port}",
         "--storage-engine", "memory://tansu/"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def start_stunnel(stunnel: str, directory: Path, accept: int, connect: int, cert: Path, key: Path) -> subprocess.Popen:
    """stunnel serving TLS on ``accept`` with ``cert``, relaying in the clear to ``connect``."""
    conf = directory / "stunnel.conf"
    conf.write_text(
        "foreground = yes\npid =\n"
        f"output = {directory / 'stunnel.log'}\n"
        "[kafka]\n"
        f"accept = 127.0.0.1:{accept}\nconnect = 127.0.0.1:{connect}\n"
        f"cert = {cert}\nkey = {key}\n"
    )
    return subprocess.Popen([stunnel, str(conf)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, start_new_session=True)


def refused_worker(env: dict[str, str], log_path: Path) -> tuple[int, str]:
    """Start a worker that the broker will not let in; its exit code and its log."""
    from bridge.tools.demo import WorkerProcess

    worker = WorkerProcess.start(env, log_path)
    try:
        code = worker.process.wait(timeout=90)
    finally:
        worker.stop()
    return code, log_path.read_text(errors="replace")


@dataclass
class TlsBroker:
    """tansu on a loopback port, reached only through stunnel's TLS port."""

    directory: Path
    stunnel: str

    def start(self) -> TlsBroker:
        self.ca, cert, key = make_ca_and_server(self.directory)
        self.plain_port, self.tls_port = free_port(), free_port()
        self._tansu = start_tansu(self.directory, self.plain_port, self.tls_port)
        self._stunnel = start_stunnel(self.stunnel, self.directory, self.tls_port, self.plain_port, cert, key)
        self._wait_ready(time.monotonic() + 30.0)
        return self

    def _wait_ready(self, deadline: float) -> None:
        """Until a client over TLS lists the topics (the broker advertises the TLS port, so a
        plaintext probe of the inner port would be sent on to the TLS one and fail)."""
        settings = Settings(broker_url=self.url, kafka_security_protocol="SSL", kafka_ssl_cafile=self.ca)
        while True:
            try:
                with open_admin(settings, 2.0) as admin:
                    admin.list_topics()
                return
            except BrokerUnavailable:
                if time.monotonic() > deadline or self._tansu.poll() is not None or self._stunnel.poll() is not None:
                    raise
                time.sleep(0.2)

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.tls_port}"

    def stop(self) -> None:
        for process in (getattr(self, "_stunnel", None), getattr(self, "_tansu", None)):
            if process is not None:
                stop_process(process, 5.0)


@dataclass
class SaslBroker:
    """tansu on a loopback port, reached only through a SASL/SCRAM gate (and, with ``stunnel``,
    over TLS in front of the gate: SASL_SSL).

    ``users`` maps usernames to passwords; tansu advertises the outermost port.
    """

    directory: Path
    users: dict[str, str]
    stunnel: str | None = None

    def start(self) -> SaslBroker:
        self.directory.mkdir(parents=True, exist_ok=True)
        plain_port, gate_port = free_port(), free_port()
        self.port = gate_port
        if self.stunnel:
            self.ca, cert, key = make_ca_and_server(self.directory, "sasl")
            self.port = free_port()
        self._tansu = start_tansu(self.directory, plain_port, self.port)
        self.gate = SaslGate(gate_port, plain_port, self.users).start()
        self._stunnel = None
        if self.stunnel:
            self._stunnel = start_stunnel(self.stunnel, self.directory, self.port, gate_port, cert, key)
        deadline = time.monotonic() + 30.0
        user, password = next(iter(self.users.items()))
        while True:
            try:
                with open_admin(self.settings(user, password), 2.0) as admin:
                    admin.list_topics()
                return self
            except BrokerUnavailable:
                if time.monotonic() > deadline or self._tansu.poll() is not None:
                    raise
                time.sleep(0.2)

    @property
    def protocol(self) -> str:
        return "SASL_SSL" if self.stunnel else "SASL_PLAINTEXT"

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    def settings(self, user: str, password: str, mechanism: str = "SCRAM-SHA-512", **changes) -> Settings:
        extra = {"kafka_ssl_cafile": self.ca} if self.stunnel else {}
        return Settings(broker_url=self.url, kafka_security_protocol=self.protocol, kafka_sasl_mechanism=mechanism,
                        kafka_sasl_username=user, kafka_sasl_password=password, **extra, **changes)

    def stop(self) -> None:
        for process in (self._stunnel, self._tansu):
            if process is not None:
                stop_process(process, 5.0)
        self.gate.stop()
