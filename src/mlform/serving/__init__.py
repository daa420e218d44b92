"""Serving: what runs inside a deployment, and in front of an endpoint.

A user's scoring script (Azure ML's contract: `init()` loads the model from
`MLFORM_MODEL_DIR`, `run(data)` scores) wrapped in a Starlette app on uvicorn, started
with `python -m mlform.serving`; and the endpoint's router, `python -m
mlform.serving.router`.

    scoring.py    load the script, parse request payloads, encode run()'s results
    app.py        the ASGI app: POST /score, GET /health, /ready, /metrics, /openapi.json
    openapi.py    the OpenAPI document of that app, as it is configured
    auth.py       keys (checked against their digests) and tokens (against a token key)
    keyring.py    a token endpoint's keys: current and previous, re-read when rotated
    metrics.py    requests, errors and latency in Prometheus' text format
    capture.py    sampled inputs and outputs to Parquet, off the request path
    routes.py     the router's table: deployments by weight, re-read when it changes
    router.py     the endpoint's address: each request to a deployment, by weight
    connections.py  the router's client connections: read deadline, head size bound
    __main__.py   the command a deployment's process or container runs

These run inside deployment images that hold only the user's packages plus starlette
and uvicorn (and pyarrow where capture is on), so they import nothing else: the
standard library, starlette, uvicorn, and numpy, pandas or pyarrow only when needed.
uvicorn takes httptools and uvloop where they are installed (local deployments have
them); the router, which runs beside mlform and never in an image, needs httptools.
Starting, stopping and watching deployments is `mlform.endpoints`' work.
"""
