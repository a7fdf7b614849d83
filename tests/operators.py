"""Operator keys for tests: deterministic Ed25519 keys, a trust file, and signed decisions.

The keys are derived from fixed seeds so that a failing test shows the same key ids every run;
they are test keys only (a worker in the production profile never sees them).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bridge.core.signing import TrustedKey, TrustedKeys, key_id_of, private_key_pem, public_text

#: The operators the tests decide as.
OPERATORS = ("operator-7", "op-17", "op-3")


def operator_key(name: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"bridge test operator {name}".encode()).digest())


def trusted(*names: str) -> TrustedKeys:
    """The keys of ``names`` (default: every test operator), each trusted for its own operator."""
    return TrustedKeys(
        TrustedKey(name, key_id_of(operator_key(name).public_key()), operator_key(name).public_key())
        for name in (names or OPERATORS)
    )


def write_keys(directory: Path) -> tuple[Path, dict[str, Path]]:
    """A trust file of every test operator and each one's private key file, in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    trust = directory / "operators.keys"
    trust.write_text("".join(f"{name} {public_text(operator_key(name).public_key())}\n" for name in OPERATORS))
    private = {}
    for name in OPERATORS:
        path = directory / f"{name}.pem"
        path.write_bytes(private_key_pem(operator_key(name)))
        path.chmod(0o600)
        private[name] = path
    return trust, private
