"""The endpoint's own process: `mlform.serving.router` on the endpoint's port, routing
each request to a deployment by weight. Its table is a JSON file rewritten atomically
(the router picks changes up at once), so traffic moves without a restart; the process
itself is recorded in `router.json` beside it, with a digest of the code it runs: a
router started by another mlform (before an upgrade) is restarted by the next apply that
touches its endpoint, so that it checks tokens as this one does."""

from __future__ import annotations

import functools
import json
import os
import secrets
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mlform import private
from mlform.errors import ApplyError
from mlform.hashing import sha256_file, sha256_text
from mlform.kinds.endpoint import local, probes
from mlform.serving import runtime
from mlform.serving.runtime import INSTANCE_HEADER

_START_WITHIN = 60.0  # seconds; a loaded machine can take many to start Python and uvicorn


@dataclass(frozen=True, slots=True)
class Router:
    process: local.Process
    port: int
    code: str | None = None  # digest of the code it runs (`code`); None: an older record

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.running()


def folder(state_dir: Path, endpoint: str) -> Path:
    return state_dir / "endpoints" / endpoint


def current(state_dir: Path, endpoint: str) -> Router | None:
    try:
        data = json.loads((folder(state_dir, endpoint) / "router.json").read_text())
        started = data.get("started")
        process = local.Process(
            int(data["pid"]), None if started is None else int(started), str(data["instance"])
        )
        code = data.get("code")
        return Router(process, int(data["port"]), None if code is None else str(code))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_routes(
    state_dir: Path,
    endpoint: str,
    routes: Mapping[str, tuple[str, int]],
    auth: tuple[str, Sequence[str]] | None = None,
    token_key: Path | None = None,
) -> Path:
    """Deployment name → (url, weight), written so the router never reads half a file;
    `auth` (the endpoint's auth mode and key digests, and in token mode `token_key`, the
    file of the key tokens are signed with) has the router check credentials before it
    reads a body. Readable by the owner only, as the key digests are."""
    path = folder(state_dir, endpoint) / "routes.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    table: dict[str, object] = {
        "endpoint": endpoint,
        "deployments": {n: {"url": url, "weight": w} for n, (url, w) in routes.items()},
    }
    if auth is not None:
        checked: dict[str, object] = {"mode": auth[0], "key_hashes": list(auth[1])}
        if token_key is not None:
            checked["token_key_file"] = str(token_key)
        table["auth"] = checked
    private.write(path, json.dumps(table, indent=1).encode())
    return path


def ensure(state_dir: Path, endpoint: str, port: int) -> Router:
    """The endpoint's router, started on `port` unless it already runs there."""
    running = current(state_dir, endpoint)
    if (
        running is not None
        and running.alive()
        and running.port == port
        and running.code == code()  # else another mlform's: restarted
    ):
        return running
    if running is not None:
        local.terminate(running.process)
    if _taken(port):
        raise ApplyError(
            f"endpoint/{endpoint}: port {port} on 127.0.0.1 is in use by another process, "
            "so its router cannot listen there; stop that process, or give the endpoint "
            "another port: (or none, for any free one), then apply again"
        )
    home = folder(state_dir, endpoint)
    routes = home / "routes.json"
    if not routes.exists():
        write_routes(state_dir, endpoint, {})
    instance = secrets.token_hex(6)
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "MLFORM_INSTANCE": instance,
    }
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    argv = [
        sys.executable,
        "-m",
        "mlform.serving.router",
        "--routes",
        str(routes),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    process = local.spawn(argv, env, home / "router.log", cwd=home, what=f"router of {endpoint}")
    router = Router(process, port, code())
    record = {
        "pid": process.pid,
        "started": process.started,
        "instance": instance,
        "port": port,
        "code": router.code,
    }
    private.write(home / "router.json", json.dumps(record).encode())
    local.recorded(process.pid)
    deadline = time.monotonic() + _START_WITHIN
    while time.monotonic() < deadline:
        # the router this started, not whatever else may answer on the port
        if probes.answering(port, "/health", INSTANCE_HEADER, 1.0) == instance:
            return router
        if not router.alive():
            break
        time.sleep(0.05)
    raise ApplyError(_not_started(endpoint, router, home / "router.log"))


def _taken(port: int) -> bool:
    """Whether another process listens on `port`: a bind as uvicorn's (SO_REUSEADDR, so
    a connection of an earlier router's still closing does not count) fails."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@functools.cache
def code() -> str:
    """A digest of the code a router runs: the serving runtime's own files."""
    return sha256_text(*(sha256_file(path) for path in runtime.source_files()))


def _not_started(endpoint: str, router: Router, log: Path) -> str:
    """What was seen: the router ended (and how), or it runs but does not answer."""
    pid, port = router.pid, router.port
    if router.alive():
        local.terminate(router.process)
        seen = (
            f"its router (pid {pid}) was running but did not answer GET /health on port "
            f"{port} within {_START_WITHIN:g}s, so it was stopped"
        )
    else:
        code = router.process.exit_code()
        how = f"with code {code}" if code is not None else "(its exit code is unknown)"
        seen = f"its router (pid {pid}) exited {how} before it listened on port {port}"
    tail = "\n".join(f"  | {line}" for line in local.tail(log, 20).splitlines())
    return f"endpoint/{endpoint}: {seen}" + (f"; the last lines of {log}:\n{tail}" if tail else "")


def stop(state_dir: Path, endpoint: str) -> None:
    running = current(state_dir, endpoint)
    if running is not None:
        local.terminate(running.process)
    (folder(state_dir, endpoint) / "router.json").unlink(missing_ok=True)
