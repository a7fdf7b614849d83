"""Sealed dead-letter payloads: AES-256-GCM under the dead-letter key, bound to the coordinates."""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.core.sealing import SealError, Sealer, TamperedPayload, UnknownKey
from bridge.errors import BridgeError

SECRET = "a-test-dead-letter-key-of-enough-length-0123456789"
OLD = "the-retired-dead-letter-key-also-long-enough-987654"
PII = b'{"residentId":"110101199003077777","name":"Zhang Wei","mobile":"13800138000"}'


@dataclass(frozen=True)
class Letter:
    topic: str
    partition: int
    offset: int
    payload_encrypted: str | None
    key_id: str | None


def sealed(sealer: Sealer, value: bytes = PII, topic: str = "union.events", partition: int = 3, offset: int = 42) -> Letter:
    payload, key_id = sealer.seal(value, topic, partition, offset)
    return Letter(topic, partition, offset, payload, key_id)


def test_round_trip() -> None:
    sealer = Sealer.from_secret(SECRET)
    letter = sealed(sealer)
    assert letter.key_id == sealer.key_id
    assert sealer.open(letter) == PII


def test_the_key_id_is_derived_short_and_does_not_reveal_the_key_unless_configured() -> None:
    derived = Sealer.from_secret(SECRET).key_id
    assert derived == Sealer.from_secret(SECRET).key_id and len(derived) == 9 and SECRET[:8] not in derived
    assert derived != Sealer.from_secret(OLD).key_id
    assert Sealer.from_secret(SECRET, "dl-2026").key_id == "dl-2026"


def test_no_plaintext_in_any_form_in_the_output() -> None:
    letter = sealed(Sealer.from_secret(SECRET))
    raw = base64.b64decode(letter.payload_encrypted)
    for needle in (b"110101199003077777", b"Zhang Wei", b"13800138000"):
        assert needle not in raw
        assert base64.b64encode(needle).decode() not in letter.payload_encrypted
        assert needle.decode() not in letter.payload_encrypted


def test_every_payload_gets_its_own_nonce() -> None:
    sealer = Sealer.from_secret(SECRET)
    blobs = {base64.b64decode(sealed(sealer).payload_encrypted) for _ in range(50)}
    assert len({blob[1:13] for blob in blobs}) == 50


def test_a_tampered_ciphertext_is_detected() -> None:
    sealer = Sealer.from_secret(SECRET)
    letter = sealed(sealer)
    blob = bytearray(base64.b64decode(letter.payload_encrypted))
    blob[-20] ^= 1
    with pytest.raises(TamperedPayload, match=letter.key_id) as caught:
        sealer.open(replace(letter, payload_encrypted=base64.b64encode(bytes(blob)).decode()))
    assert "Zhang" not in str(caught.value)
    with pytest.raises(TamperedPayload):
        sealer.open(replace(letter, payload_encrypted="not base64 at all!"))


@pytest.mark.parametrize("change", [{"topic": "ou.events"}, {"partition": 4}, {"offset": 43}])
def test_a_payload_moved_to_other_coordinates_does_not_open(change: dict) -> None:
    sealer = Sealer.from_secret(SECRET)
    with pytest.raises(TamperedPayload, match="altered or moved"):
        sealer.open(replace(sealed(sealer), **change))


def test_a_relabelled_key_id_is_detected() -> None:
    # Both keys known: a payload relabelled with the other key's id must not open under it.
    sealer = Sealer.from_secret(SECRET, previous=(OLD,))
    letter = sealed(sealer)
    with pytest.raises(TamperedPayload):
        sealer.open(replace(letter, key_id=sealer.key_ids()[1]))


def test_retired_keys_open_old_letters() -> None:
    old_letter = sealed(Sealer.from_secret(OLD))
    rotated = Sealer.from_secret(SECRET, previous=(OLD,))
    assert rotated.open(old_letter) == PII
    assert sealed(rotated).key_id == rotated.key_id != old_letter.key_id


def test_an_unknown_key_id_is_a_clear_error_naming_it() -> None:
    old_letter = sealed(Sealer.from_secret(OLD))
    with pytest.raises(UnknownKey) as caught:
        Sealer.from_secret(SECRET).open(old_letter)
    assert isinstance(caught.value, BridgeError) and caught.value.key_id == old_letter.key_id
    assert old_letter.key_id in str(caught.value) and "BRIDGE_DEADLETTER_PREVIOUS_KEYS" in str(caught.value)


def test_a_letter_without_payload_cannot_be_opened() -> None:
    with pytest.raises(SealError, match="no payload"):
        Sealer.from_secret(SECRET).open(Letter("t", 0, 0, None, None))


@given(value=st.binary(max_size=4096), partition=st.integers(0, 2**31 - 1), offset=st.integers(0, 2**63 - 1))
def test_any_bytes_round_trip(value: bytes, partition: int, offset: int) -> None:
    sealer = Sealer.from_secret(SECRET)
    letter = sealed(sealer, value, "union.events", partition, offset)
    assert sealer.open(letter) == value
    if len(value) >= 8:
        assert value not in base64.b64decode(letter.payload_encrypted)
