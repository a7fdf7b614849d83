"""The signed decision path, shared by ``bridge review link|reject`` and the operators' console.

A decision is checked against the registry (the item is open, the learner is one of its
candidates), signed with the operator's own Ed25519 key (the workers apply only decisions signed
by a key they trust for the operator named in ``decided_by``), and published to
``bridge.decisions.v1``; the workers apply it through the same pipeline as every event. Nothing
is written to the database here. A decision is taken once per review item: the workers refuse a
second one (``decision_rejected``) and ignore the same decision id again, so a replayed request
changes nothing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bridge.core.decisions import DecisionAction, OperatorDecision
from bridge.core.records import AccountRef
from bridge.core.signing import TrustedKeys, key_id_of, load_private_key
from bridge.errors import BridgeError, ConfigurationError
from bridge.settings import Settings
from bridge.store.reviews import StoredReview
from bridge.store.uow import UnitOfWork
from topics.catalogue import DECISIONS


class NotDecidable(BridgeError):
    """The review item cannot take this decision (unknown, already decided, not a candidate)."""


@dataclass(frozen=True)
class DecisionRequest:
    """What an operator asks for: an action on a review item, with the learner of a link."""

    review_id: str
    action: DecisionAction
    learner: str | None = None
    note: str | None = None
    decision_id: str | None = None
    """Set by a caller that must make the same request idempotent (the console's form nonce)."""


def signing_key(key_file: Path | None, operator: str, trust_file: Path | None, *, variable: str) -> Ed25519PrivateKey:
    """The signing key of ``operator`` from ``key_file``, checked against the workers' trust file
    when it is at hand (a decision the workers would dead-letter is refused here)."""
    if key_file is None:
        raise ConfigurationError(
            f"set {variable} to your signing key file: the workers apply only signed "
            "decisions (make a key with `bridge review keygen`, see docs/operations.md, operator keys)"
        )
    private = load_private_key(key_file)
    if trust_file is not None:
        trusted = TrustedKeys.load(trust_file).get(key_id_of(private.public_key()))
        if trusted is None:
            raise ConfigurationError(
                "the signing key is not in BRIDGE_OPERATOR_KEYS: the workers would dead-letter the decision; "
                "ask for its public key to be added (`bridge review keygen` printed the line)"
            )
        if trusted.operator != operator:
            raise ConfigurationError(
                f"the signing key is trusted for operator {trusted.operator}, not {operator}: use --by {trusted.operator}"
            )
    return private


def review_of(uow: UnitOfWork, review_id: str) -> StoredReview:
    """The review item ``review_id``, or :class:`NotDecidable`."""
    review = uow.reviews.review(review_id)
    if review is None:
        raise NotDecidable(f"no review item {review_id}; `bridge review list` shows the open ones")
    return review


def prepare(uow: UnitOfWork, request: DecisionRequest, operator: str) -> OperatorDecision:
    """The unsigned decision for ``request`` by ``operator``, checked against the registry."""
    row = review_of(uow, request.review_id)
    if row.status != "open":
        raise NotDecidable(f"review {row.review_id} was already decided ({row.status} by {row.decided_by})")
    anchor = None
    if request.action is DecisionAction.LINK:
        if request.learner not in row.candidates:
            raise NotDecidable(
                f"{request.learner} is not a candidate of review {row.review_id}; candidates: {', '.join(row.candidates)}"
            )
        accounts = uow.identity.accounts_of(request.learner)
        if not accounts:
            raise NotDecidable(
                f"learner {request.learner} has no accounts any more (merged?); see `bridge explain {request.learner}`"
            )
        # The founding account, when the learner still has it, keeps pointing at the same
        # learner as evidence grows; any of its accounts would do.
        founder = next((k for k in accounts if k.learner_id == request.learner), accounts[0])
        anchor = AccountRef(platform=founder.platform, account=founder.account)
    return OperatorDecision(
        decision_id=request.decision_id or f"dc_{uuid.uuid4().hex}",
        review_id=row.review_id,
        action=request.action,
        account=AccountRef(platform=row.platform, account=row.account),
        anchor=anchor,
        decided_by=operator,
        decided_at=datetime.now(timezone.utc),
        note=request.note,
    )


def decide(
    uow: UnitOfWork, requests: Sequence[DecisionRequest], operator: str, private: Ed25519PrivateKey, prod: Any,
) -> list[OperatorDecision]:
    """Check every request (all or none: a :class:`NotDecidable` stops before anything is sent),
    sign each decision and publish them with producer ``prod``; returns what was published."""
    decisions = [prepare(uow, request, operator).signed_with(private) for request in requests]
    publish(prod, decisions)
    return decisions


def publish(prod: Any, decisions: Sequence[OperatorDecision]) -> None:
    """Publish signed ``decisions`` on the decisions topic with kafka-python producer ``prod``,
    keyed by review item; returns when the broker has acknowledged every one."""
    from kafka import errors as kafka_errors

    from bridge.tools.connection import kafka_failure
    from bridge.tools.topicio import SEND_TIMEOUT_S

    started = time.monotonic()
    try:
        futures = [
            prod.send(DECISIONS.name, key=d.review_id.encode(), value=d.model_dump_json().encode()) for d in decisions
        ]
        prod.flush(timeout=SEND_TIMEOUT_S)
        for future in futures:
            future.get(timeout=SEND_TIMEOUT_S)
    except kafka_errors.KafkaError as exc:
        # Any failure means the decision was not recorded: say so, and why (the broker, its credentials).
        failure = kafka_failure(exc, started)
        failure.args = (f"the decision was not published: {failure}; then try again",)
        raise failure from None


def decision_producer(settings: Settings) -> Any:
    """A producer of decisions on the configured broker (close it when done)."""
    from bridge.tools.topicio import producer

    if not settings.broker_url:
        raise ConfigurationError("set BRIDGE_BROKER_URL: decisions are published for the workers to apply")
    return producer(settings)
