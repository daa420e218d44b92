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
endpoint and an expiry time and the signature is HMAC-SHA256 of the payload under the
endpoint's token key: 32 random bytes of its own, in a file only its owner reads (see
`read_token_key`). Not under the keys' digests: the state holds those, and whoever reads
the state could then sign tokens. `mlform endpoints token NAME` makes one (an hour by
default). An expired or malformed or forged token is a 401; a token made for another
endpoint a 403.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import string
import time
from collections.abc import Callable, Sequence
from pathlib import Path

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


class KeyCheck:
    """The keys a request may present: plain `keys` and sha256 hex `key_hashes`; with a
    `token_key`, tokens signed with it instead (for `endpoint`, checked at `clock()`)."""

    def __init__(
        self,
        keys: Sequence[str] = (),
        key_hashes: Sequence[str] = (),
        *,
        token_key: bytes | None = None,
        endpoint: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        digests = [hashlib.sha256(key.encode("utf-8")).digest() for key in keys]
        digests += [bytes.fromhex(check_key_hash(digest)) for digest in key_hashes]
        if not digests and token_key is None:
            raise ValueError("a KeyCheck needs a key, a key hash or a token key")
        self.digests = tuple(digests)
        self.token_key = token_key
        self.tokens = token_key is not None
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
            signature = bytes.fromhex(parts[2])
        except (ValueError, KeyError, TypeError):
            raise KeyMissing(f"that token cannot be read; {_TOKEN_MISSING}") from None
        assert self.token_key is not None
        expected = hmac.new(self.token_key, payload, hashlib.sha256).digest()
        if not hmac.compare_digest(signature, expected):
            raise KeyRejected(_TOKEN_REJECTED)
        if self.endpoint and audience != self.endpoint:
            raise NotAllowed(f"the token is for endpoint {audience}, not {self.endpoint}")
        if expires < self.clock():
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
            raise KeyMissing(
                f"the token expired at {when}; get a new one with "
                f"`mlform endpoints token {audience}`"
            )


def mint(
    token_key: bytes, endpoint: str, seconds: float, now: float | None = None
) -> tuple[str, float]:
    """A token for `endpoint`, signed with `token_key`, valid for `seconds`; and its expiry."""
    expires = (time.time() if now is None else now) + seconds
    claims = json.dumps({"aud": endpoint, "exp": round(expires)}, separators=(",", ":"))
    payload = base64.urlsafe_b64encode(claims.encode()).rstrip(b"=")
    signature = hmac.new(token_key, payload, hashlib.sha256).hexdigest()
    return f"{_TOKEN_PREFIX}{payload.decode()}.{signature}", float(round(expires))


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


def token_key_text(token_key: bytes, keys_digest: str) -> str:
    """A token key file's content: the key and the digest of the keys it was made with
    (a new key is made when they change), as JSON."""
    return json.dumps({"token_key": token_key.hex(), "keys": keys_digest}) + "\n"


def read_token_key(path: Path) -> bytes:
    """The token key in the file at `path` (`token_key_text`); ValueError saying why not."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ValueError(f"cannot read the token key file {path}: {err.strerror}") from None
    try:
        key = bytes.fromhex(json.loads(text)["token_key"])
    except (ValueError, KeyError, TypeError):
        key = b""
    if len(key) < 32:
        raise ValueError(
            f'{path} holds no token key: it should be JSON with "token_key": 64 hex '
            "digits or more (as `mlform apply` writes it under .mlform/secrets/tokens/)"
        )
    return key
