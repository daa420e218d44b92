"""Serving: registered models behind an HTTP scoring server.

Today this is the scoring server runtime: a user's scoring script (Azure ML's contract:
`init()` loads the model from `MLFORM_MODEL_DIR`, `run(data)` scores) wrapped in a
Starlette app on uvicorn, started with `python -m mlform.serving`.

    scoring.py    load the script, parse request payloads, encode run()'s results
    app.py        the ASGI app: POST /score, GET /health, /ready, /openapi.json, /
    __main__.py   the command a deployment's container runs

The runtime also runs inside deployment images that hold only the user's packages plus
starlette and uvicorn, so these modules import nothing else: the standard library,
starlette, uvicorn, and numpy or pandas only when they are already installed.

Deployments, traffic routing and data capture will live here too.
"""
