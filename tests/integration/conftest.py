"""Shared fixtures of the integration tests: a real (embedded) broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bridge.broker import EmbeddedBroker


@pytest.fixture(scope="module")
def embedded_broker() -> Iterator[EmbeddedBroker]:
    """A tansu broker of the test module's own, stopped after the module's last test."""
    with EmbeddedBroker() as broker:
        yield broker
