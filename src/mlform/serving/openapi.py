"""The OpenAPI 3.1 description of the scoring server, as `create_app` configures it."""

from __future__ import annotations

from typing import Any

from mlform.serving.metrics import CONTENT_TYPE
from mlform.serving.scoring import PAYLOAD_KEYS

MAX_BODY = 10 * 1024 * 1024
# Azure ML's default for request_settings.max_queue_wait_ms, in seconds.
DEFAULT_QUEUE_WAIT = 0.5
JSON = "application/json"


def openapi_document(
    name: str,
    max_body: int = MAX_BODY,
    *,
    secured: bool = False,
    request_timeout: float | None = None,
    max_concurrent: int | None = None,
    max_queue_wait: float = DEFAULT_QUEUE_WAIT,
    body: dict[str, Any] | None = None,
    json_only: bool = True,
) -> dict[str, Any]:
    """The OpenAPI 3.1 description of this server's routes, as `create_app` set them.

    `body` is the request body's schema when the script takes its input otherwise than
    parsed (`ScoringScript.body_schema`); None: the payloads mlform parses. `json_only`:
    other content types than JSON are answered 415."""
    error = {"$ref": "#/components/schemas/Error"}

    def answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"description": description, "content": {JSON: {"schema": schema}}}

    def status(*values: str) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"status": {"enum": list(values)}},
            "required": ["status"],
        }

    payloads = {
        "data": {"description": "passed to run() as is"},
        "instances": {"description": "passed to run() as is"},
        "inputs": {"description": "passed to run() as is"},
        "dataframe_split": {
            "description": "a pandas DataFrame (records if pandas is not installed)",
            "type": "object",
            "properties": {
                "columns": {"type": "array", "items": {"type": ["string", "number"]}},
                "data": {"type": "array", "items": {"type": "array"}},
                "index": {"type": "array", "items": {"type": ["string", "number"]}},
            },
            "required": ["columns", "data"],
            "additionalProperties": False,
        },
        "dataframe_records": {
            "description": "a pandas DataFrame (the records if pandas is not installed)",
            "type": "array",
            "items": {"type": "object"},
        },
    }
    request_schema = {
        "oneOf": [
            {
                "type": "object",
                "properties": {key: payloads[key]},
                "required": [key],
                "additionalProperties": False,
            }
            for key in PAYLOAD_KEYS
        ]
    }
    if body is not None:
        request_schema = body
    score_responses = {
        "200": answer("the JSON of what run() returned", {}),
        "400": answer("the body is not JSON, or not an accepted payload", error),
        "413": answer("the body is larger than the limit", error),
        **({"415": answer("the body is not sent as JSON", error)} if json_only else {}),
        "500": answer("run() raised; the traceback is in the log", error),
        "503": answer("init() has not completed", error),
    }
    components: dict[str, Any] = {
        "schemas": {
            "Error": {
                "type": "object",
                "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
                "required": ["error", "status"],
            }
        }
    }
    security: dict[str, Any] = {}
    if secured:
        score_responses["401"] = answer("no `Authorization: Bearer <key>` header", error)
        score_responses["403"] = answer("a token made for another endpoint", error)
        components["securitySchemes"] = {"key": {"type": "http", "scheme": "bearer"}}
        security["security"] = [{"key": []}]
    if max_concurrent is not None:
        score_responses["429"] = answer(
            f"{max_concurrent} requests stayed in flight for longer than the queue wait of "
            f"{max_queue_wait * 1000:g} ms; retry shortly",
            error,
        )
    if request_timeout is not None:
        score_responses["504"] = answer(f"run() took longer than {request_timeout:g} s", error)
    return {
        "openapi": "3.1.0",
        "info": {"title": f"{name} scoring API", "version": "1"},
        "paths": {
            "/score": {
                "post": {
                    "summary": "Score a payload with the deployment's scoring script",
                    "requestBody": {
                        "required": True,
                        "description": f"at most {max_body} bytes",
                        "content": {JSON: {"schema": request_schema}},
                    },
                    "responses": score_responses,
                    **security,
                }
            },
            "/health": {
                "get": {
                    "summary": "Liveness",
                    "responses": {"200": answer("the server answers", status("alive"))},
                }
            },
            "/ready": {
                "get": {
                    "summary": "Readiness",
                    "responses": {
                        "200": answer("init() has succeeded", status("ready")),
                        "503": answer("init() has not completed", status("not ready")),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Counters of POST /score, in Prometheus' text format",
                    "responses": {
                        "200": {
                            "description": "the metrics",
                            "content": {CONTENT_TYPE: {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {"summary": "This document", "responses": {"200": answer("OpenAPI", {})}}
            },
            "/": {
                "get": {
                    "summary": "The deployment's name and links",
                    "responses": {"200": answer("name and links", {"type": "object"})},
                }
            },
        },
        "components": components,
    }
