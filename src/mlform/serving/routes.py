"""An endpoint's routing table: its deployments, their traffic weights, and the file they live in.

mlform writes the table as JSON and replaces it atomically (write, then `os.replace`) to
shift traffic; the router notices the new file and switches without a restart:

    {"endpoint": "iris",
     "deployments": {"blue":  {"url": "http://127.0.0.1:5101", "weight": 80},
                     "green": {"url": "http://127.0.0.1:5102", "weight": 20}}}

Weights are non-negative integers and need not add up to 100; a deployment's share is
its weight over the sum. Weight 0 takes no routed traffic but stays reachable by name.

An endpoint with keys adds `"auth": {"mode": "key" | "token", "key_hashes": [sha256
hex, …]}`, what its deployments check, and in token mode `"token_key_file": PATH`, the
file of the keys its tokens are signed with (never a key itself): the router checks
credentials too, before it reads a body (so the file is readable by its owner only).
Like the rest of the serving runtime, this module imports only the standard library.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger("mlform.serving.router")

_HEX = frozenset("0123456789abcdefABCDEF")
# How often the request path may stat the routes file: a rewrite takes effect within this.
CHECK_INTERVAL = 0.2


class RoutesInvalid(ValueError):
    """A routes file that cannot be used; the message lists every problem, one a line."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(f"{source}: {problem}" for problem in problems))


@dataclass(frozen=True, slots=True)
class Deployment:
    name: str
    url: str
    host: str
    port: int
    weight: int


@dataclass(frozen=True, slots=True)
class Auth:
    mode: str  # "key", or "token" (Azure ML's aml_token too)
    key_hashes: tuple[str, ...]
    token_key_file: str | None = None  # in token mode: where the signing key is

    @property
    def tokens(self) -> bool:
        return self.mode != "key"


AUTH_MODES = ("key", "token", "aml_token")


@dataclass(frozen=True, slots=True)
class Routes:
    endpoint: str
    deployments: tuple[Deployment, ...]
    auth: Auth | None = None

    def get(self, name: str) -> Deployment | None:
        for deployment in self.deployments:
            if deployment.name == name:
                return deployment
        return None


def parse_routes(text: str, source: str = "routes") -> Routes:
    """The table in `text`; raises `RoutesInvalid` naming every problem at once."""
    try:
        document = json.loads(text)
    except ValueError as err:
        raise RoutesInvalid(source, [f"not valid JSON: {err}"]) from None
    if not isinstance(document, dict):
        raise RoutesInvalid(source, ["must be a JSON object with endpoint and deployments"])
    problems: list[str] = []
    endpoint = document.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        problems.append("endpoint: must be the endpoint's name, a non-empty string")
    extra = sorted(set(document) - {"endpoint", "deployments", "auth"})
    if extra:
        problems.append(f"unknown keys {', '.join(extra)}; expected endpoint, deployments and auth")
    auth = _auth(document.get("auth"), problems) if "auth" in document else None
    entries = document.get("deployments")
    deployments: list[Deployment] = []
    if not isinstance(entries, dict):
        problems.append("deployments: must be an object mapping names to {url, weight}")
    else:
        for name, entry in entries.items():
            deployment = _deployment(name, entry, problems)
            if deployment is not None:
                deployments.append(deployment)
    if problems:
        raise RoutesInvalid(source, problems)
    assert isinstance(endpoint, str)
    return Routes(endpoint, tuple(deployments), auth)


def _auth(entry: Any, problems: list[str]) -> Auth | None:
    found = len(problems)
    if not isinstance(entry, dict):
        problems.append('auth: must be an object with "mode" and "key_hashes"')
        return None
    extra = sorted(set(entry) - {"mode", "key_hashes", "token_key_file"})
    if extra:
        problems.append(
            f"auth: unknown keys {', '.join(extra)}; expected mode, key_hashes and token_key_file"
        )
    mode = entry.get("mode")
    if mode not in AUTH_MODES:
        problems.append(f"auth.mode: must be one of {', '.join(AUTH_MODES)}, got {mode!r}")
    hashes = entry.get("key_hashes")
    if (
        not isinstance(hashes, list)
        or not hashes
        or not all(isinstance(h, str) and len(h) == 64 and _HEX.issuperset(h) for h in hashes)
    ):
        problems.append("auth.key_hashes: must be a non-empty array of sha256 hex digests")
    key_file = entry.get("token_key_file")
    tokens = mode in AUTH_MODES and mode != "key"
    if tokens and (not isinstance(key_file, str) or not key_file):
        problems.append("auth.token_key_file: a token endpoint needs the path of its token key")
    if len(problems) > found:
        return None
    assert isinstance(mode, str) and isinstance(hashes, list)
    return Auth(mode, tuple(h.lower() for h in hashes), key_file if tokens else None)


def _deployment(name: str, entry: Any, problems: list[str]) -> Deployment | None:
    where = f"deployments.{name}"
    if not name:
        problems.append("deployments: a deployment's name must not be empty")
        return None
    if not isinstance(entry, dict):
        problems.append(f"{where}: must be an object with url and weight")
        return None
    found = len(problems)
    extra = sorted(set(entry) - {"url", "weight"})
    if extra:
        problems.append(f"{where}: unknown keys {', '.join(extra)}; expected url and weight")
    weight = entry.get("weight")
    if type(weight) is not int or weight < 0:
        problems.append(f"{where}.weight: must be a non-negative integer, got {weight!r}")
    url = entry.get("url")
    host, port = _address(url)
    if host is None or port is None:
        problems.append(
            f"{where}.url: must look like http://127.0.0.1:5101 (http, host and port, "
            f"no path), got {url!r}"
        )
    if len(problems) > found:
        return None
    assert isinstance(url, str) and isinstance(weight, int)
    assert host is not None and port is not None
    return Deployment(name, url.rstrip("/"), host, port, weight)


def _address(url: object) -> tuple[str | None, int | None]:
    if not isinstance(url, str):
        return None, None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None, None
    if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
        return None, None
    if parts.query or parts.fragment or parts.username or parts.password:
        return None, None
    return parts.hostname, port


def read_routes(path: Path) -> Routes:
    """The table in the file at `path`; raises `RoutesInvalid` or `OSError`."""
    return parse_routes(path.read_text(encoding="utf-8"), str(path))


class Balancer:
    """nginx's smooth weighted round-robin over the deployments with weight > 0.

    Deterministic, and exact over every run of sum-of-weights picks: 80/20 gives 80 and
    20 of each 100, interleaved (a, a, a, a, b, …) rather than in bursts.
    """

    __slots__ = ("_current", "_peers", "_total")

    def __init__(self, deployments: Sequence[Deployment]) -> None:
        self._peers = [d for d in deployments if d.weight > 0]
        self._current = [0] * len(self._peers)
        self._total = sum(d.weight for d in self._peers)

    def pick(self) -> Deployment | None:
        peers, current = self._peers, self._current
        if not peers:
            return None
        best = 0
        for i, peer in enumerate(peers):
            current[i] += peer.weight
            if current[i] > current[best]:
                best = i
        current[best] -= self._total
        return peers[best]


class RoutesFile:
    """The table in a routes file, re-read when the file changes.

    `refresh()` is cheap enough for every request: it stats the file at most once per
    `interval` seconds. A file that is missing or fails to parse keeps the previous
    table and logs a warning, once per bad version of the file.
    """

    def __init__(self, path: Path, interval: float = CHECK_INTERVAL) -> None:
        self.path = path
        self.interval = interval
        self._signature: tuple[int, int, int] | None = _signature(path)
        self.routes = read_routes(path)
        self.balancer = Balancer(self.routes.deployments)
        self._next_check = time.monotonic() + interval

    def refresh(self) -> None:
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + self.interval
            self.reload()

    def reload(self, *, force: bool = False) -> bool:
        """Re-read the file if it changed (or if `force`); True if the table changed."""
        try:
            signature = _signature(self.path)
        except OSError as err:
            if self._signature is not None:
                logger.warning("cannot read %s (%s); keeping the previous routes", self.path, err)
                self._signature = None
            return False
        if signature == self._signature and not force:
            return False
        self._signature = signature
        try:
            routes = read_routes(self.path)
        except (OSError, RoutesInvalid) as err:
            logger.warning("keeping the previous routes; the new file is not usable:\n%s", err)
            return False
        if routes == self.routes:
            return False
        self.routes, self.balancer = routes, Balancer(routes.deployments)
        weights = ", ".join(f"{d.name}={d.weight}" for d in routes.deployments) or "none"
        logger.info("routes for endpoint %s reloaded: %s", routes.endpoint, weights)
        return True


def _signature(path: Path) -> tuple[int, int, int]:
    # The inode changes with os.replace even when mtime_ns does not (coarse clocks).
    stat = os.stat(path)
    return stat.st_mtime_ns, stat.st_ino, stat.st_size
