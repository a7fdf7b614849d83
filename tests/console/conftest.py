"""A registry with review items, made once per module by the real pipeline."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bridge.bootstrap import build_runtime
from bridge.pipeline import Inbound
from bridge.settings import Settings
from bridge.tools import simulate


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Iterator[tuple[str, list[bytes]]]:
    """A SQLite registry fed with simulated traffic and the review cases: ``(url, raw messages)``."""
    path = tmp_path_factory.mktemp("registry") / "bridge.db"
    url = f"sqlite:///{path}"
    runtime = build_runtime(Settings(database_url=url))
    messages, _ = simulate.generate(300, seed=5)
    messages = [*messages, *simulate.review_cases()]
    runtime.pipeline.process([Inbound(m.topic, 0, i, m.key, m.value) for i, m in enumerate(messages)])
    runtime.engine.dispose()
    yield url, [m.value for m in messages]
