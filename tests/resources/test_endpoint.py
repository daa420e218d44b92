"""A deployment on compute: docker — the deployment's image built with the real engine,
run as a container on the host network behind the endpoint's router."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from tests.cli.test_endpoints import FLOWERS, port_of, primary_key, request
from tests.conftest import Ran
from tests.containers.conftest import client  # noqa: F401  (fixture)

Cli = Callable[..., Ran]


@pytest.mark.slow
def test_a_docker_deployment_serves_behind_the_router(
    cli: Cli,
    example_with_endpoint: Path,
    client: docker.DockerClient,  # noqa: F811
) -> None:
    root = example_with_endpoint
    spec = root / "endpoints" / "iris.yml"
    spec.write_text(
        spec.read_text().replace(
            "    compute: local", "    compute: docker\n    base_image: mlform/base:bookworm"
        )
    )
    applied = cli("apply", "--yes", cwd=root)
    try:
        assert applied.code == 0, applied.out + applied.err
        assert "deployment blue: started container mlform-iris-blue-" in applied.out
        port = port_of(root)
        auth = {"Authorization": f"Bearer {primary_key(cli, root)}"}
        status, headers, body = request(port, json.dumps(FLOWERS).encode(), auth)
        assert (status, body) == (200, b'["setosa","virginica"]')
        assert headers["x-mlform-deployment"] == "blue"
        running = client.containers.list(filters={"label": "mlform.endpoint=iris"})
        assert len(running) == 1
        assert cli("plan", "--detailed-exitcode", cwd=root).code == 0
    finally:
        spec.unlink()
        gone = cli("apply", "--yes", cwd=root)
    assert "- endpoint/iris destroyed: stopped and deleted (blue)" in gone.out
    assert client.containers.list(all=True, filters={"label": "mlform.endpoint=iris"}) == []


@pytest.mark.slow
def test_a_docker_token_deployment_reads_its_token_key_from_a_mounted_file(
    cli: Cli,
    example_with_endpoint: Path,
    client: docker.DockerClient,  # noqa: F811
) -> None:
    root = example_with_endpoint
    spec = root / "endpoints" / "iris.yml"
    spec.write_text(
        spec.read_text()
        .replace("auth_mode: key", "auth_mode: token")
        .replace("    compute: local", "    compute: docker\n    base_image: mlform/base:bookworm")
    )
    applied = cli("apply", "--yes", cwd=root)
    try:
        assert applied.code == 0, applied.out + applied.err
        token = cli("endpoints", "token", "iris", cwd=root).out.strip()
        body = json.dumps(FLOWERS).encode()
        status, _, answer = request(port_of(root), body, {"Authorization": f"Bearer {token}"})
        assert (status, answer) == (200, b'["setosa","virginica"]')
        (container,) = client.containers.list(filters={"label": "mlform.endpoint=iris"})
        key_file = root / ".mlform" / "secrets" / "tokens" / "iris.key"
        key = json.loads(key_file.read_text())["token_key"]
        assert key not in json.dumps(container.attrs)  # `docker inspect` shows no key
        assert (
            "MLFORM_TOKEN_KEY_FILE=/run/secrets/mlform-token-key"
            in container.attrs["Config"]["Env"]
        )
        mounts = {m["Destination"]: m["Source"] for m in container.attrs["Mounts"]}
        assert mounts["/run/secrets/mlform-token-key"] == str(key_file)
    finally:
        spec.unlink()
        gone = cli("apply", "--yes", cwd=root)
    assert "- endpoint/iris destroyed: stopped and deleted (blue)" in gone.out
    assert not key_file.exists()
