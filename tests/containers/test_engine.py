from __future__ import annotations

import gc
import sys
from collections.abc import Callable

import docker
import pytest

from mlform.containers import engine
from mlform.containers.engine import candidates, connect, engine_errors, where
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


NO_DEFAULT = "unix:///nonexistent/docker.sock"


def socket_of(host: str) -> str:
    assert host.startswith("unix://"), f"the test engine should be on a unix socket, not {host}"
    return host.removeprefix("unix://")


def test_without_docker_host_the_private_engine_is_found(
    client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As after `./dev demo` in a new shell: nothing exported, no engine on the default
    # socket (moved aside here, whatever this machine has), the engine that
    # scripts/docker-up.sh started on its own socket.
    private = socket_of(where())
    monkeypatch.setattr(engine, "DEFAULT_HOST", NO_DEFAULT)
    environ = {"MLFORM_DOCKER_SOCK": private}
    assert candidates(environ) == [NO_DEFAULT, f"unix://{private}"]
    found = connect(environ)
    try:
        assert found.version()["Version"] == client.version()["Version"]
        assert where(environ) == f"unix://{private}"
    finally:
        found.close()


def test_the_default_socket_comes_before_the_private_one(
    client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "DEFAULT_HOST", where())
    environ = {"MLFORM_DOCKER_SOCK": "/nonexistent/mlform-docker.sock"}
    assert candidates(environ) == [where(), "unix:///nonexistent/mlform-docker.sock"]
    found = connect(environ)
    try:
        assert found.ping() is True
    finally:
        found.close()


def test_docker_host_when_set_is_the_only_engine_tried(client: docker.DockerClient) -> None:
    environ = {"DOCKER_HOST": where(), "MLFORM_DOCKER_SOCK": "/nonexistent/mlform-docker.sock"}
    assert candidates(environ) == [where()]
    found = connect(environ)
    try:
        assert found.ping() is True
    finally:
        found.close()


def test_when_no_engine_answers_the_error_says_what_was_tried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine, "DEFAULT_HOST", NO_DEFAULT)
    environ = {"MLFORM_DOCKER_SOCK": "/nonexistent/mlform-docker.sock"}
    assert message_of(EngineUnavailable, lambda: connect(environ)) == (
        "no Docker engine answers (DOCKER_HOST is not set; tried unix:///nonexistent/docker.sock "
        "and unix:///nonexistent/mlform-docker.sock); start one with `scripts/docker-up.sh` "
        "from a checkout of mlform (or set DOCKER_HOST), or use compute: local"
    )
