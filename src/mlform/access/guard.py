"""The Starlette middleware every mlform server puts in front of its routes.

Each route needs a role (`Rule`); a route no rule names needs a credential of any role,
so a route added without a rule is never open. The credential is checked from the
request's headers alone, before the app is called, so nothing of a refused request's
body is read. A refusal is answered by the server's own `refuse` (its one place mapping
errors to statuses), and recorded in the journal with who it was (a token's name, or
"anonymous") and the route. An allowed request carries its `Principal` in
`request.state.principal` (see `principal`) for the handler to record who did what.

    app = AccessGuard(app, rules=[Rule("GET", "/health", None),
                                  Rule("GET", "/pipelines", Role.READER),
                                  Rule("POST", "/pipelines/{name}/runs", Role.OPERATOR)],
                      gate=gate, journal=journal, refuse=refuse)
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from mlform.access.gate import Denied, Gate, Principal, authorize
from mlform.access.journal import Journal
from mlform.access.roles import Role

USE_EVERY = 60.0  # seconds between two "used" lines of one token in the journal
_MAX_ROUTE = 300  # characters of a refused route kept in the audit log


@dataclass(frozen=True, slots=True)
class Rule:
    """`method` on paths matching `path` (a Starlette template) needs `role`; None: open.
    GET covers HEAD, as Starlette's routes do."""

    method: str
    path: str
    role: Role | None

    def matches(self, method: str, path: str) -> bool:
        if method != self.method and not (method == "HEAD" and self.method == "GET"):
            return False
        return _pattern(self.path).fullmatch(path) is not None


@cache
def _pattern(template: str) -> re.Pattern[str]:
    return compile_path(template)[0]


class AccessGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        rules: Sequence[Rule],
        gate: Gate,
        journal: Journal,
        refuse: Callable[[Denied], Response],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.rules = tuple(rules)
        self.gate = gate
        self.journal = journal
        self.refuse = refuse
        self.clock = clock
        self._used: dict[str, float] = {}

    def needed(self, method: str, path: str) -> Role | None:
        """The role `method path` needs (None: open to anyone)."""
        for rule in self.rules:
            if rule.matches(method, path):
                return rule.role
        return Role.READER

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        needed = self.needed(method, path)
        if needed is None:
            await self.app(scope, receive, send)
            return
        route = f"{method} {path}"[:_MAX_ROUTE]
        authorization = Headers(scope=scope).get("authorization")
        try:
            found = await run_in_threadpool(self.gate.authenticate, authorization)
            authorize(found, needed, route)
        except Denied as err:
            response = self.refuse(err)
            await run_in_threadpool(
                self.journal.record,
                "denied",
                err.actor,
                route,
                response.status_code,
                err.reason,
                err.token_id,
            )
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = found
        if found.token_id is not None:
            await self._note_use(found, route)
        await self.app(scope, receive, send)

    async def _note_use(self, found: Principal, route: str) -> None:
        """A token's last use, for `tokens list`: a journal line at most every USE_EVERY."""
        assert found.token_id is not None
        now = self.clock()
        if now - self._used.get(found.token_id, -USE_EVERY) < USE_EVERY:
            return
        self._used[found.token_id] = now
        await run_in_threadpool(
            self.journal.record, "used", found.name, route, "", "", found.token_id
        )


def principal(request: Request) -> Principal:
    """Who made `request`, as the guard found."""
    found = request.state.principal
    assert isinstance(found, Principal)
    return found
