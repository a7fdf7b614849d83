"""Recovery commands: ``bridge republish``.

After a broker or an output topic was lost (the embedded broker keeps everything in memory; a
Kafka cluster can be rebuilt empty), or for a new subscriber that wants the whole state, the
current state of every credit record and identity is queued in the outbox, page by page, and the
running workers publish it. It is safe beside them: the outbox always publishes a key's current
state under a lock on it, so an older state can never land after a newer one, and a subscriber
that already holds a version ignores the same version again.
"""

from __future__ import annotations

import argparse
import sys
import time

from bridge.settings import Settings
from bridge.store.uow import UnitOfWorkFactory
from topics import catalogue

#: Keys queued per transaction: small enough not to hold the workers' outbox claims for long.
PAGE = 5_000


def register(sub: argparse._SubParsersAction) -> None:
    republish = sub.add_parser(
        "republish",
        help="queue the current state of every credit record and identity for the workers to publish again",
        description="Reads BRIDGE_DATABASE_URL. Queues every live credit record and every learner identity "
        "(merged ones with their redirect) in the outbox; running workers publish them. Use it after an "
        "output topic or the broker was lost, or for a new subscriber.",
    )
    republish.add_argument(
        "--topic", choices=[catalogue.CREDIT_RECORDS.name, catalogue.LEARNER_IDENTITIES.name], action="append",
        help="only this topic (repeatable; default: both)",
    )
    republish.add_argument("--page", type=int, default=PAGE, help=f"keys per transaction (default {PAGE})")
    republish.set_defaults(fn=cmd_republish)


def cmd_republish(args: argparse.Namespace) -> int:
    from bridge.bootstrap import build_units

    settings = Settings()
    units = build_units(settings)
    topics = args.topic or [catalogue.LEARNER_IDENTITIES.name, catalogue.CREDIT_RECORDS.name]
    started = time.monotonic()
    try:
        for topic in topics:
            queued = republish(units, topic, max(args.page, 1))
            print(f"queued {queued} keys of {topic}", file=sys.stderr)
    finally:
        units.engine.dispose()
    print(f"done in {time.monotonic() - started:.1f} s; the running workers publish them "
          "(watch bridge_messages_published_total)", file=sys.stderr)
    return 0


def republish(units: UnitOfWorkFactory, topic: str, page: int) -> int:
    """Queue every current key of ``topic``, one unit of work (of writer ``units``) per page;
    returns how many."""
    after, queued = None, 0
    while True:
        with units() as uow:
            keys = uow.outbox.current_keys(topic, after, page)
            uow.outbox.enqueue_many(topic, keys)
        if not keys:
            return queued
        queued += len(keys)
        after = keys[-1]
        print(f"  {topic}: {queued} queued", file=sys.stderr)
