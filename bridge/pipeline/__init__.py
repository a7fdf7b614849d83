"""The processing stage: a batch of raw messages in, committed effects and dead letters out.

A stream worker's batches go through here, and it knows nothing of Kafka or Faust, nor of SQL: it
is handed messages with their coordinates, parses them with the platform adapters, and in one unit
of work of the store (:mod:`bridge.store.uow`, injected by bootstrap) stores each event's fact and
identity evidence, re-resolves the identities whose evidence the batch changed (an event that shows
nothing new of its account re-resolves nothing), re-derives the credit records it touched, and
queues what changed for publication.

:class:`Pipeline` runs the stages in order, one module each:

- :mod:`~bridge.pipeline.messages`: parse and validate each message, dead-letter the bad ones;
- :mod:`~bridge.pipeline.contents`: one content per event id, against what is stored;
- :mod:`~bridge.pipeline.facts`: the rows of each kept event (fact, account, evidence);
- :mod:`~bridge.pipeline.decisions`: operators' signed decisions on review items;
- :mod:`~bridge.pipeline.identity`: re-resolve the accounts whose evidence changed, merge, raise
  reviews; place the other touched accounts as they are;
- :mod:`~bridge.pipeline.credits`: re-derive the touched credit records;

and :mod:`~bridge.pipeline.batch` holds what a batch carries between them. The rules that decide
outcomes are the core's (``bridge/core/``), the statements the store's repositories' (``bridge/store/``):
each stage reads and writes through them, passing what one repository holds to another itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from bridge.core.courses import CourseKeys
from bridge.core.decisions import OperatorDecision
from bridge.core.events import CanonicalEvent
from bridge.core.pseudonym import Pseudonymiser
from bridge.core.records import DeadLetter
from bridge.core.sealing import Sealer
from bridge.core.signing import TrustedKeys
from bridge.pipeline.batch import BatchResult, Touched
from bridge.pipeline.contents import prepare_events, settle_contents
from bridge.pipeline.credits import refresh_records
from bridge.pipeline.decisions import record_decisions
from bridge.pipeline.facts import Writes, record_events
from bridge.pipeline.identity import place_unchanged, refresh_identities, resolve_identities, retire_vanished
from bridge.pipeline.messages import Inbound, Parser, dead_letter, parse, parse_batch, poison_reason, utcnow
from bridge.settings import DEVELOPMENT_DEADLETTER_KEY
from bridge.store.uow import UnitOfWorkFactory

__all__ = ["BatchResult", "Inbound", "Parser", "Pipeline", "dead_letter", "utcnow"]


class Pipeline:
    """Processes batches of inbound messages; safe to call again with the same messages."""

    def __init__(
        self,
        units: UnitOfWorkFactory,
        parsers: Mapping[str, Parser],
        pseudonymiser: Pseudonymiser,
        course_keys: CourseKeys,
        hours_per_credit: float,
        clock: Callable[[], datetime] = utcnow,
        max_shared_evidence: int = 10,
        trusted_keys: TrustedKeys | None = None,
        sealer: Sealer | None = None,
    ) -> None:
        #: Opens the unit of work each batch runs in: bootstrap's writers, SERIALIZABLE on PostgreSQL.
        self.units = units
        #: Seals dead-letter payloads; by default under the development key (bootstrap passes the configured one).
        self.sealer = sealer if sealer is not None else Sealer.from_secret(DEVELOPMENT_DEADLETTER_KEY)
        #: The operators' keys decisions must be signed by; none: no decision is applied.
        self.trusted_keys = trusted_keys if trusted_keys is not None else TrustedKeys()
        self.parsers = parsers
        self.pseudonymiser = pseudonymiser
        self.course_keys = course_keys
        self.hours_per_credit = hours_per_credit
        self.clock = clock
        self.max_shared_evidence = max_shared_evidence

    def _dead_letter(self, msg: Inbound, reason: str, code: str, now: datetime) -> DeadLetter:
        return dead_letter(msg, reason, code, now, self.sealer)

    def parse(self, msg: Inbound) -> CanonicalEvent | OperatorDecision:
        return parse(msg, self.parsers)

    def probe(self) -> None:
        """A write transaction that changes nothing: raises when the database takes no writes now."""
        with self.units() as uow:
            uow.outbox.touch()

    def poisoned(self, msg: Inbound, exc: BaseException | None) -> BatchResult:
        """The result of a message that, alone, fails its batch for a reason other than a
        transient one: dead-lettered (``unprocessable``), nothing else changes."""
        result = BatchResult()
        cause = exc if exc is not None else RuntimeError("unknown")
        result.dead_letters.append((msg, self._dead_letter(msg, poison_reason(cause), "unprocessable", self.clock())))
        return result

    def process(self, batch: Sequence[Inbound]) -> BatchResult:
        """Process a batch in one transaction. Database errors propagate (nothing is committed)."""
        result = BatchResult()
        now = self.clock()
        sealer, pseudonymiser, max_shared = self.sealer, self.pseudonymiser, self.max_shared_evidence
        events, decisions = parse_batch(batch, self.parse, sealer, now, result)

        with self.units() as uow:
            touched = Touched()
            writes = Writes()
            prepared = prepare_events(events, pseudonymiser, sealer, now, result)
            plan = settle_contents(uow, prepared, pseudonymiser, self.course_keys, sealer, now, result)
            record_events(prepared, plan, touched, writes, result)
            # A retracted content goes before the content that replaces it is stored (same key).
            retraction = uow.contents.retract_facts(plan.retract, writes.accounts, max_shared)
            writes.apply(uow, touched, max_shared)
            plan.apply_to(uow, touched, retraction)
            record_decisions(uow, decisions, self.trusted_keys, sealer, touched, result, now)
            resolve_identities(uow, touched, result, max_shared)
            place_unchanged(uow, touched)
            retire_vanished(uow, touched, retraction, plan.winner_of)
            refresh_records(uow, touched, result, self.hours_per_credit)
            refresh_identities(uow, touched, result)
        return result
