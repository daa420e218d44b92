"""A container deployment gets its secrets in a mounted file, not in the environment
`docker inspect` shows, and masks them in its own output, as `docker logs` shows it: the
server inside runs from the runtime folder, which carries the masking with it."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import docker
import pytest

from mlform.cachedir import cache_dir
from mlform.kinds.endpoint.docker import DockerTarget
from mlform.kinds.endpoint.instances import Launch
from mlform.kinds.image.kind import runtime_folder
from tests.containers.conftest import BASE_IMAGE, client  # noqa: F401  (fixture)
from tests.kinds.endpoint.test_local import SCORE_PY, SECRET, ready
from tests.ports import free_port
from tests.serving.conftest import call


@pytest.mark.slow
def test_a_containers_output_shows_its_secrets_as_stars(
    tmp_path: Path,
    client: docker.DockerClient,  # noqa: F811
) -> None:
    code, model = tmp_path / "code", tmp_path / "model"
    code.mkdir()
    model.mkdir()
    (code / "score.py").write_text(SCORE_PY, encoding="utf-8")
    launch = Launch(
        endpoint="masked",
        deployment="blue",
        instance=secrets.token_hex(4),
        digest=secrets.token_hex(32),
        model="iris:1",
        folder=tmp_path / "instance",
        code=code,
        script="score.py",
        model_dir=model,
        environment="iris-env:1",
        python=None,
        base_image=BASE_IMAGE,
        runtime=runtime_folder(cache_dir()),
        variables={"API_TOKEN": SECRET},
        secrets=(SECRET,),
    )
    target = DockerTarget()
    port = free_port()
    instance = target.start(launch, port, lambda message: None)
    try:
        # the value is in a file mounted read-only, not in what `docker inspect` shows
        inspected = client.api.inspect_container(instance.handle)
        assert SECRET not in json.dumps(inspected)
        assert (
            "MLFORM_SECRET_FILE=/run/secrets/mlform-variables/variables.json"
            in (inspected["Config"]["Env"])
        )
        deadline = time.monotonic() + 120  # bounds a hang; the server starts in seconds
        while not ready(port) and time.monotonic() < deadline:
            assert target.alive(instance), target.tail(instance, 50)
            time.sleep(0.1)
        scored = call(port, "POST", "/score", b'{"data": [1]}')
        while "child: " not in (log := target.tail(instance, 100)):
            assert time.monotonic() < deadline, log
            time.sleep(0.1)
    finally:
        target.stop(instance)
        client.images.remove(str(instance.image), force=True)
    assert (scored.status, scored.body) == (200, b"[1]")
    assert "init: ***\n" in log
    assert "calling the API with ***\n" in log
    assert "child: ***\n" in log
    assert SECRET[:5] not in log and SECRET[5:] not in log
