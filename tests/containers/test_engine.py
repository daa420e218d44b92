from __future__ import annotations

import gc
import sys
from collections.abc import Callable

import docker
import pytest

from mlform.containers.engine import connect, engine_errors
from mlform.errors import ApplyError, EngineUnavailable

NOWHERE = "unix:///nonexistent.sock"

# docker-py leaves the socket of a failed connection unclosed (its UnixHTTPConnection does
# not close it when connect() raises): harmless to users, whose ResourceWarnings are off.
# Here the socket is finalized inside the test, where that warning is ignored.
leaks_a_socket = pytest.mark.filterwarnings("ignore::ResourceWarning")


def message_of(kind: type[Exception], call: Callable[[], object]) -> str:
    with pytest.raises(kind) as caught:
        call()
    message = str(caught.value)
    del caught  # its traceback holds the leaked socket
    gc.collect()
    return message


def test_an_unreachable_engine_says_where_and_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", NOWHERE)
    assert message_of(EngineUnavailable, connect) == (
        "Docker engine not reachable at unix:///nonexistent.sock; start it, or use compute: local"
    )


def test_without_the_sdk_connect_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "docker", None)  # as if `docker` were not installed
    assert message_of(EngineUnavailable, connect) == (
        "the Docker SDK is not installed; run `pip install 'mlform[docker]'`, or use compute: local"
    )


@leaks_a_socket
def test_an_engine_lost_after_connecting_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", NOWHERE)
    # A fixed API version: the client then connects on its first call, not when made.
    lost = docker.DockerClient(base_url=NOWHERE, version="1.41")

    def list_images() -> None:
        with engine_errors("listing images"):
            lost.images.list()

    try:
        assert message_of(EngineUnavailable, list_images) == (
            "lost the Docker engine at unix:///nonexistent.sock while listing images; "
            "start it and try again"
        )
    finally:
        lost.close()


def test_a_refusal_keeps_the_engines_explanation(client: docker.DockerClient) -> None:
    def inspect() -> None:
        with engine_errors("inspecting container mlform-absent"):
            client.containers.get("mlform-absent")

    assert message_of(ApplyError, inspect) == (
        "inspecting container mlform-absent: the Docker engine refused: "
        "No such container: mlform-absent"
    )
