"""The key an `auth_mode: token` endpoint's tokens are signed with.

32 random bytes per endpoint in `secrets/tokens/<endpoint>.key` beside the state, mode
0600, and nowhere else: not in the state, a plan or a log, and not derived from anything
they hold (the state keeps the sha256 of the endpoint's keys, so tokens signed with those
could be made by anyone who reads the state). A deployment's server reads the file named
by MLFORM_TOKEN_KEY_FILE (a container gets it mounted), never the key in its environment.

The key is renewed with the endpoint's keys: after `mlform endpoints keys NAME
--regenerate`, the apply that rolls the deployments onto the new keys makes a new token
key, so tokens made before stop working then, and not before.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from mlform import private
from mlform.endpoints.keys import secrets_folder
from mlform.serving.auth import read_token_key, token_key_text

TOKEN_MODES = ("token", "aml_token")  # Azure ML's name, and the short one


def path(state_dir: Path, endpoint: str) -> Path:
    return state_dir / "secrets" / "tokens" / f"{endpoint}.key"


def load(state_dir: Path, endpoint: str) -> bytes | None:
    try:
        return read_token_key(path(state_dir, endpoint))
    except ValueError:
        return None


def ensure(state_dir: Path, endpoint: str, keys_digest: str) -> Path:
    """The token key's file, with a new key unless it holds one made for these keys."""
    target = path(state_dir, endpoint)
    if _made_for(target) == keys_digest and load(state_dir, endpoint) is not None:
        private.restrict(target)
        return target
    secrets_folder(state_dir)
    private.write(target, token_key_text(secrets.token_bytes(32), keys_digest).encode())
    return target


def remove(state_dir: Path, endpoint: str) -> None:
    path(state_dir, endpoint).unlink(missing_ok=True)


def _made_for(target: Path) -> str | None:
    try:
        return str(json.loads(target.read_text(encoding="utf-8"))["keys"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
