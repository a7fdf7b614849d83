"""Operators' signatures on decisions: keys, the trust file, and what a signature covers."""

from __future__ import annotations

import json
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.cli import main as bridge_cli
from bridge.core.decisions import DecisionAction, OperatorDecision, parse_decision
from bridge.core.records import AccountRef
from bridge.core.signing import (
    TrustedKeys,
    canonical,
    sign,
    key_id_of,
    load_private_key,
    private_key_pem,
    public_text,
)
from bridge.errors import BadInput, ConfigurationError
from tests.operators import operator_key, trusted

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)


def _decision(**changes) -> OperatorDecision:
    fields = dict(
        decision_id="dc_1", review_id="rv_1", action=DecisionAction.LINK,
        account=AccountRef(platform="union", account="GH1"), anchor=AccountRef(platform="ou", account="S1"),
        decided_by="operator-7", decided_at=NOW, note="same person, checked by phone",
    )
    fields.update(changes)
    return OperatorDecision(**fields)


def test_a_signed_decision_verifies_after_its_trip_through_json() -> None:
    signed = _decision().signed_with(operator_key("operator-7"))
    assert signed.key_id == key_id_of(operator_key("operator-7").public_key())
    parsed = parse_decision(signed.model_dump_json().encode())
    assert trusted().fault(parsed.signed_fields(), parsed.decided_by, parsed.decided_at) is None


def test_a_zone_other_than_utc_verifies_too() -> None:
    """The signature covers the decision as the worker reads it (times normalised to UTC)."""
    beijing = timezone(timedelta(hours=8))
    signed = _decision(decided_at=NOW.astimezone(beijing)).signed_with(operator_key("operator-7"))
    raw = signed.model_dump_json().encode()
    parsed = parse_decision(raw)
    assert trusted().fault(parsed.signed_fields(), parsed.decided_by, parsed.decided_at) is None


_CHANGES = {
    "decision_id": "dc_2", "review_id": "rv_2", "action": DecisionAction.REJECT,
    "account": AccountRef(platform="union", account="GH2"), "anchor": AccountRef(platform="ou", account="S2"),
    "decided_by": "op-17", "decided_at": NOW + timedelta(microseconds=1), "note": None,
}


@pytest.mark.parametrize("field", sorted(_CHANGES))
def test_changing_any_field_breaks_the_signature(field: str) -> None:
    signed = _decision().signed_with(operator_key("operator-7"))
    changed = signed.model_copy(update={field: _CHANGES[field]})
    assert trusted().fault(changed.signed_fields(), changed.decided_by, changed.decided_at) is not None


@settings(max_examples=60, deadline=None)
@given(note=st.text(max_size=200).filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in s)))
def test_any_note_is_covered(note: str) -> None:
    signed = _decision(note=note or None).signed_with(operator_key("operator-7"))
    parsed = parse_decision(signed.model_dump_json().encode())
    assert trusted().fault(parsed.signed_fields(), parsed.decided_by, parsed.decided_at) is None
    sent = json.loads(signed.model_dump_json())
    sent["note"] = note + "!"
    other = parse_decision(json.dumps(sent).encode())
    assert trusted().fault(other.signed_fields(), other.decided_by, other.decided_at) is not None


def test_the_signature_covers_the_fields_as_sent_so_old_decisions_outlive_model_changes() -> None:
    """A decision signed by an older release that did not write ``note`` (or any field added
    since, with a default) still verifies: the signature covers what was sent."""
    fields = json.loads(_decision().model_dump_json())
    del fields["note"], fields["signature"]
    fields["key_id"] = key_id_of(operator_key("operator-7").public_key())
    fields["signature"] = sign(operator_key("operator-7"), fields)
    parsed = parse_decision(json.dumps(fields).encode())
    assert parsed.note is None
    assert trusted().fault(parsed.signed_fields(), parsed.decided_by, parsed.decided_at) is None
    # And a field the model does not know, added by an attacker, breaks the signature.
    fields["override"] = True
    tampered = parse_decision(json.dumps(fields).encode())
    assert trusted().fault(tampered.signed_fields(), tampered.decided_by, tampered.decided_at) is not None


def test_a_key_given_twice_is_bad_input() -> None:
    """The model and the signature must read the same value: a duplicated key could make them differ."""
    signed = _decision().signed_with(operator_key("operator-7")).model_dump_json()
    doubled = signed.replace('{"decision_id"', '{"anchor":{"platform":"ou","account":"S9"},"decision_id"', 1)
    with pytest.raises(BadInput) as caught:
        parse_decision(doubled.encode())
    assert caught.value.code == "not_json" and "twice" in caught.value.reason


def test_canonical_form_ignores_the_signature_and_key_order() -> None:
    assert canonical({"b": 1, "a": "张", "signature": "x"}) == canonical({"a": "张", "b": 1}) == '{"a":"张","b":1}'.encode()


# -- the trust file ------------------------------------------------------------------------------


def _trust_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "operators.keys"
    path.write_text(text)
    return path


def test_the_trust_file_binds_each_key_to_its_operator(tmp_path: Path) -> None:
    a, b = operator_key("operator-7").public_key(), operator_key("op-3").public_key()
    keys = TrustedKeys.load(_trust_file(tmp_path, (
        "# operators of the bridge\n\n"
        f"operator-7 {public_text(a)}\n"
        f"op-3   {public_text(b)}   retired=2027-01-01T00:00:00Z  # rotated\n"
    )))
    assert len(keys) == 2 and keys.operators() == {"operator-7", "op-3"}
    assert keys.get(key_id_of(a)).operator == "operator-7" and keys.get(key_id_of(a)).retired_at is None
    assert keys.get(key_id_of(b)).retired_at == datetime(2027, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("operator-7", "expected `OPERATOR PUBLIC_KEY"),
        ("operator-7 AAAA", "not base64 of 32 bytes"),
        ("operator-7 !!notbase64!!", "not base64 of 32 bytes"),
        ("bad operator name {key}", "expected `OPERATOR PUBLIC_KEY"),
        ("operator-7 {key} retired=tomorrow", "retired=TIME"),
        ("operator-7 {key} retired=2027-01-01T00:00:00", "retired=TIME"),
        ("operator-7 {key} expires=2027-01-01T00:00:00Z", "retired=TIME"),
        ("operator-7 {key}\nop-3 {key}", "listed twice"),
    ],
)
def test_a_malformed_trust_file_names_the_line(tmp_path: Path, line: str, problem: str) -> None:
    key = public_text(operator_key("operator-7").public_key())
    path = _trust_file(tmp_path, "# header\n" + line.format(key=key) + "\n")
    with pytest.raises(ConfigurationError) as caught:
        TrustedKeys.load(path)
    assert problem in str(caught.value) and "BRIDGE_OPERATOR_KEYS, line" in str(caught.value)
    assert key not in str(caught.value)


def test_an_unreadable_trust_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="BRIDGE_OPERATOR_KEYS: cannot read"):
        TrustedKeys.load(tmp_path / "missing.keys")
    assert len(TrustedKeys.load(None)) == 0


# -- the operator's key file and `bridge review keygen` --------------------------------------------


def test_keygen_writes_a_private_key_only_its_owner_reads_and_prints_the_trust_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "alice.pem"
    assert bridge_cli(["review", "keygen", "--operator", "alice", "--out", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    private = load_private_key(out)
    line = capsys.readouterr().out.strip().splitlines()[-1]
    keys = TrustedKeys.load(_trust_file(tmp_path, line + "\n"))
    assert keys.get(key_id_of(private.public_key())).operator == "alice"
    # Never overwritten: a second run keeps the first key.
    assert bridge_cli(["review", "keygen", "--operator", "alice", "--out", str(out)]) != 0
    assert load_private_key(out).public_key().public_bytes_raw() == private.public_key().public_bytes_raw()
    assert "exists" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"", b"not a key", private_key_pem(Ed25519PrivateKey.generate())[:60]])
def test_a_bad_signing_key_file_is_a_configuration_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(content)
    with pytest.raises(ConfigurationError, match="BRIDGE_OPERATOR_SIGNING_KEY"):
        load_private_key(path)
