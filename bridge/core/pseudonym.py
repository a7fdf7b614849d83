"""Keyed-HMAC pseudonyms (CONTRACT §3.7): the only form in which identity evidence is stored."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Pseudonymiser:
    """Turns normalised identity values into keyed digests.

    ``key_id`` is stored beside every digest so that a key rotation can tell old digests from
    new ones. The kind (``resident_id``, ``name_mobile``...) is part of the MAC input, so equal
    strings of different kinds never share a digest.

    During a key rotation, ``previous`` holds the keys being retired: evidence is then digested
    under every key, so a new event still meets what was stored under an old one.
    """

    key: bytes = field(repr=False)
    key_id: str
    previous: tuple[Pseudonymiser, ...] = ()

    @classmethod
    def from_secret(cls, secret: str, key_id: str | None = None, previous: tuple[str, ...] = ()) -> Pseudonymiser:
        """Build from the configured secret(s); a key's default id is derived from the key."""
        key = secret.encode("utf-8")
        return cls(
            key=key,
            key_id=key_id or _derived_id(key),
            previous=tuple(cls(key=old.encode("utf-8"), key_id=_derived_id(old.encode("utf-8"))) for old in previous),
        )

    def keys(self) -> tuple[Pseudonymiser, ...]:
        """The current key first, then the ones being retired."""
        return (self, *self.previous)

    def digest(self, kind: str, value: str) -> str:
        """Hex HMAC-SHA256 of ``value`` under ``kind``."""
        message = kind.encode("utf-8") + b"\x1f" + value.encode("utf-8")
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()


def _derived_id(key: bytes) -> str:
    return "k" + hashlib.sha256(b"bridge-key-id\x00" + key).hexdigest()[:8]
