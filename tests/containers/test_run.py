from __future__ import annotations

import time

import docker
import pytest

from mlform.containers import run
from mlform.errors import ApplyError, NotFound
from tests.containers.conftest import Built

SERVE = "import os, time; print('serving', os.environ['GREETING'], flush=True); time.sleep(600)"


def wait_for_output(client: docker.DockerClient, name: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while not (output := run.logs(client, name, tail=10)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return output


def test_a_container_runs_on_the_host_network_and_stops_promptly(
    client: docker.DockerClient, scorer: Built, unique: str
) -> None:
    name = f"mlform-test-serve-{unique}"
    container = run.start(
        client,
        scorer.request.tag,
        name=name,
        env={"GREETING": "hello"},
        labels={"org.mlform.test": unique},
        command=["python", "-c", SERVE],
    )
    try:
        assert wait_for_output(client, name) == "serving hello\n"
        container.reload()
        assert container.status == "running"
        assert container.labels["org.mlform.test"] == unique
        assert container.attrs["HostConfig"]["NetworkMode"] == "host"
        assert container.attrs["HostConfig"]["Init"] is True
        started = time.monotonic()
        assert run.stop(client, name, timeout=5) is True
        # The init process passes SIGTERM on: no waiting out the timeout for a SIGKILL.
        assert time.monotonic() - started < 4
    finally:
        run.stop(client, name, timeout=0)
    assert client.containers.list(all=True, filters={"name": name}) == []
    assert run.stop(client, name) is False


def test_a_name_in_use_is_refused(client: docker.DockerClient, scorer: Built, unique: str) -> None:
    name = f"mlform-test-twice-{unique}"
    command = ["python", "-c", SERVE]
    run.start(
        client, scorer.request.tag, name=name, env={"GREETING": "a"}, labels={}, command=command
    )
    try:
        with pytest.raises(ApplyError) as caught:
            run.start(client, scorer.request.tag, name=name, env={}, labels={}, command=command)
        assert str(caught.value) == (
            f"a container named {name} already exists; remove it (`docker rm -f {name}`) "
            "if nothing should be running there"
        )
    finally:
        run.stop(client, name, timeout=0)


def test_a_command_that_does_not_exist_exits_127_with_a_message(
    client: docker.DockerClient, scorer: Built, unique: str
) -> None:
    # Under an init process the container starts either way; the init's exec then fails.
    name = f"mlform-test-nostart-{unique}"
    container = run.start(
        client, scorer.request.tag, name=name, env={}, labels={}, command=["nope"]
    )
    try:
        assert container.wait(timeout=30)["StatusCode"] == 127
        assert "exec nope failed: No such file or directory" in run.logs(client, name, tail=5)
    finally:
        run.stop(client, name, timeout=0)
    assert client.containers.list(all=True, filters={"name": name}) == []


def test_logs_of_a_missing_container(client: docker.DockerClient) -> None:
    with pytest.raises(NotFound) as caught:
        run.logs(client, "mlform-test-absent", tail=5)
    assert str(caught.value) == "no container named mlform-test-absent on the Docker engine"
