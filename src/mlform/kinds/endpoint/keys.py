"""Endpoint keys. The state keeps only their sha256 (what servers check against); the
keys themselves are in a file readable by the workspace's owner only, so `mlform
endpoints keys NAME` can show them, as `az ml online-endpoint get-credentials` does."""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path

from mlform import private

SLOTS = ("primary", "secondary")


def hashed(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def path(state_dir: Path, endpoint: str) -> Path:
    return state_dir / "secrets" / "endpoints" / f"{endpoint}.json"


def load(state_dir: Path, endpoint: str) -> dict[str, str]:
    try:
        data = json.loads(path(state_dir, endpoint).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {slot: str(data[slot]) for slot in SLOTS if slot in data}


def ensure(state_dir: Path, endpoint: str, regenerate: tuple[str, ...] = ()) -> dict[str, str]:
    """The endpoint's keys, made for the slots that have none (or are regenerated)."""
    keys = load(state_dir, endpoint)
    for slot in SLOTS:
        if slot not in keys or slot in regenerate:
            keys[slot] = secrets.token_urlsafe(32)
    secrets_folder(state_dir)
    private.write(path(state_dir, endpoint), json.dumps(keys).encode())
    return keys


def secrets_folder(state_dir: Path) -> Path:
    """`secrets/` beside the state, 0700 (older mlform made it with the umask's mode)."""
    folder = private.folder(state_dir / "secrets")
    private.restrict(folder, private.FOLDER)
    return folder


def remove(state_dir: Path, endpoint: str) -> None:
    path(state_dir, endpoint).unlink(missing_ok=True)
