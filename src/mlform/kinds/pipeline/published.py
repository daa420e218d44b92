"""Published pipelines, run over REST, as Azure ML's pipeline
endpoints do. `mlform pipelines serve` starts it.

    GET  /health                           liveness (open)
    GET  /pipelines                        the declared pipelines, their inputs and steps
    POST /pipelines/{name}/runs            run one: body `{"inputs": {"C": 1.0}}` (optional)
                                           → 202 `{"run_id", "status": "queued", "links"}`
    GET  /pipelines/{name}/runs/{run_id}   the run's progress: its `pipeline.json`

Each route but /health needs a role (`RULES`), checked by `mlform.access` before any body
is read: `Authorization: Bearer <token>` with an API token (`mlform tokens create`) of at
least that role, or one of the keys `mlform` keeps for the endpoint named "pipelines"
(`<state dir>/secrets/endpoints/pipelines.json`), which carry the operator role, as they
always allowed all the routes. Denied calls and invocations go to the audit log.

A run is `mlform pipelines invoke NAME --set INPUT=VALUE … --run-id ID`, started in its
own session, its output in `<state dir>/runs/<run_id>.invoke.log`: the server never
holds the state, and a run outlives the server. GET answers from the run's folder, which
the invoke writes while it holds the state. Until that file exists the run is "queued";
if the invoke ends without writing it, the run "failed" and the answer's "error" is the
log's last lines. That is also what happens to a run requested while another run or an
apply holds the state: invoke does not wait for the lock, so such a run fails at once,
and the client retries it later.

Every error is JSON, `{"error": message, "status": code}`, mapped in one place (`_STATUS`).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlform.access import tokenfile
from mlform.access.gate import Forbidden, Gate, Unauthenticated
from mlform.access.guard import AccessGuard, Rule, principal
from mlform.access.journal import Journal
from mlform.access.roles import Role
from mlform.config.specs import env_text
from mlform.errors import MlformError
from mlform.kinds.endpoint import keys as endpoint_keys
from mlform.listening import listen
from mlform.loader import Config, load
from mlform.serving.app import error_response, route_errors
from mlform.serving.auth import CHALLENGE, KeyCheck
from mlform.serving.scoring import ServingError

if TYPE_CHECKING:
    from mlform.opened import OpenWorkspace

KEYS = "pipelines"  # the name its keys are kept under, beside the online endpoints'
MAX_BODY = 1024 * 1024
JSON = "application/json"
LOG_TAIL = 20  # lines of a failed invoke's log in the answer
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # names a folder: no dots, no slashes
_ROUTES = (
    "GET /health, GET /pipelines, POST /pipelines/NAME/runs and GET /pipelines/NAME/runs/RUN_ID"
)
SOURCE = "pipeline endpoint"  # in the audit log
RULES = (
    Rule("GET", "/health", None),
    Rule("GET", "/pipelines", Role.READER),
    Rule("POST", "/pipelines/{name}/runs", Role.OPERATOR),
    Rule("GET", "/pipelines/{name}/runs/{run_id}", Role.READER),
)


class BadRequest(ServingError):
    pass


class Missing(ServingError):
    pass


class TooLarge(ServingError):
    pass


class Unavailable(ServingError):
    pass


_STATUS: dict[type[Exception], int] = {
    BadRequest: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    Missing: 404,
    TooLarge: 413,
    Unavailable: 503,
}


class Invokes:
    """The `mlform pipelines invoke` processes this server started, by run id.

    Spawned with posix_spawn (no Popen to outlive); each is reaped when any is asked
    about, so finished ones do not linger as zombies while the server runs."""

    def __init__(self, root: Path, state_dir: Path) -> None:
        self.root, self.state_dir = root, state_dir
        self.pids: dict[str, int] = {}  # still running
        self.codes: dict[str, int] = {}  # exited: their exit codes

    def log_path(self, run_id: str) -> Path:
        return self.state_dir / "runs" / f"{run_id}.invoke.log"

    def start(self, name: str, inputs: Mapping[str, str]) -> str:
        run_id = f"{name}_{time.strftime('%Y%m%d_%H%M%S')}_{secrets.token_hex(2)}"
        argv = [sys.executable, "-m", "mlform.cli.main", "-C", str(self.root)]
        argv += ["pipelines", "invoke", name]
        for key, value in inputs.items():
            argv += ["--set", f"{key}={value}"]
        argv += ["--run-id", run_id]
        log = self.log_path(run_id)
        log.parent.mkdir(parents=True, exist_ok=True)
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ]
        self.reap()
        self.pids[run_id] = os.posix_spawn(
            sys.executable, argv, os.environ, file_actions=actions, setsid=True
        )
        return run_id

    def reap(self) -> None:
        for run_id, pid in list(self.pids.items()):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: its code is lost
                done, status = pid, 255 << 8
            if done:
                del self.pids[run_id]
                self.codes[run_id] = os.waitstatus_to_exitcode(status)

    def running(self, run_id: str) -> bool | None:
        """Whether this server's invoke of `run_id` still runs; None: not one of its own."""
        self.reap()
        if run_id in self.pids:
            return True
        return False if run_id in self.codes else None

    def tail(self, run_id: str) -> str:
        try:
            text = self.log_path(run_id).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "the invoke left no log"
        lines = text.strip().splitlines()[-LOG_TAIL:]
        return "\n".join(lines) or "the invoke ended without a word; its log is empty"


def status(invokes: Invokes, name: str, run_id: str) -> dict[str, Any]:
    """What GET /pipelines/NAME/runs/RUN_ID answers: the run's `pipeline.json`, or
    queued / failed from its invoke while there is none. Missing if no such run."""
    if not _RUN_ID.fullmatch(run_id):
        raise Missing(f"pipeline {name} has no run {run_id!r}")
    report = _report(invokes.state_dir, name, run_id)
    if report is not None and report.get("status") != "running":
        return report
    running = invokes.running(run_id)
    if running:
        return report or {"run_id": run_id, "status": "queued"}
    report = _report(invokes.state_dir, name, run_id)  # it may have written, then ended
    if report is not None and (report.get("status") != "running" or running is None):
        return report  # finished; or run by an apply or an earlier server: as it says
    if report is None and running is None and not invokes.log_path(run_id).exists():
        raise Missing(
            f"pipeline {name} has no run {run_id!r}; POST /pipelines/{name}/runs starts one"
        )
    code = invokes.codes.get(run_id)
    ended = "the invoke ended" if code is None else f"the invoke ended with exit code {code}"
    failed = dict(report or {"run_id": run_id})
    failed["status"] = "failed"
    failed["error"] = f"{ended} before the run finished; its log ends:\n{invokes.tail(run_id)}"
    return failed


def _report(state_dir: Path, name: str, run_id: str) -> dict[str, Any] | None:
    try:
        text = (state_dir / "runs" / run_id / "pipeline.json").read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("pipeline") != name:
        return None
    return data


def pipelines(config: Config) -> dict[str, Mapping[str, Any]]:
    """The declared pipelines' specs' bodies, by name."""
    return {s.name: s.body for s in config.specs.values() if s.kind == "pipeline"}


def overrides(body: bytes, name: str, declared: Mapping[str, Any]) -> dict[str, str]:
    """The `--set` values a POST's body asks for, as text; BadRequest if it is not
    `{"inputs": {INPUT: scalar, …}}` with inputs the pipeline declares."""
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except ValueError as err:
        raise BadRequest(f'the body is not JSON ({err}); send {{"inputs": {{...}}}}') from None
    if not isinstance(data, dict):
        raise BadRequest('the body must be a JSON object: {"inputs": {"INPUT": value, ...}}')
    extra = sorted(set(data) - {"inputs"})
    if extra:
        raise BadRequest(f"the body has {', '.join(map(repr, extra))}; it takes only 'inputs'")
    inputs = data.get("inputs") or {}
    if not isinstance(inputs, dict):
        raise BadRequest('"inputs" must be an object: {"INPUT": value, ...}')
    bad = sorted(k for k, v in inputs.items() if not isinstance(v, str | int | float | bool))
    if bad:
        raise BadRequest(f"inputs {', '.join(bad)}: each value must be a string, number or boolean")
    unknown = sorted(set(inputs) - set(declared))
    if unknown:
        raise BadRequest(
            f"pipeline {name} has no input {', '.join(unknown)} "
            f"(inputs: {', '.join(sorted(declared)) or 'none'})"
        )
    return {key: env_text(value) for key, value in inputs.items()}


def create_app(root: Path, state_dir: Path, keys: list[str]) -> Starlette:
    """The endpoint's ASGI app for the workspace at `root`, taking API tokens and `keys`."""
    check = KeyCheck(keys)
    invokes = Invokes(root, state_dir)
    journal = Journal(state_dir, SOURCE)

    def is_key(value: str) -> bool:
        try:
            check.verify(f"Bearer {value}")
        except ServingError:
            return False
        return True

    gate = Gate(
        tokenfile.TokenSet(tokenfile.path(state_dir)),
        keys=is_key,
        key_role=Role.OPERATOR,
        key_hint='"Authorization: Bearer <key>" with a key from '
        f"{endpoint_keys.path(state_dir, KEYS)}",
    )

    def declared() -> dict[str, Mapping[str, Any]]:
        # Read per request, so an edit and apply is served without a restart.
        try:
            return pipelines(load(root))
        except MlformError as err:
            raise Unavailable(
                f"the workspace's files do not load, so no pipeline can run: {err}; "
                "run `mlform validate`"
            ) from None

    def find(name: str) -> Mapping[str, Any]:
        found = declared()
        if name not in found:
            raise Missing(
                f"no pipeline named '{name}' (pipelines: {', '.join(sorted(found)) or 'none'})"
            )
        return found[name]

    def guarded(
        work: Callable[[Request], Awaitable[Any]], success: int = 200
    ) -> Callable[[Request], Awaitable[Response]]:
        async def route(request: Request) -> Response:
            try:
                return _json(await work(request), success)
            except ServingError as err:
                return _error(err)

        return route

    async def listing(request: Request) -> Any:
        found = await run_in_threadpool(declared)
        return {
            "pipelines": [
                {
                    "name": name,
                    "inputs": dict(body.get("inputs") or {}),
                    "steps": list((body.get("jobs") or {}).keys()),
                    "links": {"runs": f"/pipelines/{name}/runs"},
                }
                for name, body in sorted(found.items())
            ]
        }

    async def submit(request: Request) -> Any:
        name = request.path_params["name"]
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY:
            raise TooLarge(f"the body is larger than {MAX_BODY} bytes; send only the inputs")
        body = await request.body()
        if len(body) > MAX_BODY:
            raise TooLarge(f"the body is larger than {MAX_BODY} bytes; send only the inputs")
        spec = await run_in_threadpool(find, name)
        values = overrides(body, name, dict(spec.get("inputs") or {}))
        run_id = invokes.start(name, values)
        who = principal(request).name
        said = ", ".join(f"{k}={v}" for k, v in values.items())
        message = f"run {run_id}" + (f" with {said}" if said else "")
        await run_in_threadpool(journal.record, "invoke", who, f"pipeline/{name}", 202, message)
        return {
            "run_id": run_id,
            "status": "queued",
            "links": {"self": f"/pipelines/{name}/runs/{run_id}"},
        }

    async def progress(request: Request) -> Any:
        return status(invokes, request.path_params["name"], request.path_params["run_id"])

    async def health(request: Request) -> Response:
        return _json({"status": "alive"})

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/pipelines", guarded(listing), methods=["GET"]),
        Route("/pipelines/{name}/runs", guarded(submit, 202), methods=["POST"]),
        Route("/pipelines/{name}/runs/{run_id}", guarded(progress), methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: route_errors(_ROUTES)})
    app.add_middleware(AccessGuard, rules=RULES, gate=gate, journal=journal, refuse=_error)
    return app


def _error(err: Exception) -> Response:
    """The one place this server maps its errors to statuses."""
    code = _STATUS[type(err)]
    return error_response(code, str(err), CHALLENGE if code == 401 else None)


def serve(ws: OpenWorkspace, host: str, port: int, say: Callable[[str], None]) -> int:
    """Serve the pipeline endpoint on `host:port` until interrupted."""
    # start-up: uvicorn, only when the pipeline endpoint serves
    import uvicorn

    state_dir = ws.home
    keys = endpoint_keys.ensure(state_dir, KEYS)
    bound = listen(host, port)
    sock, port, shown = bound.sock, bound.port, bound.shown
    say(
        f"Pipeline endpoint on http://{shown}:{port}/pipelines; send "
        "`Authorization: Bearer <token>` with an API token (`mlform tokens create NAME "
        f"--role operator`), or a key from {endpoint_keys.path(state_dir, KEYS)}"
    )
    app = create_app(ws.root, state_dir, [keys["primary"], keys["secondary"]])
    config = uvicorn.Config(app, http="h11", loop="asyncio", access_log=False, log_level="warning")
    with sock:
        uvicorn.Server(config).run(sockets=[sock])
    return 0


def _json(value: Any, status: int = 200) -> Response:
    body = json.dumps(value, separators=(",", ":"), default=str).encode()
    return Response(body, status_code=status, media_type=JSON)
