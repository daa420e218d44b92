"""Who may look: the studio on 127.0.0.1 is this machine's user's; anywhere else, only
whoever holds its token.

A studio bound to anything but a loopback address must have a token (`--token`, or one
made and printed at start); `check_bind` refuses the start otherwise. Every request then
carries it: `Authorization: Bearer TOKEN`, or `?token=TOKEN` once, which a browser keeps
as a cookie (HttpOnly, SameSite=Strict) so the pages' own requests carry it. The token
is compared in constant time (`hmac.compare_digest` of SHA-256 digests) and checked
before anything of the request is read: a request without it is a 401 that reveals
nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from mlform.errors import MlformError

COOKIE = "mlform_studio"


class StudioError(MlformError):
    """The studio cannot start as asked."""


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> str | None:
    """The token the studio requires on `host` (None on loopback without one given);
    a StudioError for a non-loopback bind with no token at all."""
    if token is not None and len(token) < 16:
        raise StudioError("--token must be at least 16 characters: a short one can be guessed")
    if token is None and not loopback(host):
        raise StudioError(
            f"the studio would listen on {host}, where anyone who reaches this machine could "
            "read the state: give it a token (`--token`, 16 characters or more, or "
            "`--token generate`), or listen on 127.0.0.1"
        )
    return token


def new_token() -> str:
    return secrets.token_urlsafe(24)


class TokenGate:
    """ASGI middleware: every HTTP request must carry the token, or gets a 401."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.digest = hashlib.sha256(token.encode()).digest()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # any of the ways a request carries it: a cookie left by an earlier studio's
        # token does not hide the one in the address
        matched = next(
            ((given, how) for given, how in _presented(scope) if self._matches(given)), None
        )
        if matched is None:
            await _refuse(send)
            return
        given, how = matched
        if how != "query":
            await self.app(scope, receive, send)
            return

        async def keep(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                cookie = f"{COOKIE}={given}; Path=/; HttpOnly; SameSite=Strict".encode()
                message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie)]
            await send(message)

        await self.app(scope, receive, keep)

    def _matches(self, presented: str) -> bool:
        return hmac.compare_digest(hashlib.sha256(presented.encode()).digest(), self.digest)


def _presented(scope: Scope) -> list[tuple[str, str]]:
    """Each token a request carries, and how: `header`, `cookie` or `query`."""
    found: list[tuple[str, str]] = []
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, given = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and given.strip():
                found.append((given.strip(), "header"))
        elif name == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed cookie header carries no token
                continue
            if COOKIE in jar:
                found.append((jar[COOKIE].value, "cookie"))
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    found.extend((given, "query") for given in query.get("token", [])[:1])
    return found


async def _refuse(send: Send) -> None:
    body = (
        b"401: this studio needs its token: open it with ?token=TOKEN once, or send "
        b"Authorization: Bearer TOKEN\n"
    )
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b"Bearer"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
