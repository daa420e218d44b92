"""Connecting to the Docker engine, and saying clearly when it is not there.

The SDK reports a missing engine in several shapes: `docker.from_env()` raises
`DockerException`, later calls raise `requests.exceptions.ConnectionError`, and a daemon
that answers but refuses raises `APIError`. Everything here maps them onto
`EngineUnavailable` (start the engine) or `ApplyError` (the engine said no, and why).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

from mlform.errors import ApplyError, EngineUnavailable

if TYPE_CHECKING:
    import docker

DEFAULT_HOST = "unix:///var/run/docker.sock"
_CONNECT_TIMEOUT = 5.0


def where() -> str:
    """The engine address the SDK uses, as the user would write it in DOCKER_HOST."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_HOST


def connect() -> docker.DockerClient:
    """A client for the engine DOCKER_HOST names, checked to answer."""
    try:
        import docker
    except ImportError as err:
        raise EngineUnavailable(
            "the Docker SDK is not installed; run `pip install 'mlform[docker]'`, "
            "or use compute: local"
        ) from err
    import requests

    unreachable = f"Docker engine not reachable at {where()}; start it, or use compute: local"
    if not _accepts(where()):
        raise EngineUnavailable(unreachable)
    try:
        client = docker.from_env()
    except docker.errors.DockerException as err:
        raise EngineUnavailable(unreachable) from err
    try:
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
        client.close()
        raise EngineUnavailable(unreachable) from err
    return client


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
