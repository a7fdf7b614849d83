"""The package's exceptions: one root, subclasses that carry data."""

from __future__ import annotations


class BridgeError(Exception):
    """Root of every error the bridge raises on purpose."""


class BadInput(BridgeError):
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


class EquivalenceTableError(ConfigurationError):
    """The course-equivalence CSV is malformed; ``line`` is the 1-based line number."""

    def __init__(self, path: str, line: int, problem: str) -> None:
        super().__init__(f"{path}, line {line}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem


class FatalError(BridgeError):
    """A condition under which the worker must stop rather than retry: going on would corrupt
    what it publishes. The message says what the operator should do."""


class RegistryChanged(FatalError):
    """The database the worker writes to is not the one it started with (deleted, replaced, or
    emptied under it)."""
