"""A console over a registry made by the real pipeline (review cases and simulated traffic),
with operators, their signing keys, and a producer that records what would be published."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest.mock import create_autospec

import uvicorn
from kafka import KafkaProducer
from starlette.testclient import TestClient

from bridge.console.app import build_console
from bridge.console.auth import hash_password
from bridge.settings import Settings
from tests.operators import write_keys

PASSWORD = "correct horse battery staple"
#: Keys of the platforms' messages whose values are personal (names, phones, documents).
PERSONAL_KEYS = {"number", "full_name", "phone", "idCardNo", "name", "mobile", "idNumber", "mbox", "orgName"}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
NONCE = re.compile(r'name="nonce" value="([0-9a-f]{32})"')


def personal_values(messages: list[bytes]) -> set[str]:
    """Every personal value in ``messages`` (and its digits alone), for checking that no page shows one."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in PERSONAL_KEYS and isinstance(value, str) and len(value) >= 2:
                    found.add(value)
                    digits = re.sub(r"\D", "", value)
                    if len(digits) >= 8:
                        found.add(digits)
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for raw in messages:
        try:
            walk(json.loads(raw))
        except ValueError:
            continue
    return found


def write_operators(path: Path, **roles: str) -> Path:
    hashed = hash_password(PASSWORD)  # one hash for all: scrypt is slow on purpose
    path.write_text("# test operators\n" + "".join(f"{name} {role} {hashed}\n" for name, role in roles.items()))
    return path


@dataclass
class Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class ConsoleUnderTest:
    client: TestClient
    clock: Clock
    producer: Any
    settings: Settings
    sent: list[dict] = field(default_factory=list)

    def sign_in(self, operator: str, password: str = PASSWORD) -> Any:
        page = self.client.get("/signin")
        token = CSRF.search(page.text).group(1)
        return self.client.post("/signin", data={"operator": operator, "password": password, "csrf": token},
                                follow_redirects=False)

    def csrf(self, path: str = "/queue") -> str:
        return CSRF.search(self.client.get(path).text).group(1)

    def decisions(self) -> list[dict]:
        return [json.loads(call.kwargs["value"]) for call in self.producer.send.call_args_list]


def console_for(tmp_path: Path, database_url: str, **settings: Any) -> ConsoleUnderTest:
    """A console on ``database_url`` with the test operators; ``settings`` add to or replace its settings."""
    trust, keys = write_keys(tmp_path / "operators")
    if "console_operators" not in settings:
        settings["console_operators"] = write_operators(
            tmp_path / "console-operators", **{"op-17": "reviewer", "op-3": "viewer", "operator-7": "reviewer"})
    config = Settings(**{"database_url": database_url, "broker_url": "kafka://127.0.0.1:9", "operator_keys": trust,
                         "console_signing_keys": keys["op-17"].parent, **settings})
    clock = Clock()
    app = build_console(config, clock=clock)
    producer = create_autospec(KafkaProducer, instance=True)
    app.state.console._producer = producer
    return ConsoleUnderTest(TestClient(app, base_url="http://console.test"), clock, producer, config)


@contextlib.contextmanager
def serving(app: Any, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """``app`` (ASGI) served by uvicorn on a loopback address (a free port unless given) in a
    thread: its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def empty_registry(directory: Path) -> str:
    """The URL of a migrated, empty SQLite registry in ``directory``."""
    from bridge.store.engine import build_engine, upgrade

    url = f"sqlite:///{directory / 'empty.db'}"
    engine = build_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    return url
