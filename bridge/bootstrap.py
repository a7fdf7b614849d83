"""The one place that wires the bridge together from settings. No I/O happens at import time."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

import adapters
from bridge.core.courses import load_equivalences
from bridge.core.pseudonym import Pseudonymiser
from bridge.metrics import Metrics
from bridge.pipeline import Pipeline
from bridge.settings import Settings
from bridge.store.engine import build_engine, upgrade


@dataclass
class Runtime:
    """Everything a worker or a command needs, built once."""

    settings: Settings
    engine: Engine
    pipeline: Pipeline
    metrics: Metrics


def build_pseudonymiser(settings: Settings) -> Pseudonymiser:
    return Pseudonymiser.from_secret(
        settings.pseudonym_key.get_secret_value(),
        settings.pseudonym_key_id,
        tuple(old.get_secret_value() for old in settings.pseudonym_previous_keys),
    )


def build_runtime(
    settings: Settings, *, registry: CollectorRegistry | None = None, migrate: bool = True
) -> Runtime:
    """Load reference data (fails fast on a bad equivalence table), open the database, migrate."""
    course_keys = load_equivalences(str(settings.course_equivalences) if settings.course_equivalences else None)
    engine = build_engine(settings.database_url)
    if migrate:
        upgrade(engine)
    pipeline = Pipeline(
        engine,
        adapters.PARSERS,
        build_pseudonymiser(settings),
        course_keys,
        settings.hours_per_credit,
    )
    return Runtime(settings, engine, pipeline, Metrics(registry or CollectorRegistry()))
