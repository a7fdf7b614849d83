"""Sealed dead-letter payloads (CONTRACT §2: a dead letter keeps no readable personal data).

A dead letter carries the original message bytes only encrypted, with AES-256-GCM under the
configured dead-letter key, so that the 30 days of ``bridge.deadletter.v1`` hold nothing a reader of
the topic can use; ``bridge deadletters show`` (and, later, ``replay``) opens them with the key.

Format of ``payload_encrypted``: base64 (standard alphabet, padded) of ::

    version (1 byte, 0x01) || nonce (12 random bytes) || AES-256-GCM ciphertext || tag (16 bytes)

* The AES key is HKDF-SHA256 of the configured secret (no salt, info :data:`_HKDF_INFO`), so any
  secret string of enough entropy gives a uniform 32-byte key.
* The associated data binds the ciphertext to its dead letter: the version byte, the key id and
  the source coordinates (topic, partition, offset). A payload moved to another dead letter, or
  relabelled with another key id, fails authentication instead of opening.
* ``key_id`` is published beside the payload so that the tools pick the right key among the
  current and the retired ones (``BRIDGE_DEADLETTER_PREVIOUS_KEYS``).

Pure: no I/O; the one source of randomness is the nonce (``os.urandom`` through ``secrets``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bridge.errors import BridgeError

FORMAT_VERSION = 1
_HKDF_INFO = b"bridge dead-letter payload v1"
_NONCE_BYTES = 12  # 96 bits: GCM's native nonce size; random nonces are safe far beyond our volumes
_TAG_BYTES = 16


class SealedLetter(Protocol):
    """What :meth:`Sealer.open` needs of a dead letter (``DeadLetter`` has it)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def payload_encrypted(self) -> str | None: ...
    @property
    def key_id(self) -> str | None: ...


class SealError(BridgeError):
    """A sealed payload that cannot be opened; names the key id, never the payload."""

    def __init__(self, reason: str, *, key_id: str | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.key_id = key_id


class UnknownKey(SealError):
    """The payload was sealed under a key this bridge is not configured with."""


class TamperedPayload(SealError):
    """The payload does not authenticate under its key and coordinates (altered, or moved)."""


@dataclass(frozen=True)
class SealingKey:
    """One dead-letter key: the derived AES key and its id."""

    key_id: str
    aes_key: bytes = field(repr=False)

    @classmethod
    def from_secret(cls, secret: str, key_id: str | None = None) -> SealingKey:
        material = secret.encode("utf-8")
        aes_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(material)
        return cls(key_id=key_id or derived_key_id(material), aes_key=aes_key)


@dataclass(frozen=True)
class Sealer:
    """Seals dead-letter payloads under the current key; opens them under current or retired keys."""

    current: SealingKey
    previous: tuple[SealingKey, ...] = ()

    @classmethod
    def from_secret(cls, secret: str, key_id: str | None = None, previous: Iterable[str] = ()) -> Sealer:
        """Build from the configured secret(s); a key's default id is derived from the key."""
        return cls(
            current=SealingKey.from_secret(secret, key_id),
            previous=tuple(SealingKey.from_secret(old) for old in previous),
        )

    @property
    def key_id(self) -> str:
        return self.current.key_id

    def key_ids(self) -> tuple[str, ...]:
        """The ids of every key this sealer can open with, current first."""
        return tuple(key.key_id for key in (self.current, *self.previous))

    def seal(self, value: bytes, topic: str, partition: int, offset: int) -> tuple[str, str]:
        """``(payload_encrypted, key_id)`` of ``value`` taken from ``topic``/``partition``/``offset``."""
        key = self.current
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = AESGCM(key.aes_key).encrypt(nonce, value, _associated(key.key_id, topic, partition, offset))
        blob = bytes([FORMAT_VERSION]) + nonce + sealed
        return base64.b64encode(blob).decode("ascii"), key.key_id

    def open(self, letter: SealedLetter) -> bytes:
        """The original bytes of ``letter``'s payload.

        Raises :class:`UnknownKey` when its key id is none of this sealer's, and
        :class:`TamperedPayload` when the payload does not authenticate (its bytes, its key id or
        its coordinates were changed)."""
        key_id = letter.key_id
        if letter.payload_encrypted is None:
            raise SealError("this dead letter carries no payload (too large, or no longer held)", key_id=key_id)
        key = next((k for k in (self.current, *self.previous) if k.key_id == key_id), None)
        if key is None:
            known = ", ".join(self.key_ids())
            raise UnknownKey(
                f"the payload is sealed under dead-letter key {key_id!r}, which is not configured "
                f"(known: {known}); set it as BRIDGE_DEADLETTER_KEY or in BRIDGE_DEADLETTER_PREVIOUS_KEYS",
                key_id=key_id,
            )
        try:
            blob = base64.b64decode(letter.payload_encrypted, validate=True)
        except (binascii.Error, ValueError):
            raise TamperedPayload(f"the payload sealed under key {key_id!r} is not base64", key_id=key_id) from None
        if len(blob) < 1 + _NONCE_BYTES + _TAG_BYTES or blob[0] != FORMAT_VERSION:
            raise TamperedPayload(
                f"the payload sealed under key {key_id!r} is not in sealed format v{FORMAT_VERSION}", key_id=key_id
            )
        nonce, sealed = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
        associated = _associated(key.key_id, letter.topic, letter.partition, letter.offset)
        try:
            return AESGCM(key.aes_key).decrypt(nonce, sealed, associated)
        except InvalidTag:
            raise TamperedPayload(
                f"the payload does not authenticate under key {key_id!r} at {letter.topic}:"
                f"{letter.partition}:{letter.offset}: it was altered or moved from another dead letter",
                key_id=key_id,
            ) from None


def derived_key_id(material: bytes) -> str:
    """A short public id of a key (not the pseudonym key's id for the same secret: distinct prefix)."""
    return "d" + hashlib.sha256(b"bridge-deadletter-key-id\x00" + material).hexdigest()[:8]


def _associated(key_id: str, topic: str, partition: int, offset: int) -> bytes:
    # Unit separators cannot occur in a topic name or key id (both are validated, printable names).
    return b"\x1f".join(
        (bytes([FORMAT_VERSION]), key_id.encode("utf-8"), topic.encode("utf-8"), str(partition).encode(), str(offset).encode())
    )
