"""The agent's HTTP side: `/healthz`, `/metrics` (Prometheus text), and `POST /hooks/git`,
which wakes the loop to fetch at once instead of at its next interval.

The webhook needs the secret in MLFORM_AGENT_SECRET, checked before the body is read:
as `Authorization: Bearer <secret>`, or as GitHub signs its webhooks
(`X-Hub-Signature-256`, an HMAC of the body, which is read only up to MAX_BODY to check
it). Without the variable the webhook is off. The body itself is not used: whatever the
event said, the agent fetches and looks for itself.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from mlform.agent.loop import Agent
from mlform.listening import listen

SECRET = "MLFORM_AGENT_SECRET"
MAX_BODY = 1 << 20  # GitHub's push events are well under this


def create_app(agent: Agent, secret: str | None) -> Starlette:
    async def healthz(request: Request) -> Response:
        gauges = agent.gauges
        return JSONResponse(
            {"status": "alive", "commit": gauges.commit or None, "result": gauges.result}
        )

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(exposition(agent), media_type="text/plain; version=0.0.4")

    async def hook(request: Request) -> Response:
        if secret is None:
            return _refuse(403, f"the webhook is off: start the agent with {SECRET} set")
        bearer = request.headers.get("authorization", "")
        signature = request.headers.get("x-hub-signature-256", "")
        if bearer.startswith("Bearer "):
            if not hmac.compare_digest(bearer.removeprefix("Bearer ").encode(), secret.encode()):
                return _refuse(401, "wrong secret")
        elif signature.startswith("sha256="):
            length = request.headers.get("content-length", "")
            if not length.isdigit() or int(length) > MAX_BODY:
                return _refuse(413, f"send a Content-Length of at most {MAX_BODY} bytes")
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_BODY:
                    return _refuse(413, f"the body is larger than {MAX_BODY} bytes")
            mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(signature.removeprefix("sha256="), mac):
                return _refuse(401, "the signature does not match the secret")
        else:
            return _refuse(401, "send Authorization: Bearer <secret> or X-Hub-Signature-256")
        agent.wake.set()
        return JSONResponse({"status": "fetching"}, status_code=202)

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/hooks/git", hook, methods=["POST"]),
        ]
    )


def exposition(agent: Agent) -> str:
    gauges = agent.gauges
    with gauges.lock:
        lines = [
            "# HELP mlform_agent_last_sync_info The commit the agent last reconciled.",
            "# TYPE mlform_agent_last_sync_info gauge",
            f'mlform_agent_last_sync_info{{commit="{gauges.commit}",result="{gauges.result}"}} 1',
            "# HELP mlform_agent_last_sync_timestamp_seconds When that was.",
            "# TYPE mlform_agent_last_sync_timestamp_seconds gauge",
            f"mlform_agent_last_sync_timestamp_seconds {gauges.synced_at:.3f}",
            "# HELP mlform_agent_drift_changes Changes the last plan found with no new commit.",
            "# TYPE mlform_agent_drift_changes gauge",
            f"mlform_agent_drift_changes {gauges.drift}",
            "# HELP mlform_agent_waiting_approval Plans held back for `mlform agent approve`.",
            "# TYPE mlform_agent_waiting_approval gauge",
            f"mlform_agent_waiting_approval {gauges.waiting}",
            "# HELP mlform_agent_ticks_total Reconciliations started.",
            "# TYPE mlform_agent_ticks_total counter",
            f"mlform_agent_ticks_total {gauges.ticks}",
            "# HELP mlform_agent_failures_total Reconciliations that failed.",
            "# TYPE mlform_agent_failures_total counter",
            f"mlform_agent_failures_total {gauges.failures}",
            "# HELP mlform_agent_apply_duration_seconds Time spent applying.",
            "# TYPE mlform_agent_apply_duration_seconds summary",
            f"mlform_agent_apply_duration_seconds_sum {gauges.apply_seconds:.3f}",
            f"mlform_agent_apply_duration_seconds_count {gauges.applies}",
        ]
    return "\n".join(lines) + "\n"


def _refuse(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


def serve(agent: Agent, host: str, port: int, say: Callable[[str], None]) -> threading.Thread:
    """Serve on `host:port` from a daemon thread; the loop keeps the main thread."""
    # start-up: uvicorn, only when the agent serves
    import uvicorn

    bound = listen(host, port)
    app = create_app(agent, os.environ.get(SECRET) or None)
    config = uvicorn.Config(app, http="h11", loop="asyncio", access_log=False, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [bound.sock]}, name="mlform-agent-http", daemon=True
    )
    thread.start()
    say(
        f"agent listening on http://{bound.shown}:{bound.port} (/healthz, /metrics, "
        "POST /hooks/git)"
    )
    return thread
