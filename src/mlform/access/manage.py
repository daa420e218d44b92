"""`mlform tokens create|list|revoke`: the state's `tokens` table, and the servers' copy.

Managing tokens from the command line is the act of the machine's owner (whoever may
read the state may do it); it is recorded under the OS user. Each change rewrites the
tokens file the servers read (tokenfile.py) in the same breath, under the state's lock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from mlform.access import audit, tokenfile, tokens
from mlform.access.actor import os_user
from mlform.access.durations import iso
from mlform.access.roles import Role
from mlform.errors import MlformError, NotFound
from mlform.opened import OpenWorkspace
from mlform.state.store import Store


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What `tokens list` shows of a token: never its secret, nor its hash."""

    name: str
    role: str
    status: str  # active | expired | revoked
    created_at: float
    created_by: str
    expires_at: float | None
    last_used_at: float | None
    revoked_at: float | None


_SELECT = (
    "select id, name, role, salt, hash, epoch(created_at), epoch(expires_at), "
    "epoch(revoked_at), created_by, epoch(last_used_at) from tokens"
)


def create(ws: OpenWorkspace, name: str, role: Role, lasts: float | None) -> tuple[TokenInfo, str]:
    """A new token `name` with `role`, valid for `lasts` seconds (None: until revoked);
    its info and its text, which is shown once and kept nowhere."""
    with ws.store("tokens create", write=True) as store:
        now = time.time()
        taken = [t for t in _tokens(store) if t[0].name == name and t[0].status(now) == "active"]
        if taken:
            raise MlformError(
                f"a token named '{name}' is active; revoke it first (`mlform tokens revoke "
                f"{name}`) or choose another name"
            )
        minted = tokens.mint(name, role, now, None if lasts is None else now + lasts)
        kept = minted.token
        who = os_user()
        with store.transaction(bump=False) as con:
            con.execute(
                "insert into tokens values (?, ?, ?, ?, ?, to_timestamp(?), ?, "
                "to_timestamp(?), null, null)",
                [kept.id, name, str(role), kept.salt, kept.hash, now, who, kept.expires],
            )
            audit.insert(
                con, who, "token.create", f"token/{name}", "succeeded",
                f"role {role}, expires {iso(kept.expires)}",
            )  # fmt: skip
        _publish(store, ws.home)
        return TokenInfo(name, str(role), "active", now, who, kept.expires, None, None), minted.text


def list_(ws: OpenWorkspace) -> list[TokenInfo]:
    """Every token, active or not, oldest first; uses the servers saw recorded first."""
    with ws.store("tokens list", write=True) as store:
        if not tokenfile.path(ws.home).exists():
            _publish(store, ws.home)  # removed by hand: the servers need it
        now = time.time()
        return [
            TokenInfo(t.name, str(t.role), t.status(now), t.created, by, t.expires, used, t.revoked)
            for t, by, used in _tokens(store)
        ]


def revoke(ws: OpenWorkspace, name: str) -> int:
    """Revoke the tokens named `name` that are not revoked yet; how many there were."""
    with ws.store("tokens revoke", write=True) as store:
        found = [t for t, _, _ in _tokens(store) if t.name == name and t.revoked is None]
        if not found:
            names = sorted({t.name for t, _, _ in _tokens(store) if t.revoked is None})
            raise NotFound(
                f"no token named '{name}' to revoke (tokens not revoked: "
                f"{', '.join(names) or 'none'}); `mlform tokens list` shows them all"
            )
        who = os_user()
        with store.transaction(bump=False) as con:
            con.execute(
                "update tokens set revoked_at = now() where name = ? and revoked_at is null",
                [name],
            )
            audit.insert(con, who, "token.revoke", f"token/{name}", "succeeded", "")
        _publish(store, ws.home)
        return len(found)


def _tokens(store: Store) -> list[tuple[tokens.Token, str, float | None]]:
    rows = store.query(_SELECT + " order by created_at, name")
    return [
        (
            tokens.Token(r[0], r[1], Role[r[2].upper()], r[3], r[4], r[5], r[6], r[7]),
            str(r[8]),
            r[9],
        )
        for r in rows
    ]


def _publish(store: Store, state_dir: Path) -> None:
    tokenfile.write(state_dir, [t for t, _, _ in _tokens(store)])
