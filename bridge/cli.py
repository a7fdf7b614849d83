"""The ``bridge`` command: worker, topics, simulate, demo, db."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence

from kafka import errors as kafka_errors
from pydantic import ValidationError

from bridge.admin import kafka_failure, watch_refusals
from bridge.errors import BridgeError, FatalError
from bridge.observability import scrub_secrets
from bridge.settings import Settings
from bridge.topicio import quiet_kafka_close

log = logging.getLogger("bridge")

#: Modules that add their own subcommands: each has ``register(subparsers)``, which adds parsers
#: whose ``fn`` default takes the parsed arguments and returns the exit code.
COMMAND_MODULES: tuple[str, ...] = ("bridge.commands.identity", "bridge.commands.subscriber", "bridge.commands.recovery", "bridge.commands.deadletters")


@contextlib.contextmanager
def broker_for(settings: Settings, *, purpose: str) -> Iterator[Settings]:
    """``settings`` with a broker: the configured one, or an embedded one started for ``purpose``."""
    if settings.broker_url:
        yield settings
        return
    from bridge.admin import apply_topics
    from bridge.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        print(f"BRIDGE_BROKER_URL is not set: started the embedded broker at {broker.url} for {purpose}", file=sys.stderr)
        embedded = settings.with_overrides(broker_url=broker.url)
        apply_topics(embedded)
        yield embedded


def cmd_worker(args: argparse.Namespace) -> int:
    from bridge.admin import check_broker
    from bridge.bootstrap import build_runtime
    from bridge.worker import BridgeWorker, build_app, tune_gc

    from bridge.observability import configure_logging

    settings = Settings()
    configure_logging(settings.log_level)
    with broker_for(settings, purpose="this worker (in memory: its topics vanish when it stops)") as settings:
        # Faust's client retries a refused password or certificate for ever: say so and stop.
        check_broker(settings)
        runtime = build_runtime(settings)
        app = build_app(runtime)
        worker = BridgeWorker(
            app,
            shutdown_timeout_s=settings.shutdown_timeout_s,
            loglevel=settings.log_level.lower(),
            quiet=True,
            redirect_stdouts=False,
        )
        tune_gc()
        try:
            worker.execute_from_commandline()
        except SystemExit as exc:
            return int(exc.code or 0)
        finally:
            app.bridge_worker.close()  # type: ignore[attr-defined]
    return 0


def cmd_topics_apply(args: argparse.Namespace) -> int:
    from bridge.admin import apply_topics, format_report

    settings = Settings()
    if not settings.broker_url:
        raise BridgeError("set BRIDGE_BROKER_URL to the Kafka bootstrap whose topics should be applied")
    reports = apply_topics(settings, create=not args.check)
    print(format_report(reports))
    return 1 if any(r.action in ("differs", "missing") for r in reports) else 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from bridge.demo import produce_simulation, write_equivalences

    settings = Settings()
    if not settings.broker_url:
        raise BridgeError("set BRIDGE_BROKER_URL to the broker to send to, or run `bridge demo` for everything at once")
    if args.equivalences_out:
        write_equivalences(args.equivalences_out)
        print(f"wrote the simulated course-equivalence table to {args.equivalences_out}")
    produce_simulation(settings, count=args.count, seed=args.seed, rate=args.rate)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from bridge.demo import run_demo

    return run_demo(count=args.count, seed=args.seed, rate=args.rate, workdir=args.workdir)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from bridge.store.engine import build_engine, current_revision, upgrade
    from bridge.store.guard import ensure_registry_id, registry_state
    from topics.catalogue import INPUT_TOPICS

    settings = Settings()
    engine = build_engine(settings.database_url, create=False)
    try:
        before = registry_state(engine)
        upgrade(engine)
        registry_id, _made = ensure_registry_id(engine)
        print(f"database {before.url}: schema at revision {current_revision(engine)}, registry {registry_id}")
        if not before.is_registry:
            print(
                f"created a fresh registry ({before.describe()} before): if consumer group {settings.group_id} has "
                "committed offsets on the input topics, reset them to replay the input into it, e.g. "
                f"kafka-consumer-groups.sh --bootstrap-server $KAFKA --group {settings.group_id} --reset-offsets "
                "--to-earliest " + " ".join(f"--topic {t.name}" for t in INPUT_TOPICS) + " --execute"
            )
    finally:
        engine.dispose()
    return 0


DB_UPGRADE_HELP = """\
Create or migrate the identity registry and credit ledger at BRIDGE_DATABASE_URL to the newest
schema, then print its revision and registry id.

Workers migrate an existing registry when they start, and create one on a first start (no
committed offsets of their consumer group). When the registry is gone but the group has
committed offsets, a worker refuses to start; running this command then creates a fresh, empty
registry deliberately. Reset the group's offsets on the input topics afterwards, so the input is
replayed into it: otherwise learner identities and record versions start again from nothing.
Restoring the lost database from a backup is the other way out (docs/operations.md, Restoring).
"""

#: Exit code of a command that stopped on a FatalError (the registry changed or is gone): the same as
#: ``bridge.worker.FATAL_EXIT``, not imported from there to keep Faust out of the other commands.
FATAL_EXIT = 4


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bridge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("worker", help="run a stream worker (settings from BRIDGE_* variables)").set_defaults(fn=cmd_worker)

    topics = sub.add_parser("topics", help="the topic catalogue on the configured broker")
    topics_sub = topics.add_subparsers(dest="topics_command", required=True)
    apply = topics_sub.add_parser("apply", help="create missing topics and report ones that differ")
    apply.add_argument("--check", action="store_true", help="only report, create nothing")
    apply.set_defaults(fn=cmd_topics_apply)

    def traffic_options(p: argparse.ArgumentParser, count: int) -> None:
        p.add_argument("--count", type=int, default=count, help="messages to send (default %(default)s)")
        p.add_argument("--seed", type=int, default=7, help="random seed; the same seed sends the same bytes")
        p.add_argument("--rate", type=float, default=None, help="messages per second (default: as fast as possible)")

    simulate = sub.add_parser("simulate", help="send simulated traffic of both platforms to the broker")
    traffic_options(simulate, 10_000)
    simulate.add_argument("--equivalences-out", help="also write the matching course-equivalence CSV here")
    simulate.set_defaults(fn=cmd_simulate)

    demo = sub.add_parser("demo", help="embedded broker + worker + simulated traffic, then a summary")
    traffic_options(demo, 5_000)
    demo.add_argument("--workdir", default="var/demo", help="where the demo keeps its database and logs")
    demo.set_defaults(fn=cmd_demo)

    db = sub.add_parser("db", help="the identity registry and credit ledger")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser(
        "upgrade",
        help="create or migrate the registry to the newest schema",
        description=DB_UPGRADE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).set_defaults(fn=cmd_db_upgrade)

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kafka-python narrates every connection at INFO, and logs each failed attempt (a refused
    # certificate, a reset connection) with a traceback, again and again until its timeout: the
    # tools end with one line saying what is wrong instead. BRIDGE_LOG_LEVEL=DEBUG shows it all.
    debug = os.environ.get("BRIDGE_LOG_LEVEL", "").upper() == "DEBUG"
    logging.getLogger("kafka").setLevel(logging.DEBUG if debug else logging.CRITICAL)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    scrub_secrets()
    watch_refusals()
    quiet_kafka_close()
    started = time.monotonic()
    try:
        return args.fn(args)
    except FatalError as exc:
        print(f"bridge: {exc}", file=sys.stderr)
        return FATAL_EXIT
    except (BridgeError, ValidationError) as exc:
        print(f"bridge: {exc}", file=sys.stderr)
        return 2
    except kafka_errors.KafkaError as exc:
        # A tool's own client gave up (kafka-python's timeout): say what to check, in one line.
        print(f"bridge: {kafka_failure(exc, started)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
