"""Key auth for POST /score: `Authorization: Bearer <key>` against the deployment's keys.

The server holds only sha256 digests of its keys (as the state file does), so a key
given in plain text is hashed once at startup, and a presented key is hashed and
compared with `hmac.compare_digest` against every digest: a request takes the same time
whichever key it matches, or none.

    KeyMissing    no Authorization header, or not `Bearer <key>`   (401)
    KeyRejected   a well-formed key that is none of the keys       (401)
    NotAllowed    a valid token, for another endpoint              (403)

With `auth_mode: token` the server takes tokens instead of keys, as Azure ML's
`aml_token` endpoints do: `mlt1.<payload>.<signature>`, where the payload names the
endpoint, an expiry time and the key that signed it (`kid`), and the signature is
HMAC-SHA256 of the payload under that key: one of the endpoint's token keys, 32 random
bytes each, in a file only its owner reads (`keyring`). Not under the keys' digests: the
state holds those, and whoever reads the state could then sign tokens. `mlform endpoints
token NAME` makes one (an hour by default, a day at most). An expired, malformed or
forged token is a 401, and so is one signed with a key the ring no longer keeps or one
that claims to live longer than a day; a token made for another endpoint is a 403.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import string
import time
from collections.abc import Callable, Sequence

from mlform.serving.keyring import MAX_TOKEN_LIFETIME, UNMARKED, KeyRing
from mlform.serving.scoring import ServingError

CHALLENGE = {"WWW-Authenticate": "Bearer"}
_HEX = frozenset(string.hexdigits)


class KeyMissing(ServingError):
    pass


class KeyRejected(ServingError):
    pass


class NotAllowed(ServingError):
    pass


_MISSING = (
    'this deployment requires a key: send the header "Authorization: Bearer <key>" '
    "with one of the deployment's keys"
)
_REJECTED = (
    "the key sent is not one of this deployment's keys; it may have been rotated: "
    "get the deployment's current keys"
)


_TOKEN_PREFIX = "mlt1."
_TOKEN_MISSING = (
    'this deployment requires a token: send the header "Authorization: Bearer <token>" '
    "with a token from `mlform endpoints token ENDPOINT`"
)
_TOKEN_REJECTED = (
    "the token sent was not signed with this endpoint's token key; it may be older than the "
    "key: get a new one with `mlform endpoints token ENDPOINT`"
)
_SKEW = 300.0  # seconds a token's expiry may pass the longest lifetime by (clocks differ)


class KeyCheck:
    """The keys a request may present: plain `keys` and sha256 hex `key_hashes`; with
    `token_keys`, tokens signed with a key of the ring it gives instead (asked per token,
    so a ring re-read from its file applies at once), for `endpoint`, at `clock()`."""

    def __init__(
        self,
        keys: Sequence[str] = (),
        key_hashes: Sequence[str] = (),
        *,
        token_keys: Callable[[], KeyRing] | None = None,
        endpoint: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        digests = [hashlib.sha256(key.encode("utf-8")).digest() for key in keys]
        digests += [bytes.fromhex(check_key_hash(digest)) for digest in key_hashes]
        if not digests and token_keys is None:
            raise ValueError("a KeyCheck needs a key, a key hash or token keys")
        self.digests = tuple(digests)
        self.token_keys = token_keys
        self.tokens = token_keys is not None
        self.endpoint = endpoint
        self.clock = clock

    def verify(self, authorization: str | None) -> None:
        """Pass if `authorization` (the header's value) holds a key; else raise why not."""
        if authorization is None:
            raise KeyMissing(_MISSING)
        scheme, _, key = authorization.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise KeyMissing(_TOKEN_MISSING if self.tokens else _MISSING)
        if self.tokens:
            self._token(key)
            return
        # Headers arrive as latin-1 text; hashing their bytes handles any key alike.
        presented = hashlib.sha256(key.encode("latin-1")).digest()
        matched = False
        for digest in self.digests:  # no early exit: timing must not tell which key
            matched |= hmac.compare_digest(presented, digest)
        if not matched:
            raise KeyRejected(_REJECTED)

    def _token(self, token: str) -> None:
        parts = token.split(".")
        if len(parts) != 3 or f"{parts[0]}." != _TOKEN_PREFIX:
            raise KeyMissing(f"that is not a token; {_TOKEN_MISSING}")
        payload = parts[1].encode("ascii", "replace")
        try:
            claims = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
            expires = float(claims["exp"])
            audience = str(claims["aud"])
            kid = str(claims.get("kid", UNMARKED))
            signature = bytes.fromhex(parts[2])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise KeyMissing(f"that token cannot be read; {_TOKEN_MISSING}") from None
        assert self.token_keys is not None
        now = self.clock()
        key = self.token_keys().find(kid, now)
        # A key the ring does not hold fails as a wrong signature does, in the same time.
        secret = key.secret if key is not None else _NO_KEY
        expected = hmac.new(secret, payload, hashlib.sha256).digest()
        if not hmac.compare_digest(signature, expected) or key is None:
            raise KeyRejected(_TOKEN_REJECTED)
        if self.endpoint and audience != self.endpoint:
            raise NotAllowed(f"the token is for endpoint {audience}, not {self.endpoint}")
        if expires < now:
            raise KeyMissing(
                f"the token expired at {_utc(expires)}; get a new one with "
                f"`mlform endpoints token {audience}`"
            )
        if expires > now + MAX_TOKEN_LIFETIME + _SKEW:
            raise KeyRejected(
                f"the token is valid until {_utc(expires)}, longer than a token may live "
                f"({MAX_TOKEN_LIFETIME // 3600} hours); get a new one with "
                f"`mlform endpoints token {audience}`"
            )


_NO_KEY = bytes(32)


def mint(
    secret: bytes,
    endpoint: str,
    seconds: float,
    now: float | None = None,
    *,
    kid: str | None = None,
) -> tuple[str, float]:
    """A token for `endpoint`, signed with `secret` (the key named `kid`), valid for
    `seconds`; and its expiry. ValueError beyond `MAX_TOKEN_LIFETIME`."""
    if not 0 < seconds <= MAX_TOKEN_LIFETIME:
        raise ValueError(
            f"a token lives more than 0 and at most {MAX_TOKEN_LIFETIME} seconds, not {seconds:g}"
        )
    expires = round((time.time() if now is None else now) + seconds)
    claims: dict[str, object] = {"aud": endpoint, "exp": expires}
    if kid is not None:
        claims["kid"] = kid
    text = json.dumps(claims, separators=(",", ":"))
    payload = base64.urlsafe_b64encode(text.encode()).rstrip(b"=")
    signature = hmac.new(secret, payload, hashlib.sha256).hexdigest()
    return f"{_TOKEN_PREFIX}{payload.decode()}.{signature}", float(expires)


def _utc(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def check_key_hash(text: str) -> str:
    """`text` if it is a sha256 hex digest (64 hex digits), lower-cased; else ValueError."""
    if len(text) != 64 or not _HEX.issuperset(text):
        raise ValueError(
            f"{text!r} is not a sha256 hex digest (64 hex digits); give each key's digest, "
            "as `printf %s KEY | sha256sum` prints it"
        )
    return text.lower()


def parse_key_hashes(text: str) -> tuple[str, ...]:
    """Comma-separated sha256 hex digests (`MLFORM_KEY_HASHES`); blanks are skipped."""
    return tuple(check_key_hash(part.strip()) for part in text.split(",") if part.strip())
