"""``bridge console adduser``: the operators file it writes holds a scrypt hash and never the
password, it refuses what the console would refuse to load, it updates an operator already in the
file (role, password), and the console signs in with what it wrote."""

from __future__ import annotations

import contextlib
import io
import os
import stat
from pathlib import Path
from unittest import mock

import pytest

from bridge.cli import main
from bridge.console.auth import load_operators, verify_password
from bridge.errors import ConfigurationError, UsageError
from tests.console.support import console_for, empty_registry

FIRST, SECOND = "first passphrase of alice", "second passphrase of alice"


def adduser(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    """``bridge console adduser ARGV`` in-process, ``stdin`` as standard input: (exit code, out, err)."""
    out, err = io.StringIO(), io.StringIO()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    with mock.patch.dict(os.environ, env, clear=True), mock.patch("sys.stdin", io.StringIO(stdin)), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["console", "adduser", *argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def operators(tmp_path) -> Path:
    return tmp_path / "console" / "operators"


def test_it_writes_a_scrypt_hash_never_the_password(operators) -> None:
    operators.parent.mkdir()
    code, out, err = adduser("alice", "--role", "reviewer", "--file", str(operators), "--password-stdin", stdin=FIRST + "\n")
    assert code == 0, err
    assert "added alice (reviewer)" in out and "alice.pem" in out
    code, out2, err2 = adduser("bob", "--role", "viewer", "--file", str(operators), "--oidc-only")
    assert code == 0, err2
    text = operators.read_text()
    assert FIRST not in text + out + err + out2 + err2
    alice, bob = text.splitlines()
    name, role, hashed = alice.split()
    scheme, n, r, p, salt, digest = hashed.split("$")
    assert (name, role, scheme, n, r, p) == ("alice", "reviewer", "scrypt", "32768", "8", "1")
    assert len(salt) == 24 and len(digest) == 44  # 16 random bytes, a 32-byte digest, base64
    assert verify_password(FIRST, hashed) and not verify_password(SECOND, hashed)
    assert bob == "bob viewer -"
    assert stat.S_IMODE(operators.stat().st_mode) == 0o600
    assert {o.name: (o.role, o.password_hash is None) for o in load_operators(operators).values()} == {
        "alice": ("reviewer", False), "bob": ("viewer", True)}


@pytest.mark.parametrize("name", ["bad name", "../etc/passwd", "alice#x", "é", "a" * 129, ".hidden"])
def test_a_bad_operator_id_is_refused_and_nothing_written(operators, name) -> None:
    code, out, err = adduser(name, "--role", "viewer", "--file", str(operators), "--password-stdin", stdin=FIRST)
    assert code == UsageError.exit_code and "OPERATOR" in err and not operators.exists()
    assert FIRST not in out + err


def test_a_bad_role_a_bad_password_or_a_malformed_file_is_refused_and_nothing_written(operators) -> None:
    operators.parent.mkdir()
    with pytest.raises(SystemExit) as exited, contextlib.redirect_stderr(io.StringIO()):
        adduser("alice", "--role", "admin", "--file", str(operators), "--password-stdin", stdin=FIRST)
    assert exited.value.code == 2 and not operators.exists()
    for password, why in (("short", "12 to 256"), ("x" * 257, "12 to 256"), ("tab\tin the password", "printable")):
        code, out, err = adduser("alice", "--role", "viewer", "--file", str(operators), "--password-stdin", stdin=password)
        assert code == UsageError.exit_code and why in err and not operators.exists(), password
        assert password not in out + err
    operators.write_text("alice reviewer not-a-hash\n")
    code, _, err = adduser("bob", "--role", "viewer", "--file", str(operators), "--oidc-only")
    assert code == ConfigurationError.exit_code and "line 1" in err and "not-a-hash" not in err
    assert operators.read_text() == "alice reviewer not-a-hash\n"
    code, _, err = adduser("bob", "--role", "viewer", "--oidc-only")
    assert code == UsageError.exit_code and "--file" in err


def test_an_operator_already_in_the_file_is_updated_in_place(operators) -> None:
    operators.parent.mkdir()
    adduser("alice", "--role", "reviewer", "--file", str(operators), "--password-stdin", stdin=FIRST)
    # Hand edits: a comment, another operator, and no newline at the end.
    with operators.open("a") as handle:
        handle.write("# the night shift\ncarol reviewer -  # through the provider")
    operators.chmod(0o640)
    code, out, err = adduser("alice", "--role", "viewer", "--file", str(operators), "--password-stdin", stdin=SECOND)
    assert code == 0, err
    assert "updated alice" in out and "reviewer -> viewer" in out and SECOND not in out + err
    lines = operators.read_text().splitlines()
    assert lines[1:] == ["# the night shift", "carol reviewer -  # through the provider"]
    found = load_operators(operators)
    assert (found["alice"].role, found["carol"].role) == ("viewer", "reviewer")
    assert verify_password(SECOND, found["alice"].password_hash) and not verify_password(FIRST, found["alice"].password_hash)
    assert stat.S_IMODE(operators.stat().st_mode) == 0o640
    assert [p.name for p in operators.parent.iterdir()] == ["operators"], "a temporary file was left behind"
    # An operator added after a last line without a newline gets a line of their own.
    operators.write_text(operators.read_text().rstrip("\n"))
    assert adduser("dave", "--role", "viewer", "--file", str(operators), "--oidc-only")[0] == 0
    assert set(load_operators(operators)) == {"alice", "carol", "dave"}
    assert adduser("carol", "--role", "viewer", "--file", str(operators), "--oidc-only")[0] == 0
    assert load_operators(operators)["carol"].role == "viewer" and "# the night shift" in operators.read_text()


def test_the_console_signs_in_with_the_file_adduser_wrote(tmp_path, operators) -> None:
    operators.parent.mkdir()
    adduser("alice", "--role", "reviewer", "--file", str(operators), "--password-stdin", stdin=FIRST)
    adduser("alice", "--role", "viewer", "--file", str(operators), "--password-stdin", stdin=SECOND)
    adduser("bob", "--role", "reviewer", "--file", str(operators), "--oidc-only")
    console = console_for(tmp_path, empty_registry(tmp_path), console_operators=operators)
    assert console.sign_in("alice", FIRST).status_code == 401, "the old password still works"
    for password in ("", "-", FIRST):
        assert console.sign_in("bob", password).status_code == 401, "an operator without a password signed in"
    answer = console.sign_in("alice", SECOND)
    assert answer.status_code == 303 and answer.headers["location"] == "/queue"
    assert 'id="whoami">alice (viewer)<' in console.client.get("/queue").text
