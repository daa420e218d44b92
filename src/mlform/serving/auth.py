"""Key auth for POST /score: `Authorization: Bearer <key>` against the deployment's keys.

The server holds only sha256 digests of its keys (as the state file does), so a key
given in plain text is hashed once at startup, and a presented key is hashed and
compared with `hmac.compare_digest` against every digest: a request takes the same time
whichever key it matches, or none.

    KeyMissing    no Authorization header, or not `Bearer <key>`   (401)
    KeyRejected   a well-formed key that is none of the keys       (403)
"""

from __future__ import annotations

import hashlib
import hmac
import string
from collections.abc import Sequence

from mlform.serving.scoring import ServingError

CHALLENGE = {"WWW-Authenticate": "Bearer"}
_HEX = frozenset(string.hexdigits)


class KeyMissing(ServingError):
    pass


class KeyRejected(ServingError):
    pass


_MISSING = (
    'this deployment requires a key: send the header "Authorization: Bearer <key>" '
    "with one of the deployment's keys"
)
_REJECTED = (
    "the key sent is not one of this deployment's keys; it may have been rotated: "
    "get the deployment's current keys"
)


class KeyCheck:
    """The keys a request may present: plain `keys` and sha256 hex `key_hashes`."""

    def __init__(self, keys: Sequence[str] = (), key_hashes: Sequence[str] = ()) -> None:
        digests = [hashlib.sha256(key.encode("utf-8")).digest() for key in keys]
        digests += [bytes.fromhex(check_key_hash(digest)) for digest in key_hashes]
        if not digests:
            raise ValueError("a KeyCheck needs at least one key or key hash")
        self.digests = tuple(digests)

    def verify(self, authorization: str | None) -> None:
        """Pass if `authorization` (the header's value) holds a key; else raise why not."""
        if authorization is None:
            raise KeyMissing(_MISSING)
        scheme, _, key = authorization.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise KeyMissing(_MISSING)
        # Headers arrive as latin-1 text; hashing their bytes handles any key alike.
        presented = hashlib.sha256(key.encode("latin-1")).digest()
        matched = False
        for digest in self.digests:  # no early exit: timing must not tell which key
            matched |= hmac.compare_digest(presented, digest)
        if not matched:
            raise KeyRejected(_REJECTED)


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
