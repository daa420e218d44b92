"""How a plan sees that a secret changed without ever holding its value.

A resource that references secrets gets a component `secret:NAME` per secret: the
HMAC-SHA256 of the value under a key of 32 random bytes, and a component
`fingerprint-key` naming that key by a hash of it (never the key). The key lives in
`secrets/fingerprint.key` beside the state, 0600, made the first time it is needed;
`MLFORM_SECRETS_FINGERPRINT_KEY` (its 64 hex digits) overrides the file, for machines that
share one state (a CI job and a maintainer's laptop). Without the key, the state's
fingerprints say nothing about the values: a guess costs an HMAC per candidate under a
key no one has, where a plain hash of a short token could be searched.

Fingerprints are not part of a resource's digest: a fingerprint made under another key
cannot be compared, and must not look like a change. The planner tells the two apart
(`mlform.plan.fingerprints`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from mlform import durable, private
from mlform.errors import SecretError
from mlform.plan.fingerprints import ENV

_KEY_BYTES = 32


def key_path(state_dir: Path) -> Path:
    return state_dir / "secrets" / "fingerprint.key"


def load_key(state_dir: Path) -> bytes:
    """The fingerprint key: from the environment, else the file beside the state (made,
    0600, on first use; two processes making it at once agree on the first one)."""
    given = os.environ.get(ENV)
    if given is not None:
        return _parse(given, ENV)
    path = key_path(state_dir)
    try:
        return _parse(path.read_text(encoding="ascii"), str(path))
    except FileNotFoundError:
        pass
    private.folder(path.parent)
    private.restrict(path.parent, private.FOLDER)
    partial = durable.partial(path)
    private.write(partial, (secrets.token_bytes(_KEY_BYTES).hex() + "\n").encode())
    try:
        os.link(partial, path)  # fails if another process made it first: use theirs
    except FileExistsError:
        pass
    finally:
        partial.unlink(missing_ok=True)
    return _parse(path.read_text(encoding="ascii"), str(path))


def _parse(text: str, where: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) != _KEY_BYTES:
        raise SecretError(
            f"{where} does not hold a secrets fingerprint key ({_KEY_BYTES * 2} hex digits); "
            f"copy the key the state was applied with, or remove {where} to make a new one"
        )
    return key


def key_id(key: bytes) -> str:
    """A name for the key that reveals nothing of it."""
    return hashlib.sha256(b"mlform fingerprint key\0" + key).hexdigest()[:16]


def fingerprint(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()
