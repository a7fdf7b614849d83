"""Shared fixtures of the integration tests: a real (embedded) broker, and a whole bridge."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bridge.tools.broker import EmbeddedBroker
from tests.integration.harness import Bridge


@pytest.fixture(scope="module")
def embedded_broker() -> Iterator[EmbeddedBroker]:
    """A tansu broker of the test module's own, stopped after the module's last test."""
    with EmbeddedBroker() as broker:
        yield broker


@pytest.fixture
def bridge(tmp_path, database_url) -> Iterator[Bridge]:
    """A bridge of the test's own (broker, topics, database) on each backend; workers are started by the test."""
    b = Bridge(tmp_path, database_url)
    try:
        yield b
    finally:
        b.close()
