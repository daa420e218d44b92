"""The servers' copy of the API tokens: `<state dir>/access/tokens.json`, 0600.

A server must not hold the state (one DuckDB writer at a time, and `apply` is it), so
`mlform tokens create|revoke` write this file from the state's `tokens` table, replaced
whole, and each server reads it again when it changes (its size, mtime or inode do), as
the router reads its routes file. It holds what the state holds: names, roles, times, and
each secret's salt and scrypt hash, never a secret.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlform import private
from mlform.access.roles import Role
from mlform.access.tokens import Token

logger = logging.getLogger("mlform.access")


def folder(state_dir: Path) -> Path:
    return state_dir / "access"


def path(state_dir: Path) -> Path:
    return folder(state_dir) / "tokens.json"


def write(state_dir: Path, tokens: Sequence[Token]) -> None:
    private.folder(folder(state_dir))
    rows = [
        {
            "id": t.id,
            "name": t.name,
            "role": str(t.role),
            "salt": t.salt,
            "hash": t.hash,
            "created": t.created,
            "expires": t.expires,
            "revoked": t.revoked,
        }
        for t in tokens
    ]
    text = json.dumps({"tokens": rows}, indent=1) + "\n"
    private.write(path(state_dir), text.encode("utf-8"))


def read(file: Path) -> dict[str, Token]:
    """The tokens in `file`, by id; none if it is missing. A row that does not read is
    left out (and logged): a token it cannot check is a token it refuses."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        logger.warning("cannot read the API tokens in %s (%s); refusing every token", file, err)
        return {}
    found: dict[str, Token] = {}
    for row in data.get("tokens", []) if isinstance(data, dict) else []:
        try:
            token = _token(row)
        except (KeyError, TypeError, ValueError) as err:
            logger.warning("%s: a token row does not read (%s); it is refused", file, err)
            continue
        found[token.id] = token
    return found


def _token(row: Any) -> Token:
    def when(key: str) -> float | None:
        return None if row[key] is None else float(row[key])

    created = when("created")
    if created is None:
        raise ValueError("no created time")
    return Token(
        str(row["id"]),
        str(row["name"]),
        Role[str(row["role"]).upper()],
        str(row["salt"]),
        str(row["hash"]),
        created,
        when("expires"),
        when("revoked"),
    )


class TokenSet:
    """The tokens in a tokens file, read again whenever the file changes."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.generation = 0  # counts the reads: what was learnt from an older one is stale
        self._signature: tuple[int, int, int] | None = None
        self._tokens: dict[str, Token] = {}

    def current(self) -> dict[str, Token]:
        try:
            info = os.stat(self.file)
            signature: tuple[int, int, int] | None = (
                info.st_ino,
                info.st_size,
                info.st_mtime_ns,
            )
        except FileNotFoundError:
            signature = None
        if signature != self._signature or self.generation == 0:
            self._tokens = read(self.file) if signature is not None else {}
            self._signature = signature
            self.generation += 1
        return self._tokens
