"""How the production profile judges a secret: long, random, and never one the project ships.

The pseudonym key is what stands between a stored digest and the resident ID behind it: resident
IDs have fewer than 2**40 valid values, so with the key known every digest is reversed in seconds.
A key therefore has to be one nobody can guess: not the development key, not a placeholder of
``deploy/`` and not a phrase. The estimate here is deliberately simple and conservative (the
Shannon entropy of the characters, counting a character that only continues a run or a repeat as
nothing); a key from ``openssl rand -base64 48`` passes with a wide margin.
"""

from __future__ import annotations

import math

#: The shortest production key: 32 random characters carry the 128 bits an HMAC-SHA256 key wants.
MIN_KEY_LENGTH = 32
#: The least estimated entropy, in bits, of a production key.
MIN_KEY_BITS = 64

#: Words of placeholders and examples: a key holding one was written by a person, not drawn.
#: Every placeholder in ``deploy/`` holds one (``tests/ops/test_deploy.py`` checks that the
#: production profile refuses each of them).
PLACEHOLDER_WORDS = (
    "replace", "placeholder", "changeme", "change-me", "change_me", "example", "development",
    "not-for-production", "notforproduction", "compose", "default", "sample", "dummy", "secret",
    "password", "insecure", "testing", "local-only", "localonly",
)


def estimated_bits(secret: str) -> float:
    """A conservative estimate of the entropy of ``secret`` in bits."""
    if not secret:
        return 0.0
    per_char = math.log2(len(set(secret))) if len(set(secret)) > 1 else 0.0
    # A character one step from the one before (abc, 123, aaa, zyx) adds (almost) nothing.
    fresh = 1 + sum(1 for prev, cur in zip(secret, secret[1:]) if abs(ord(cur) - ord(prev)) > 1)
    return per_char * fresh


def key_problem(secret: str) -> str | None:
    """Why ``secret`` must not be a production key, or ``None``. Never repeats the secret."""
    if len(secret) < MIN_KEY_LENGTH:
        return f"it is shorter than {MIN_KEY_LENGTH} characters"
    lowered = secret.lower()
    if any(word in lowered for word in PLACEHOLDER_WORDS):
        return "it is a placeholder or example value, not a random secret"
    if secret in (secret + secret)[1:-1] or estimated_bits(secret) < MIN_KEY_BITS:
        return "it is too predictable (repeats, runs or too few distinct characters)"
    return None


def placeholder_problem(secret: str) -> str | None:
    """Why ``secret`` (a password chosen elsewhere, e.g. the broker's) is a shipped placeholder."""
    if not secret:
        return "it is empty"
    lowered = secret.lower()
    if any(word in lowered for word in PLACEHOLDER_WORDS):
        return "it is a placeholder or example value"
    return None


GENERATE_HINT = "generate one with `openssl rand -base64 48`"
