"""The ``bridge`` command: worker, topics, simulate, demo, db."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from importlib import metadata

from kafka import errors as kafka_errors
from pydantic import ValidationError
from pydantic_settings import SettingsError
from sqlalchemy.exc import SQLAlchemyError

from bridge.tools.connection import kafka_failure, watch_refusals
from bridge.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_CODES,
    EXIT_FATAL,
    EXIT_INTERRUPTED,
    BridgeError,
    UsageError,
)
from bridge.observability import scrub_secrets
from bridge.settings import Settings, broker_settings, settings_problem, variables_for
from bridge.tools.topicio import quiet_kafka_close

log = logging.getLogger("bridge")

#: Modules that add their own subcommands: each has ``register(subparsers)``, which adds parsers
#: whose ``fn`` default takes the parsed arguments and returns the exit code.
COMMAND_MODULES: tuple[str, ...] = (
    "bridge.commands.identity",
    "bridge.commands.subscriber",
    "bridge.commands.recovery",
    "bridge.commands.deadletters",
    "bridge.commands.backfill",
    "bridge.console.command",
)


@contextlib.contextmanager
def broker_for(settings: Settings, *, purpose: str) -> Iterator[Settings]:
    """``settings`` with a broker: the configured one, or an embedded one started for ``purpose``."""
    if settings.broker_url:
        yield settings
        return
    from bridge.tools.admin import apply_topics
    from bridge.tools.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        print(f"BRIDGE_BROKER_URL is not set: started the embedded broker at {broker.url} for {purpose}", file=sys.stderr)
        embedded = settings.with_overrides(broker_url=broker.url)
        apply_topics(embedded)
        yield embedded


def cmd_worker(args: argparse.Namespace) -> int:
    from bridge.tools.connection import check_broker
    from bridge.bootstrap import build_runtime
    from bridge.stream.shutdown import BridgeWorker
    from bridge.stream.tuning import tune_gc
    from bridge.worker import build_app

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
    from bridge.tools.admin import apply_topics, format_report

    settings = broker_settings("the Kafka bootstrap whose topics should be applied")
    reports = apply_topics(settings, create=not args.check)
    print(format_report(reports))
    return 1 if any(r.action in ("differs", "missing") for r in reports) else 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from bridge.tools.demo import produce_simulation, write_equivalences

    settings = broker_settings("the broker to send to, or run `bridge demo` for everything at once")
    if args.equivalences_out:
        write_equivalences(args.equivalences_out)
        print(f"wrote the simulated course-equivalence table to {args.equivalences_out}")
    produce_simulation(settings, count=args.count, seed=args.seed, rate=args.rate)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from bridge.tools.demo import run_demo

    return run_demo(count=args.count, seed=args.seed, rate=args.rate, workdir=args.workdir, keep=args.keep)


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
#: ``bridge.stream.retry.FATAL_EXIT``; both come from ``bridge.errors`` (which keeps Faust out of the commands).
FATAL_EXIT = EXIT_FATAL

#: The settings (environment variables) each command reads, as patterns over the variables of
#: :class:`Settings`; shown at the end of the command's ``--help``. ``BRIDGE_LOG_LEVEL=DEBUG``
#: shows the Kafka client's own log for every command.
_KAFKA = ("BRIDGE_BROKER_URL", "BRIDGE_KAFKA_*")
COMMAND_SETTINGS: dict[str, tuple[str, ...]] = {
    "worker": ("BRIDGE_*",),
    "topics apply": (*_KAFKA, "BRIDGE_TOPIC_PARTITIONS", "BRIDGE_REPLICATION_FACTOR"),
    "simulate": _KAFKA,
    "demo": (),
    "db upgrade": ("BRIDGE_DATABASE_URL", "BRIDGE_GROUP_ID"),
    "review list": ("BRIDGE_DATABASE_URL",),
    "review show": ("BRIDGE_DATABASE_URL",),
    "review link": ("BRIDGE_DATABASE_URL", *_KAFKA, "BRIDGE_OPERATOR_SIGNING_KEY", "BRIDGE_OPERATOR_KEYS"),
    "review reject": ("BRIDGE_DATABASE_URL", *_KAFKA, "BRIDGE_OPERATOR_SIGNING_KEY", "BRIDGE_OPERATOR_KEYS"),
    "review keygen": (),
    "explain": ("BRIDGE_DATABASE_URL",),
    "tail": _KAFKA,
    "transcript": _KAFKA,
    "export": _KAFKA,
    "republish": ("BRIDGE_DATABASE_URL",),
    "backfill": ("BRIDGE_*",),
    "deadletters list": _KAFKA,
    "deadletters show": (*_KAFKA, "BRIDGE_DEADLETTER_KEY", "BRIDGE_DEADLETTER_KEY_ID", "BRIDGE_DEADLETTER_PREVIOUS_KEYS"),
    "deadletters replay": (*_KAFKA, "BRIDGE_DEADLETTER_KEY", "BRIDGE_DEADLETTER_KEY_ID", "BRIDGE_DEADLETTER_PREVIOUS_KEYS"),
    "console": ("BRIDGE_PROFILE", "BRIDGE_DATABASE_URL", *_KAFKA, "BRIDGE_OPERATOR_KEYS", "BRIDGE_CONSOLE_*",
                "BRIDGE_DEADLETTER_KEY", "BRIDGE_DEADLETTER_KEY_ID", "BRIDGE_DEADLETTER_PREVIOUS_KEYS"),
    "console adduser": ("BRIDGE_CONSOLE_OPERATORS",),
}
#: Said instead of a list by commands that read no setting.
_NO_SETTINGS = {
    "demo": "none: it runs its own embedded broker, database and worker",
    "review keygen": "none: it only writes a key file",
}


def settings_epilog(command: str) -> str | None:
    """The end of ``command``'s ``--help``: the settings it reads, or None for a command not in
    :data:`COMMAND_SETTINGS`."""
    if command not in COMMAND_SETTINGS:
        return None
    names = variables_for(*COMMAND_SETTINGS[command])
    if command == "worker":
        names = [n for n in names if n != "BRIDGE_OPERATOR_SIGNING_KEY"]
    elif names and "BRIDGE_LOG_LEVEL" not in names:
        names.append("BRIDGE_LOG_LEVEL")
    listed = ", ".join(names) if names else _NO_SETTINGS.get(command, "none")
    return textwrap.fill(
        f"Settings read (environment variables; docs/operations.md, Configuration): {listed}.", width=100
    )


def _leaf_parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """``(command path, parser)`` of every runnable command under ``parser``."""
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
    if not actions:
        yield " ".join(path), parser
        return
    for action in actions:
        for name, child in action.choices.items():
            yield from _leaf_parsers(child, (*path, name))


def exit_codes_epilog() -> str:
    lines = ["exit codes:"]
    lines += [f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES]
    lines.append("")
    lines.append(
        "Settings come from BRIDGE_* environment variables (docs/operations.md, Configuration); an unknown "
    )
    lines.append("BRIDGE_* variable stops every command. Each command's --help lists the settings it reads.")
    return "\n".join(lines)


def _version() -> str:
    try:
        return metadata.version("bridge")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bridge", description=__doc__, epilog=exit_codes_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
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

    simulate = sub.add_parser("simulate", help="send simulated traffic of every platform to the broker")
    traffic_options(simulate, 10_000)
    simulate.add_argument("--equivalences-out", help="also write the matching course-equivalence CSV here")
    simulate.set_defaults(fn=cmd_simulate)

    demo = sub.add_parser("demo", help="embedded broker + worker + simulated traffic, then a summary")
    traffic_options(demo, 5_000)
    demo.add_argument("--workdir", default="var/demo", help="where the demo keeps its database and logs")
    demo.add_argument("--keep", action="store_true",
                      help="keep the broker, worker and database up after the summary (until Ctrl-C), and print "
                      "the settings to export for trying the operators' commands on them")
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
    for command, leaf in _leaf_parsers(parser):
        epilog = settings_epilog(command)
        if epilog is not None and not leaf.epilog:
            leaf.epilog = epilog
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
    except BrokenPipeError:
        # The reader went away (`bridge tail | head`): nothing to say, and nothing more to write.
        _discard_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - what is not recognised goes on (with its traceback: a bug)
        problem = failure_of(exc, started)
        if problem is None:
            raise
        _say(problem)
        return problem.exit_code


def failure_of(exc: BaseException, started: float) -> BridgeError | None:
    """The one-line error a command ends with after ``exc`` (raised since ``started``), or None
    for an exception the bridge does not recognise."""
    if isinstance(exc, BridgeError):
        return exc
    if isinstance(exc, SettingsError) or (isinstance(exc, ValidationError) and exc.title == Settings.__name__):
        return settings_problem(exc)
    if isinstance(exc, ValidationError):
        # A model built from the command line (an operator id, a note) refused a value.
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or exc.title}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        )
        return UsageError(f"{problems} ({exc.title})")
    if isinstance(exc, kafka_errors.KafkaError):
        # A tool's own client gave up (its bounded timeout): say what to check, in one line.
        return kafka_failure(exc, started)
    if isinstance(exc, SQLAlchemyError):
        from bridge.store.engine import database_failure

        return database_failure(exc, _database_url())
    return None


def _database_url() -> str:
    try:
        return Settings().database_url
    except Exception:  # noqa: BLE001 - the settings were good enough to get this far
        return str(Settings.model_fields["database_url"].default)


def _say(problem: BridgeError) -> None:
    """Print ``problem`` as one line on stderr."""
    text = " | ".join(line.strip() for line in str(problem).splitlines() if line.strip())
    with contextlib.suppress(OSError, ValueError):
        print(f"bridge: {text}", file=sys.stderr, flush=True)


def _discard_stdout() -> None:
    """Point standard output at /dev/null, so that Python's flush at exit does not fail again."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
