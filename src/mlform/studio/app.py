"""The studio: a local web app over a workspace's state, for looking (runs and their
charts, the plan, what was applied); git stays the way to change the system.

    /                            overview: resources, the current plan, recent applies
    /runs                        the runs table: filters, MLflow's search, columns, pages
    /runs/{id}                   a run: params, metric charts, its live log, outputs
    /runs/{id}/points?key=K      a metric's chart points (`series`: downsampled)
    /runs/{id}/metrics.csv       its full metric history
    /runs/{id}/log               its log as server-sent events
    /runs/{id}/outputs/{path}    one of its output files
    /runs/{id}/code/{path}       a file of its code snapshot
    /compare?run=A&run=B…        2 to 10 runs side by side
    /models                      every registered version
    /models/{name}/{version}     one version's lineage, and its files
    /endpoints                   every endpoint, its deployments and traffic split
    /endpoints/{name}            one: its servers' counters (refreshed from …/live), a
                                 sample of its captured requests, a test-request form
                                 (POST …/invoke, the studio's one write)
    /monitors                    every monitor and what its latest run found
    /monitors/{name}             its history as a heat map per signal
    /pipelines                   each pipeline and its latest run
    /pipelines/{name}[?run=ID]   a run of it as its graph of steps
    /static/…                    the studio's own assets, uPlot among them (its licence
                                 beside it); nothing is fetched from elsewhere
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from mlform.listening import listen
from mlform.studio import compare, endpoints, feeds, lineage, monitors, pages, pipelines, serving
from mlform.studio.auth import TokenGate
from mlform.workspace import Workspace

STATIC = Path(__file__).with_name("static")


def create_app(workspace: Workspace, token: str | None = None) -> Starlette:
    routes = [
        Route("/", pages.overview),
        Route("/runs", pages.runs_list),
        Route("/runs/{run_id}", pages.run_page),
        Route("/runs/{run_id}/points", feeds.metric_points),
        Route("/runs/{run_id}/metrics.csv", feeds.metric_csv),
        Route("/runs/{run_id}/log", feeds.log_events),
        Route("/runs/{run_id}/outputs/{path:path}", feeds.output_file),
        Route("/runs/{run_id}/code/{path:path}", pages.code_file),
        Route("/compare", compare.compare),
        Route("/models", lineage.models_list),
        Route("/endpoints", endpoints.endpoints_list),
        Route("/endpoints/{name}", endpoints.endpoint_page),
        Route("/endpoints/{name}/live", endpoints.endpoint_live),
        Route("/endpoints/{name}/invoke", endpoints.endpoint_invoke, methods=["POST"]),
        Route("/monitors", monitors.monitors_list),
        Route("/monitors/{name}", monitors.monitor_page),
        Route("/pipelines", pipelines.pipelines_list),
        Route("/pipelines/{name}", pipelines.pipeline_page),
        Route("/models/{name}/{version}", lineage.model_page),
        Route("/models/{name}/{version}/files/{path:path}", lineage.model_file),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [Middleware(TokenGate, token=token)] if token is not None else []
    app = Starlette(routes=routes, middleware=middleware, exception_handlers={404: pages.not_found})
    app.state.workspace = workspace
    app.state.looks = serving.Looks()
    return app


def serve(
    workspace: Workspace,
    host: str,
    port: int,
    token: str | None,
    say: Callable[[str], None],
    *,
    shown_token: bool = False,
) -> None:
    """Serve until interrupted. `token`: checked by `auth.check_bind` first; printed once
    when mlform made it (`shown_token`), never when the user gave it."""
    # start-up: uvicorn, only when the studio serves
    import uvicorn

    bound = listen(host, port)
    bound.sock.listen(128)  # a browser opened on the address printed waits, not refused
    app = create_app(workspace, token)
    config = uvicorn.Config(
        app,
        http="h11",
        loop="asyncio",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=2,
    )
    say(f"mlform studio on http://{bound.shown}:{bound.port}/")
    if token is not None and shown_token:
        say("Its token, shown only this once (open the address with ?token=TOKEN, or send")
        say("Authorization: Bearer TOKEN):")
        say(token)
    elif token is not None:
        say("Every request needs the token you gave (open it with ?token=TOKEN once).")
    say("Ctrl-C stops it.")
    uvicorn.Server(config).run(sockets=[bound.sock])
