"""Who may use the console: the operators file, password hashes, roles and sessions.

The operators file has one operator per line (``#`` starts a comment)::

    # operator   role       password hash (`bridge console adduser`), or - for OpenID Connect only
    alice        reviewer   scrypt$32768$8$1$3q2+7w...$Zm9v...
    bob          viewer     -

A ``viewer`` reads every page; a ``reviewer`` also decides review items and replays dead letters.
Passwords are hashed with scrypt (the standard library's), with a random salt per operator.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bridge.core.signing import OPERATOR_ID
from bridge.errors import ConfigurationError

Role = Literal["viewer", "reviewer"]
ROLES: tuple[Role, ...] = ("viewer", "reviewer")
#: scrypt cost: 2**15 x 8 is ~0.1 s and 32 MiB per check; each hash records its own cost, so it can be raised.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
_MAXMEM = 64 * 1024 * 1024
#: A password longer than this is refused before hashing (a megabyte password is a denial of service).
MAX_PASSWORD = 256
#: Checked when the operator is unknown, so that the answer takes as long as for a known one.
_DUMMY_HASH = "scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


@dataclass(frozen=True)
class Operator:
    """One operator of the console."""

    name: str
    role: Role
    password_hash: str | None
    """``None``: signs in only through OpenID Connect."""

    @property
    def may_decide(self) -> bool:
        return self.role == "reviewer"


def hash_password(password: str) -> str:
    """The operators-file hash of ``password``: ``scrypt$N$r$p$SALT$HASH`` (base64)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=_MAXMEM, dklen=32)
    return "$".join(("scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P),
                     base64.b64encode(salt).decode(), base64.b64encode(digest).decode()))


def verify_password(password: str, encoded: str | None) -> bool:
    """Whether ``password`` matches ``encoded``; a malformed or absent hash matches nothing."""
    try:
        scheme, n, r, p, salt, digest = (encoded or _DUMMY_HASH).split("$")
        if scheme != "scrypt" or int(n) > 2**20 or int(r) > 32 or int(p) > 16:
            return False
        expected = base64.b64decode(digest, validate=True)
        got = hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=base64.b64decode(salt, validate=True),
                             n=int(n), r=int(r), p=int(p), maxmem=_MAXMEM, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return encoded is not None and hmac.compare_digest(got, expected)


def load_operators(path: Path | None) -> dict[str, Operator]:
    """The operators of ``path`` (none when unset); a malformed line stops start-up, naming the
    line (never its hash)."""
    if path is None:
        return {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"BRIDGE_CONSOLE_OPERATORS: cannot read {path} ({exc.__class__.__name__})") from None
    operators: dict[str, Operator] = {}
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.split()
        where = f"BRIDGE_CONSOLE_OPERATORS: {path}, line {number}"
        if len(parts) != 3:
            raise ConfigurationError(f"{where}: expected OPERATOR ROLE PASSWORD-HASH (or - for OpenID Connect only)")
        name, role, hashed = parts
        if not OPERATOR_ID.fullmatch(name):
            raise ConfigurationError(f"{where}: the operator id must be letters, digits and . _ @ - (at most 128)")
        if role not in ROLES:
            raise ConfigurationError(f"{where}: the role must be viewer or reviewer")
        if hashed != "-" and not hashed.startswith("scrypt$"):
            raise ConfigurationError(f"{where}: not a password hash of `bridge console adduser`")
        if name in operators:
            raise ConfigurationError(f"{where}: operator {name} is listed twice")
        operators[name] = Operator(name, role, None if hashed == "-" else hashed)
    return operators


@dataclass(frozen=True)
class Session:
    """What the signed session cookie holds once an operator has signed in: ids and times only."""

    operator: str
    expires_at: float
    csrf: str

    def as_cookie(self) -> dict[str, object]:
        return {"operator": self.operator, "expires_at": self.expires_at, "csrf": self.csrf}


def session_of(data: dict[str, object], operators: dict[str, Operator], now: float) -> tuple[Session, Operator] | None:
    """The signed-in session in cookie ``data`` and its operator, or ``None`` (signed out,
    expired, or an operator no longer in the operators file)."""
    operator, expires_at, csrf = data.get("operator"), data.get("expires_at"), data.get("csrf")
    if not isinstance(operator, str) or not isinstance(expires_at, (int, float)) or not isinstance(csrf, str):
        return None
    if now >= expires_at or operator not in operators:
        return None
    return Session(operator, float(expires_at), csrf), operators[operator]


def new_csrf() -> str:
    return secrets.token_urlsafe(32)


def same_token(sent: str | None, expected: object) -> bool:
    """Constant-time comparison of a form's CSRF token with the session's."""
    if not isinstance(sent, str) or not isinstance(expected, str) or not expected:
        return False
    return hmac.compare_digest(sent.encode("utf-8", "replace"), expected.encode("utf-8", "replace"))
