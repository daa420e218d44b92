"""API tokens: `mlf_<id>_<secret>`, an id to look the token up by and a random secret.

Only a hash of the secret is kept, anywhere: scrypt (RFC 7914, in the standard library)
with a salt of its own per token, so two tokens never share a hash and a stolen copy of
the hashes cannot be checked against guesses for all tokens at once. The secret is 256
random bits, beyond any guessing; scrypt is there so that the hashes are worth nothing
even to whoever reads them. A presented secret is hashed the same way and compared with
`hmac.compare_digest`, which takes the same time wherever the two differ.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from mlform.access.roles import Role

PREFIX = "mlf_"
_ID = re.compile(r"[0-9a-f]{12}")
_SECRET = re.compile(r"[A-Za-z0-9_-]{32,128}")
# scrypt's cost: 16 MiB and some 40 ms a check here. Checks that passed are remembered by
# the servers (see gate.py), so a client pays it once, not per request.
N, R, P, LENGTH = 2**14, 8, 1, 32
_MAX_MEM = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Token:
    """A token as kept: never its secret, only the salt and hash of it."""

    id: str
    name: str
    role: Role
    salt: str  # hex
    hash: str  # `scrypt$N$R$P$hex`
    created: float  # epoch seconds
    expires: float | None  # None: never
    revoked: float | None = None

    def status(self, now: float) -> str:
        if self.revoked is not None:
            return "revoked"
        if self.expires is not None and self.expires <= now:
            return "expired"
        return "active"


@dataclass(frozen=True, slots=True)
class Minted:
    """A new token: what is kept, and the whole token, shown to its owner once."""

    token: Token
    text: str


def mint(name: str, role: Role, created: float, expires: float | None) -> Minted:
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    kept = Token(token_id, name, role, salt.hex(), digest(secret, salt), created, expires)
    return Minted(kept, f"{PREFIX}{token_id}_{secret}")


def parse(text: str) -> tuple[str, str] | None:
    """(id, secret) of a token's text; None if it is not one's form."""
    if not text.startswith(PREFIX):
        return None
    token_id, _, secret = text[len(PREFIX) :].partition("_")
    if not _ID.fullmatch(token_id) or not _SECRET.fullmatch(secret):
        return None
    return token_id, secret


def digest(secret: str, salt: bytes) -> str:
    derived = hashlib.scrypt(
        secret.encode("ascii"), salt=salt, n=N, r=R, p=P, dklen=LENGTH, maxmem=_MAX_MEM
    )
    return f"scrypt${N}${R}${P}${derived.hex()}"


def matches(secret: str, token: Token) -> bool:
    """Whether `secret` is `token`'s: hashed as it was, compared in constant time."""
    scheme, n, r, p, expected = (token.hash.split("$") + [""] * 5)[:5]
    if scheme != "scrypt" or (n, r, p) != (str(N), str(R), str(P)):
        return False  # a form this mlform does not make: never a match
    presented = hashlib.scrypt(
        secret.encode("ascii"),
        salt=bytes.fromhex(token.salt),
        n=N,
        r=R,
        p=P,
        dklen=LENGTH,
        maxmem=_MAX_MEM,
    )
    return hmac.compare_digest(presented.hex(), expected)
