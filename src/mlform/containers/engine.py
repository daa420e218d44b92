"""Connecting to the Docker engine, and saying clearly when it is not there.

The SDK reports a missing engine in several shapes: `docker.from_env()` raises
`DockerException`, later calls raise `requests.exceptions.ConnectionError`, and a daemon
that answers but refuses raises `APIError`. Everything here maps them onto
`EngineUnavailable` (start the engine) or `ApplyError` (the engine said no, and why).

Which engine: DOCKER_HOST when it is set; otherwise the default socket
(/var/run/docker.sock) if it answers, else the private engine that scripts/docker-up.sh
starts (/run/mlform-docker.sock, or $MLFORM_DOCKER_SOCK).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from mlform.errors import ApplyError, EngineUnavailable

if TYPE_CHECKING:
    import docker

DEFAULT_HOST = "unix:///var/run/docker.sock"
# The engine scripts/docker-up.sh starts (its MLFORM_DOCKER_SOCK setting, same default).
PRIVATE_SOCKET = "/run/mlform-docker.sock"
_CONNECT_TIMEOUT = 5.0
_last_connected: str | None = None  # so a lost engine is named as the one that was used


def candidates(environ: Mapping[str, str] | None = None) -> list[str]:
    """The addresses mlform tries, in order: DOCKER_HOST alone when it is set (the user
    said where); else the default socket, then the private engine of
    scripts/docker-up.sh, so that engine is found without exporting anything."""
    environ = os.environ if environ is None else environ
    if environ.get("DOCKER_HOST"):
        return [environ["DOCKER_HOST"]]
    private = environ.get("MLFORM_DOCKER_SOCK") or PRIVATE_SOCKET
    return [DEFAULT_HOST, f"unix://{private}"]


def where(environ: Mapping[str, str] | None = None) -> str:
    """The engine address mlform uses, as the user would write it in DOCKER_HOST: the one
    last connected to, else the first candidate that accepts a connection, else the first.
    """
    tried = candidates(environ)
    if len(tried) > 1 and _last_connected and _last_connected in tried:
        return _last_connected
    return next((host for host in tried if _accepts(host)), tried[0])


def connect(environ: Mapping[str, str] | None = None) -> docker.DockerClient:
    """A client for the first engine that answers (see `candidates`), checked to answer."""
    try:
        # start-up: the Docker SDK, only when the engine is used
        import docker
    except ImportError as err:
        raise EngineUnavailable(
            "the Docker SDK is not installed; run `pip install 'mlform[docker]'`, "
            "or use compute: local"
        ) from err
    # start-up: the Docker SDK's HTTP stack, only when the engine is used
    import requests

    environ = os.environ if environ is None else environ
    tried = candidates(environ)
    host = next((h for h in tried if _accepts(h)), None)
    if host is None:
        raise EngineUnavailable(_none_answers(tried, environ))
    unreachable = f"Docker engine not reachable at {host}; start it, or use compute: local"
    try:
        # DOCKER_TLS_VERIFY and DOCKER_CERT_PATH still apply, as `docker` itself reads them.
        client = docker.from_env(environment={**environ, "DOCKER_HOST": host})
    except docker.errors.DockerException as err:
        raise EngineUnavailable(unreachable) from err
    try:
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
        client.close()
        raise EngineUnavailable(unreachable) from err
    global _last_connected
    _last_connected = host
    return client


def _none_answers(tried: list[str], environ: Mapping[str, str]) -> str:
    if environ.get("DOCKER_HOST"):
        return f"Docker engine not reachable at {tried[0]}; start it, or use compute: local"
    return (
        f"no Docker engine answers (DOCKER_HOST is not set; tried {' and '.join(tried)}); "
        "start one with `scripts/docker-up.sh` from a checkout of mlform (or set DOCKER_HOST), "
        "or use compute: local"
    )


def _accepts(host: str) -> bool:
    """Whether anything accepts a connection at `host` (True when it cannot be told).

    Asked first with a socket of our own, closed either way: docker-py leaves the socket
    of a failed connection open, and the commonest failure, no engine at all, is then
    reported without an unclosed socket waiting to be collected.
    """
    scheme, _, rest = host.partition("://")
    try:
        if scheme == "unix":
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(_CONNECT_TIMEOUT)
                sock.connect(rest)
        elif scheme in {"tcp", "http", "https"}:
            name, _, port = rest.split("/", 1)[0].rpartition(":")
            socket.create_connection((name.strip("[]"), int(port)), _CONNECT_TIMEOUT).close()
    except (OSError, ValueError):
        return False
    return True


@contextlib.contextmanager
def engine_errors(what: str) -> Iterator[None]:
    """Re-raise the SDK's exceptions from the block as mlform errors that name `what`
    ("building image mlform-iris/scorer:3"): the engine's own explanation is kept."""
    # start-up: the Docker SDK and its HTTP stack, only when the engine is used
    import docker.errors
    import requests
    import urllib3

    try:
        yield
    except (requests.exceptions.ConnectionError, urllib3.exceptions.ProtocolError) as err:
        raise EngineUnavailable(
            f"lost the Docker engine at {where()} while {what}; start it and try again"
        ) from err
    except requests.exceptions.Timeout as err:
        raise EngineUnavailable(
            f"the Docker engine at {where()} did not answer while {what}; "
            "check that it is not overloaded or stuck, and try again"
        ) from err
    except docker.errors.APIError as err:
        raise ApplyError(f"{what}: the Docker engine refused: {err.explanation or err}") from err
    except docker.errors.DockerException as err:
        raise ApplyError(f"{what}: {err}") from err
