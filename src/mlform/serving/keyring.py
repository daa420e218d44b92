"""An endpoint's token keys: the current one, which signs new tokens, and the previous
ones, each kept until the last token it could have signed has expired.

A token lives at most `MAX_TOKEN_LIFETIME` (a day), so a key retired at time T signed no
token valid after T + a day: the ring keeps it until then (`keep_until`), and servers
ignore it after, whether or not the file has been rewritten since. Tokens name the key
that signed them (`kid`), so a server picks the key at once instead of trying each.

The file is JSON, 0600, replaced atomically by mlform (servers never read half of it):

    {"format": 2, "made_for": "<digest of the endpoint's keys>", "current": "3f2a9c1b",
     "keys": [{"kid": "3f2a9c1b", "key": "<64 hex>"},
              {"kid": "a41e07d2", "key": "<64 hex>", "keep_until": 1765000000}],
     "token_key": "<the current key's 64 hex>"}

`token_key` repeats the current key as format 1 held it, so a server started by an older
mlform still reads the file. Format 1, `{"token_key": hex, "keys": digest}`, reads as a
ring of that one key with kid `UNMARKED`: its tokens carry no kid, and a token without
one is checked against that key for as long as the ring keeps it.

Like the rest of the serving runtime, this module imports only the standard library.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger("mlform.serving.keyring")

FORMAT = 2
MAX_TOKEN_LIFETIME = 24 * 3600  # seconds; a longer token is neither made nor accepted
UNMARKED = "format-1"  # the kid of a key read from a format 1 file, which tokens never named
KEY_BYTES = 32
_MAX_KID = 32


@dataclass(frozen=True, slots=True)
class TokenKey:
    kid: str
    secret: bytes = b""
    keep_until: float | None = None  # None: the current key

    def live(self, now: float) -> bool:
        return self.keep_until is None or now <= self.keep_until

    def __repr__(self) -> str:  # never the secret, whatever prints it
        return f"TokenKey(kid={self.kid!r}, keep_until={self.keep_until!r})"


@dataclass(frozen=True, slots=True)
class KeyRing:
    current: TokenKey
    previous: tuple[TokenKey, ...] = ()
    made_for: str = ""  # the digest of the endpoint's keys the ring was made with

    def find(self, kid: str, now: float) -> TokenKey | None:
        """The key named `kid` if the ring holds it and keeps it at `now`."""
        if kid == self.current.kid:
            return self.current
        for key in self.previous:
            if key.kid == kid:
                return key if key.live(now) else None
        return None


def parse(text: str) -> KeyRing:
    """The ring in `text` (format 2, or format 1); ValueError saying what is wrong."""
    try:
        document = json.loads(text)
    except ValueError as err:
        raise ValueError(f"it is not JSON ({err})") from None
    if not isinstance(document, dict):
        raise ValueError("it is not a JSON object")
    if "format" not in document:
        secret = _secret(document.get("token_key"), "token_key")
        return KeyRing(TokenKey(UNMARKED, secret), made_for=str(document.get("keys", "")))
    if document["format"] != FORMAT:
        raise ValueError(
            f"its format is {document['format']!r}, which this mlform does not know "
            f"(it reads {FORMAT}); a newer mlform wrote it"
        )
    entries = document.get("keys")
    if not isinstance(entries, list) or not entries:
        raise ValueError("keys must be a non-empty list")
    keys = [_key(entry, f"keys[{i}]") for i, entry in enumerate(entries)]
    current = [key for key in keys if key.kid == document.get("current")]
    if len(current) != 1 or current[0].keep_until is not None:
        raise ValueError("current must name one key of keys, with no keep_until")
    if len({key.kid for key in keys}) != len(keys):
        raise ValueError("two keys of keys have the same kid")
    previous = tuple(key for key in keys if key is not current[0])
    return KeyRing(current[0], previous, str(document.get("made_for", "")))


def dump(ring: KeyRing) -> str:
    """The file's text for `ring` (format 2)."""
    keys: list[dict[str, Any]] = []
    for key in (ring.current, *ring.previous):
        entry: dict[str, Any] = {"kid": key.kid, "key": key.secret.hex()}
        if key.keep_until is not None:
            entry["keep_until"] = key.keep_until
        keys.append(entry)
    document = {
        "format": FORMAT,
        "made_for": ring.made_for,
        "current": ring.current.kid,
        "keys": keys,
        "token_key": ring.current.secret.hex(),
    }
    return json.dumps(document, indent=1) + "\n"


def read(path: Path) -> KeyRing:
    """The ring in the file at `path`; ValueError saying why not."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ValueError(f"cannot read the token key file {path}: {err.strerror}") from None
    try:
        return parse(text)
    except ValueError as err:
        raise ValueError(
            f"{path} holds no usable token keys: {err} (`mlform apply` writes it under "
            ".mlform/secrets/tokens/)"
        ) from None


class RingFile:
    """The ring in a file, re-read when the file changes: `ring()` costs one stat, so a
    server calls it per request and picks up a rotation with the next one. A file that
    becomes unreadable keeps the ring read before (a warning is logged once for it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._signature: tuple[int, int, int] | None = None
        with contextlib.suppress(OSError):  # then `read` says why
            self._signature = _signature(path)  # before reading: a change between is seen
        self._ring = read(path)

    def ring(self) -> KeyRing:
        try:
            signature = _signature(self.path)
        except OSError as err:
            if self._signature is not None:
                logger.warning("cannot read %s (%s); keeping the keys read before", self.path, err)
                self._signature = None
            return self._ring
        if signature != self._signature:
            self._signature = signature
            try:
                self._ring = read(self.path)
            except ValueError as err:
                logger.warning("%s; keeping the keys read before", err)
            else:
                current = self._ring.current.kid
                logger.info("token keys reloaded from %s: current key %s", self.path, current)
        return self._ring


def _signature(path: Path) -> tuple[int, int, int]:
    # The inode changes with os.replace even when mtime_ns does not (coarse clocks).
    stat = os.stat(path)
    return stat.st_mtime_ns, stat.st_ino, stat.st_size


def _key(entry: object, where: str) -> TokenKey:
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be an object with kid and key")
    kid = entry.get("kid")
    if not isinstance(kid, str) or not 0 < len(kid) <= _MAX_KID:
        raise ValueError(f"{where}.kid must be a string of 1 to {_MAX_KID} characters")
    keep_until = entry.get("keep_until")
    if keep_until is not None and (
        isinstance(keep_until, bool) or not isinstance(keep_until, int | float)
    ):
        raise ValueError(f"{where}.keep_until must be a time (seconds since 1970)")
    return TokenKey(kid, _secret(entry.get("key"), f"{where}.key"), keep_until)


def _secret(text: object, where: str) -> bytes:
    try:
        secret = bytes.fromhex(text) if isinstance(text, str) else b""
    except ValueError:
        secret = b""
    if len(secret) < KEY_BYTES:
        raise ValueError(f"{where} must be {2 * KEY_BYTES} hex digits or more")
    return secret
