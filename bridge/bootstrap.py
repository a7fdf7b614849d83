"""The one place that wires the bridge together from settings. No I/O happens at import time."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

import adapters
from bridge.core.courses import load_equivalences
from bridge.core.pseudonym import Pseudonymiser
from bridge.core.sealing import Sealer
from bridge.core.signing import TrustedKeys
from bridge.metrics import Metrics
from bridge.pipeline import Pipeline
from bridge.settings import Settings
from bridge.store.engine import build_engine, upgrade
from bridge.store.guard import RegistryGuard, RegistryMissing, ensure_registry_id, registry_state
from bridge.store.uow import UnitOfWorkFactory
from topics import catalogue

log = logging.getLogger(__name__)


def trusted_keys(settings: Settings) -> TrustedKeys:
    """The operators' public keys decisions must be signed by (a malformed file stops start-up)."""
    keys = TrustedKeys.load(settings.operator_keys)
    if keys:
        log.info("trusting %d operator key(s) of %d operator(s) for decisions", len(keys), len(keys.operators()))
    else:
        log.warning("no operator keys are trusted (BRIDGE_OPERATOR_KEYS is unset or empty): every operator "
                    "decision will be dead-lettered as decision_unverified; see docs/operations.md, operator keys")
    return keys


@dataclass
class Runtime:
    """Everything a worker or a command needs, built once."""

    settings: Settings
    engine: Engine
    units: UnitOfWorkFactory
    """Writer units of work on ``engine`` (the outbox claims); ``units.reader()`` for reads."""
    pipeline: Pipeline
    metrics: Metrics
    guard: RegistryGuard | None = None
    """Checks every writer transaction against the registry the worker started with."""


def build_pseudonymiser(settings: Settings) -> Pseudonymiser:
    return Pseudonymiser.from_secret(
        settings.pseudonym_key.get_secret_value(),
        settings.pseudonym_key_id,
        tuple(old.get_secret_value() for old in settings.pseudonym_previous_keys),
    )


def build_sealer(settings: Settings) -> Sealer:
    """The dead-letter sealer: seals under the configured key, opens under it and the retired ones."""
    return Sealer.from_secret(
        settings.deadletter_key.get_secret_value(),
        settings.deadletter_key_id,
        tuple(old.get_secret_value() for old in settings.deadletter_previous_keys),
    )


def build_runtime(
    settings: Settings, *, registry: CollectorRegistry | None = None, migrate: bool = True
) -> Runtime:
    """Load reference data (fails fast on a bad equivalence table), open the database, migrate.

    With ``migrate``, a database without a registry is created and migrated only on a first
    start (see :func:`prepare_registry`). The writer transactions of the engine are then checked
    by a :class:`RegistryGuard` against the registry found now.
    """
    for warning in settings.transport_warnings():
        log.warning("%s", warning)
    course_keys = load_equivalences(str(settings.course_equivalences) if settings.course_equivalences else None)
    # Never creates the SQLite file by itself: only the migration of a first start does.
    engine = build_engine(settings.database_url, create=False)
    guard = None
    if migrate:
        prepare_registry(settings, engine)
    if migrate or registry_state(engine).registry_id is not None:
        guard = RegistryGuard.capture(engine, group_id=settings.group_id)
        guard.install(engine)
        log.info("registry %s at %s", guard.registry_id, guard.url)
    units = UnitOfWorkFactory(engine)
    pipeline = Pipeline(
        # Two workers resolving the same learners must not both decide on a view without the
        # other's evidence: the batches are SERIALIZABLE on PostgreSQL.
        units.writer(serializable=True),
        adapters.parsers(),
        build_pseudonymiser(settings),
        course_keys,
        settings.hours_per_credit,
        max_shared_evidence=settings.max_shared_evidence,
        trusted_keys=trusted_keys(settings),
        sealer=build_sealer(settings),
    )
    return Runtime(settings, engine, units, pipeline, Metrics(registry or CollectorRegistry()), guard)


def build_units(settings: Settings) -> UnitOfWorkFactory:
    """Writer units of work on the configured database, for a command (``.reader()`` for one that
    only reads); never creates a SQLite file, never migrates. The caller disposes ``.engine``."""
    return UnitOfWorkFactory(build_engine(settings.database_url, create=False))


def prepare_registry(settings: Settings, engine: Engine) -> None:
    """Migrate the registry at ``engine`` to head, creating it only on a first start.

    A database without a registry (no file, no schema, or a schema without its registry id)
    while the consumer group already has committed offsets on the input topics is refused with
    :class:`RegistryMissing`: the registry those offsets belong to was lost or this is the wrong
    database, and starting would restart identities and record versions. Without committed
    offsets (or without a broker to ask) it is a first start: the registry is created. A schema
    from before registry ids is a registry all the same and is upgraded.
    """
    state = registry_state(engine)
    if not state.is_registry and settings.broker_url:
        from bridge.tools.admin import committed_offsets

        offsets = committed_offsets(settings, (t.name for t in catalogue.INPUT_TOPICS))
        if offsets:
            topics = sorted({topic for topic, _ in offsets})
            partitions = f"{len(offsets)} input partition{'s' if len(offsets) != 1 else ''}"
            raise RegistryMissing(
                f"refusing to start: the database at {state.url} holds no registry ({state.describe()}), but consumer group "
                f"{settings.group_id} has committed offsets on {partitions} ({', '.join(topics)}), "
                "so the registry they belong to is gone or this is the wrong database. Restore the database; or run "
                "`bridge db upgrade` to create a fresh registry deliberately, and reset the group's offsets on the "
                "input topics to replay the input into it."
            )
    upgrade(engine)
    registry_id, made = ensure_registry_id(engine)
    if not state.is_registry:
        log.info("created registry %s at %s (%s before)", registry_id, state.url, state.describe())
    elif made:
        log.info("made registry id %s at %s", registry_id, state.url)
