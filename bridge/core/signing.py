"""Operators' signatures on decisions (CONTRACT §2: a decision is applied only when signed by a key
the workers trust for that operator).

Each operator holds an Ed25519 private key (``bridge review keygen`` makes one) and the workers
are given a *trust file* of public keys, one line per key::

    # operator   public key (base64 of the 32 raw bytes)          optional retirement
    alice        0r0xXz3l8m1GfM...=
    bob          Zq7Q9cX1...=                                      retired=2027-03-01T00:00:00Z

A decision names its key by ``key_id`` (derived from the public key) and carries ``signature``:
Ed25519 over the decision's canonical JSON, every field but the signature itself. A key is
trusted only for the operator on its line, so a stolen key cannot speak for someone else. A
retired key still verifies the decisions made before its retirement (the decisions topic is kept
forever and a rebuild replays it), and nothing decided after.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bridge.errors import ConfigurationError

#: Operator ids in the trust file: what ``decided_by`` may hold (printable, no spaces).
OPERATOR_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
_KEY_ID_PREFIX = "ed25519:"


def key_id_of(public: Ed25519PublicKey) -> str:
    """A short, stable id of a public key: what a decision names and the trust file is searched by."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _KEY_ID_PREFIX + hashlib.sha256(raw).hexdigest()[:20]


def public_text(public: Ed25519PublicKey) -> str:
    """The public key as the trust file writes it: base64 of its 32 raw bytes."""
    return base64.b64encode(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def canonical(fields: Mapping[str, object]) -> bytes:
    """The bytes a signature covers: the fields (JSON types) but ``signature``, keys sorted, no spaces."""
    body = {name: value for name, value in fields.items() if name != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign(private: Ed25519PrivateKey, fields: Mapping[str, object]) -> str:
    """The ``signature`` of a decision whose JSON fields (``key_id`` included) are ``fields``."""
    return base64.b64encode(private.sign(canonical(fields))).decode()


# -- the operator's private key file -----------------------------------------------------------


def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_key_pem(private: Ed25519PrivateKey) -> bytes:
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())


def load_private_key(path: Path, variable: str = "BRIDGE_OPERATOR_SIGNING_KEY") -> Ed25519PrivateKey:
    """The operator's signing key from its PEM file, or a ConfigurationError saying what to do."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"{variable}: cannot read the signing key file ({exc.strerror or type(exc).__name__}); "
            "make one with `bridge review keygen`"
        ) from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigurationError(
            f"{variable}: the file is not an unencrypted PEM private key; make one with `bridge review keygen`"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(f"{variable}: the key is not an Ed25519 key; make one with `bridge review keygen`")
    return key


# -- the workers' trust file -------------------------------------------------------------------


@dataclass(frozen=True)
class TrustedKey:
    operator: str
    key_id: str
    public: Ed25519PublicKey
    retired_at: datetime | None = None


class TrustedKeys:
    """The public keys the workers trust, by key id. Empty: no decision is ever applied."""

    def __init__(self, keys: Iterable[TrustedKey] = ()) -> None:
        self._keys: dict[str, TrustedKey] = {}
        for key in keys:
            self._keys[key.key_id] = key

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, key_id: str) -> TrustedKey | None:
        return self._keys.get(key_id)

    def operators(self) -> set[str]:
        return {key.operator for key in self._keys.values()}

    @classmethod
    def load(cls, path: Path | None, variable: str = "BRIDGE_OPERATOR_KEYS") -> TrustedKeys:
        """Parse a trust file; a malformed line stops start-up naming the line (never a key)."""
        if path is None:
            return cls()
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise ConfigurationError(f"{variable}: cannot read the operators' key file ({problem})") from None
        return cls(_parse_lines(text.splitlines(), variable))

    def fault(self, fields: Mapping[str, object], decided_by: str, decided_at: datetime) -> str | None:
        """Why a decision with these JSON ``fields`` must not be applied, or ``None`` when a key
        trusted for ``decided_by`` signed it. The reasons name no value of the decision."""
        key_id, signature = fields.get("key_id"), fields.get("signature")
        if not key_id or not signature:
            return "operator decision rejected: it is not signed; decisions are made with `bridge review link|reject`"
        key = self._keys.get(str(key_id))
        if key is None:
            return ("operator decision rejected: it is signed by a key the workers do not trust "
                    "(not in BRIDGE_OPERATOR_KEYS); nothing was changed")
        if key.operator != decided_by:
            return ("operator decision rejected: it is signed by a key trusted for another operator "
                    "than the one it names; nothing was changed")
        try:
            raw = base64.b64decode(str(signature), validate=True)
            key.public.verify(raw, canonical(fields))
        except (InvalidSignature, binascii.Error, ValueError):
            return "operator decision rejected: its signature does not verify; nothing was changed"
        if key.retired_at is not None and decided_at >= key.retired_at:
            return ("operator decision rejected: it is signed by a key retired before the decision's time; "
                    "nothing was changed")
        return None


def _parse_lines(lines: list[str], variable: str) -> list[TrustedKey]:
    keys: list[TrustedKey] = []
    for number, line in enumerate(lines, start=1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        where = f"{variable}, line {number}"
        if len(words) not in (2, 3) or not OPERATOR_ID.fullmatch(words[0]):
            raise ConfigurationError(f"{where}: expected `OPERATOR PUBLIC_KEY [retired=TIME]`")
        try:
            raw = base64.b64decode(words[1], validate=True)
            public = Ed25519PublicKey.from_public_bytes(raw)
        except (binascii.Error, ValueError):
            raise ConfigurationError(f"{where}: the public key is not base64 of 32 bytes (Ed25519)") from None
        retired = None
        if len(words) == 3:
            name, _, value = words[2].partition("=")
            try:
                if name != "retired":
                    raise ValueError(name)
                retired = datetime.fromisoformat(value.replace("Z", "+00:00"))
                if retired.tzinfo is None:
                    raise ValueError(value)
            except ValueError:
                raise ConfigurationError(f"{where}: the third field must be retired=TIME (ISO 8601 with a zone)") from None
            retired = retired.astimezone(timezone.utc)
        key = TrustedKey(words[0], key_id_of(public), public, retired)
        if any(k.key_id == key.key_id for k in keys):
            raise ConfigurationError(f"{where}: this key is listed twice")
        keys.append(key)
    return keys
