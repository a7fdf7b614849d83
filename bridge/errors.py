"""The package's exceptions: one root, subclasses that carry data, and the exit codes they map to.

Every command ends with one line saying what is wrong and what to do, and an exit code that says
which kind of problem it was (``bridge --help`` and docs/operations.md list them). The codes are
defined here once; ``bridge.cli.main`` maps an exception to its class's :attr:`BridgeError.exit_code`.
"""

from __future__ import annotations

from typing import ClassVar

#: Done; for ``topics apply --check``: every topic is as the catalogue says.
EXIT_OK = 0
#: ``topics apply --check`` found topics that differ or are missing. An unexpected error (a bug,
#: shown with its traceback) also ends with 1, Python's own code.
EXIT_FAILED = 1
#: Usage: the command line is wrong (argparse's own code), or names something that does not exist
#: (an unknown topic, review item or learner) or asks for what cannot be done.
EXIT_USAGE = 2
#: A worker overran its shutdown bound and exited without committing what was not durable.
EXIT_SHUTDOWN_OVERRUN = 3
#: A worker or command stopped on a fatal condition (the registry was replaced or is gone).
EXIT_FATAL = 4
#: Configuration: a setting is unknown, cannot be parsed, or names something unusable (a file
#: that cannot be read, a key the broker refuses, a database URL that is not one).
EXIT_CONFIG = 5
#: A dependency is unavailable: the Kafka broker or the database did not answer (or is not there).
EXIT_UNAVAILABLE = 6
#: Data: what was read is not what it should be (a published value that does not parse, a broken
#: merge chain); retrying will not help, the data must be looked at.
EXIT_DATA = 7
#: Interrupted (Ctrl-C): 128 + SIGINT, as shells report it.
EXIT_INTERRUPTED = 130
#: The reader of standard output went away (``bridge tail | head``): 128 + SIGPIPE, as shells
#: report a command killed by SIGPIPE. Nothing is printed.
EXIT_BROKEN_PIPE = 141

#: ``(code, meaning)`` for ``bridge --help`` and the documentation.
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (EXIT_OK, "done"),
    (EXIT_FAILED, "`topics apply --check` found differences; or an unexpected error (with a traceback)"),
    (EXIT_USAGE, "usage: a wrong command line, or something named that does not exist"),
    (EXIT_SHUTDOWN_OVERRUN, "a worker overran BRIDGE_SHUTDOWN_TIMEOUT_S (exited without committing)"),
    (EXIT_FATAL, "fatal: the registry was replaced or is gone (docs/runbook.md)"),
    (EXIT_CONFIG, "configuration: an unknown, unparsable or unusable setting"),
    (EXIT_UNAVAILABLE, "unavailable: the Kafka broker or the database did not answer"),
    (EXIT_DATA, "data: something read is not what it should be"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"),
    (EXIT_BROKEN_PIPE, "the reader of the output went away (`| head`); nothing printed"),
)


class BridgeError(Exception):
    """Root of every error the bridge raises on purpose.

    Its message is one line saying what is wrong and what to do. Not otherwise classified, it is
    a usage error: what the command was asked cannot be done as asked.
    """

    exit_code: ClassVar[int] = EXIT_USAGE


class UsageError(BridgeError):
    """The command line asks for something that cannot be done (an unknown item, a bad value)."""


class DataError(BridgeError):
    """What was read (a message, a published value, a stored row) is not what it should be."""

    exit_code: ClassVar[int] = EXIT_DATA


class BadInput(DataError):
    """A message that cannot be turned into a canonical event.

    ``reason`` is a sentence an operator can act on. It names fields, never their values, so it
    can go to the dead-letter topic and the logs without leaking personal data.
    """

    def __init__(self, reason: str, *, code: str = "invalid") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class ConfigurationError(BridgeError):
    """Settings or reference data that stop the bridge from starting (with what to fix)."""

    exit_code: ClassVar[int] = EXIT_CONFIG


class EquivalenceTableError(ConfigurationError):
    """The course-equivalence CSV is malformed; ``line`` is the 1-based line number."""

    def __init__(self, path: str, line: int, problem: str) -> None:
        super().__init__(f"{path}, line {line}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem


class DependencyUnavailable(BridgeError):
    """A service the bridge needs (the Kafka broker, the database) did not answer or is not there."""

    exit_code: ClassVar[int] = EXIT_UNAVAILABLE


class DatabaseUnavailable(DependencyUnavailable):
    """The database at ``BRIDGE_DATABASE_URL`` did not answer, or (SQLite) its file does not exist."""


class FatalError(BridgeError):
    """A condition under which the worker must stop rather than retry: going on would corrupt
    what it publishes. The message says what the operator should do."""

    exit_code: ClassVar[int] = EXIT_FATAL


class RegistryChanged(FatalError):
    """The database the worker writes to is not the one it started with (deleted, replaced, or
    emptied under it)."""


def exit_code_of(exc: BaseException) -> int:
    """The exit code a command ends with after ``exc``."""
    return exc.exit_code if isinstance(exc, BridgeError) else EXIT_FAILED
