"""A request's credential, checked: who sent it (a `Principal`), or why it is refused.

`Authorization: Bearer mlf_<id>_<secret>` is an API token, looked up by its id in the
tokens file and its secret checked against the hash (tokens.py). A server may take other
credentials beside tokens (the pipeline endpoint takes its endpoint keys): `keys` says
whether a value is one of them, and `key_role` is the role they carry.

    Unauthenticated (401)  no credential, one that is not a token or key of this
                           workspace, or a token expired or revoked
    Forbidden       (403)  a valid credential whose role is below the route's
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from mlform.access import tokens
from mlform.access.durations import iso
from mlform.access.roles import Role
from mlform.access.tokenfile import TokenSet
from mlform.errors import MlformError

ANONYMOUS = "anonymous"
KEY = "endpoint key"
# scrypt checks at once: each holds 16 MiB and a core for some 40 ms, and a client that
# knows a token's id can ask for one per request; the rest wait their turn.
HASHING_AT_ONCE = 2


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request: a token's name and role (a key: KEY, and the keys' role)."""

    name: str
    role: Role
    token_id: str | None = None


class Denied(MlformError):
    """A refused request: what to tell the client, and who it was for the audit log."""

    def __init__(
        self, message: str, reason: str, actor: str = ANONYMOUS, token_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason  # what the audit log says, in a few words
        self.actor = actor
        self.token_id = token_id


class Unauthenticated(Denied):
    pass


class Forbidden(Denied):
    pass


_MISSING = (
    'this route needs a credential: send the header "Authorization: Bearer <token>" with '
    "an API token (`mlform tokens create NAME --role reader` makes one)"
)
_UNKNOWN = (
    "the credential sent is not an API token of this workspace; `mlform tokens list` "
    "shows the tokens there are"
)


class Gate:
    def __init__(
        self,
        token_set: TokenSet,
        *,
        keys: Callable[[str], bool] | None = None,
        key_role: Role = Role.OPERATOR,
        key_hint: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tokens = token_set
        self.keys = keys
        self.key_role = key_role
        self.missing = _MISSING + (f", or {key_hint}" if key_hint else "")
        self.unknown = _UNKNOWN + (" (or one of the endpoint's keys)" if keys else "")
        self.clock = clock
        # Secrets whose scrypt check passed, as their sha256, by token id and the tokens
        # file's generation: a client pays scrypt once per token, not once per request.
        self._passed: dict[str, tuple[int, bytes]] = {}
        self._lock = threading.Lock()
        self._hashing = threading.BoundedSemaphore(HASHING_AT_ONCE)

    def authenticate(self, authorization: str | None) -> Principal:
        """Who `authorization` (the header's value) is; Unauthenticated if no one. May
        take scrypt's time: call it from a worker thread."""
        if authorization is None:
            raise Unauthenticated(self.missing, "no credential")
        scheme, _, value = authorization.partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            raise Unauthenticated(self.missing, "no bearer credential")
        parsed = tokens.parse(value)
        if parsed is None:
            if self.keys is not None and not value.startswith(tokens.PREFIX) and self.keys(value):
                return Principal(KEY, self.key_role)
            raise Unauthenticated(self.unknown, "not a token or key of this workspace")
        token_id, secret = parsed
        with self._lock:
            known = self.tokens.current()
            generation = self.tokens.generation
        token = known.get(token_id)
        if token is None or not self._matches(secret, token, generation):
            raise Unauthenticated(self.unknown, "not a token of this workspace")
        state = token.status(self.clock())
        if state == "revoked":
            raise Unauthenticated(
                f"the token '{token.name}' was revoked at {iso(token.revoked)}; ask an admin "
                "for a new one (`mlform tokens create`)",
                "revoked token",
                token.name,
                token.id,
            )
        if state == "expired":
            raise Unauthenticated(
                f"the token '{token.name}' expired at {iso(token.expires)}; ask an admin for "
                "a new one (`mlform tokens create`)",
                "expired token",
                token.name,
                token.id,
            )
        return Principal(token.name, token.role, token.id)

    def _matches(self, secret: str, token: tokens.Token, generation: int) -> bool:
        quick = hashlib.sha256(secret.encode("ascii")).digest()
        passed = self._passed.get(token.id)
        if passed is not None and passed[0] == generation:
            return hmac.compare_digest(quick, passed[1])
        with self._hashing:
            if not tokens.matches(secret, token):
                return False
        self._passed[token.id] = (generation, quick)
        return True


def authorize(principal: Principal, needed: Role, route: str) -> None:
    """Pass if `principal` may call `route`, which needs `needed`; else Forbidden."""
    if not principal.role.allows(needed):
        what = "the token" if principal.token_id else "the credential"
        raise Forbidden(
            f"{route} needs the {needed} role; {what} '{principal.name}' has the "
            f"{principal.role} role. Ask an admin for a token with that role",
            f"needs {needed}, has {principal.role}",
            principal.name,
            principal.token_id,
        )
