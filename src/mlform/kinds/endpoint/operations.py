"""What `mlform endpoints …` does, as library calls over the state and what runs."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlform.errors import MlformError, NotFound
from mlform.kinds.endpoint import instances, local, routing, signing
from mlform.kinds.endpoint import keys as key_file
from mlform.kinds.endpoint.docker import DockerTarget
from mlform.kinds.endpoint.targets import targets
from mlform.serving.auth import mint
from mlform.serving.keyring import MAX_TOKEN_LIFETIME

if TYPE_CHECKING:
    from mlform.opened import OpenWorkspace


@dataclass(frozen=True, slots=True)
class Deployed:
    deployment: str
    model: str
    compute: str
    weight: int
    url: str
    handle: str
    log: str
    up: bool


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    url: str
    auth_mode: str
    router_up: bool
    deployments: list[Deployed]


def endpoints(ws: OpenWorkspace) -> list[Endpoint]:
    with ws.store("endpoints") as store:
        rows = store.query(
            "select name, outputs from resources where kind = 'endpoint' and status <> 'deleted' "
            "order by name"
        )
        serving = instances.serving(store.read)
    state_dir = ws.home
    known = targets()
    found = []
    for name, outputs_text in rows:
        outputs = json.loads(outputs_text)
        if "port" not in outputs:
            continue
        running = routing.current(state_dir, name)
        deployed = [
            Deployed(
                i.deployment,
                i.model,
                i.compute,
                i.weight,
                i.url,
                i.handle,
                i.log,
                known[i.compute].alive(i),
            )
            for i in serving
            if i.endpoint == name
        ]
        found.append(
            Endpoint(
                name,
                str(outputs.get("url")),
                str(outputs.get("auth_mode", "key")),
                running is not None and running.alive(),
                deployed,
            )
        )
    return found


def endpoint(ws: OpenWorkspace, name: str) -> Endpoint:
    for found in endpoints(ws):
        if found.name == name:
            return found
    names = ", ".join(e.name for e in endpoints(ws)) or "none"
    raise NotFound(f"no endpoint named '{name}' is deployed (endpoints: {names})")


def logs(ws: OpenWorkspace, name: str, deployment: str | None, lines: int) -> str:
    found = endpoint(ws, name)
    chosen = _deployment(found, deployment)
    if chosen.compute == "local":
        return local.tail(Path(chosen.log), lines)
    with ws.store("endpoints logs") as store:
        inst = next(
            i for i in instances.serving(store.read, name) if i.deployment == chosen.deployment
        )
    return DockerTarget().tail(inst, lines)


def invoke(ws: OpenWorkspace, name: str, body: bytes, deployment: str | None) -> tuple[int, str]:
    """POST `body` to the endpoint's /score with its primary key; (status, response)."""
    found = endpoint(ws, name)
    port = int(found.url.rsplit(":", 1)[1])
    headers = {"Content-Type": "application/json"}
    secret = key_file.load(ws.home, name)
    if found.auth_mode in signing.TOKEN_MODES:
        headers["Authorization"] = f"Bearer {token(ws, name, 60)[0]}"
    elif secret:
        headers["Authorization"] = f"Bearer {secret['primary']}"
    if deployment is not None:
        _deployment(found, deployment)
        headers["azureml-model-deployment"] = deployment
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", "/score", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    except OSError as err:
        raise MlformError(
            f"endpoint {name} at {found.url} does not answer ({err}); `mlform plan` shows "
            "what is not running, `mlform apply` starts it"
        ) from err
    finally:
        connection.close()


def token(ws: OpenWorkspace, name: str, seconds: float) -> tuple[str, float]:
    """A token for an endpoint with `auth_mode: token`, signed with its current token key."""
    found = endpoint(ws, name)
    if found.auth_mode not in signing.TOKEN_MODES:
        raise MlformError(
            f"endpoint {name} takes keys (auth_mode: {found.auth_mode}), not tokens; "
            f"`mlform endpoints keys {name}` shows them"
        )
    if not 0 < seconds <= MAX_TOKEN_LIFETIME:
        raise MlformError(
            f"--expires {seconds:g}: a token lives at most {MAX_TOKEN_LIFETIME} seconds (a "
            "day), so that a rotated key is dropped a day after; ask for a new one when "
            "it expires"
        )
    ring = signing.load(ws.home, name)
    if ring is None:
        raise NotFound(signing.missing(ws.home, name))
    return mint(ring.current.secret, name, seconds, kid=ring.current.kid)


def rotate_token_key(ws: OpenWorkspace, name: str) -> signing.Rotation:
    """A new current token key for the endpoint; the previous one is kept for a day."""
    found = endpoint(ws, name)
    if found.auth_mode not in signing.TOKEN_MODES:
        raise MlformError(
            f"endpoint {name} takes keys (auth_mode: {found.auth_mode}), so it has no token "
            f"key to rotate; `mlform endpoints keys {name} --regenerate secondary` renews a key"
        )
    return signing.rotate(ws.home, name)


def keys(ws: OpenWorkspace, name: str, regenerate: str | None) -> dict[str, str]:
    endpoint(ws, name)
    state_dir = ws.home
    if regenerate:
        return key_file.ensure(state_dir, name, (regenerate,))
    return key_file.load(state_dir, name)


def _deployment(found: Endpoint, name: str | None) -> Deployed:
    if name is None:
        if len(found.deployments) == 1:
            return found.deployments[0]
        names = ", ".join(d.deployment for d in found.deployments)
        raise MlformError(f"endpoint {found.name} has several deployments ({names}); pick one")
    for d in found.deployments:
        if d.deployment == name:
            return d
    names = ", ".join(d.deployment for d in found.deployments) or "none"
    raise NotFound(f"endpoint {found.name} has no deployment '{name}' (deployments: {names})")
