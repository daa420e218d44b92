from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import re
import shutil
import threading
import urllib.request
from pathlib import Path
from typing import Any

import docker
import pytest

from mlform.containers import run
from mlform.containers.build import BuildRequest, build, exists, push, render
from mlform.containers.wheels import download
from mlform.errors import ApplyError, BuildFailed
from tests.containers.conftest import (
    BASE_IMAGE,
    BOOKWORM,
    REQUIREMENTS,
    TRICKY,
    Built,
    scorer_request,
    write_folders,
)
from tests.ports import free_port

STARLETTE = importlib.metadata.version("starlette")
IDNA = f"idna=={importlib.metadata.version('idna')}"


def steps(log: list[str]) -> list[tuple[str, bool]]:
    """Each build step's instruction, and whether Docker took it from its cache."""
    out = []
    for i, line in enumerate(log):
        if line.startswith("Step ") and " : FROM " not in line:
            cached = i + 1 < len(log) and log[i + 1] == " ---> Using cache"
            out.append((line.split(" : ", 1)[1], cached))
    return out


def test_render_orders_layers_and_quotes_values() -> None:
    request = BuildRequest(
        tag="mlform-iris/scorer:3",
        base_image=BASE_IMAGE,
        requirements=("starlette==1.10.0",),
        folders={"model": Path("m"), "extra": Path("e"), "code": Path("c"), "runtime": Path("r")},
        env={"MLFORM_MODEL_DIR": "/opt/mlform/model", "NOTE": 'costs $5 "now"'},
        labels={"org.mlform.model": "iris:3"},
        command=("python", "-m", "mlform.serving", "--port", "8080"),
        port=8080,
    )
    assert render(request, BOOKWORM).split("\n\n", 1)[1] == (
        f"""\
# Stage 1, the environment: it depends on the base image and the wheels only, so a new
# model or code version reuses it from Docker's build cache.
FROM {BASE_IMAGE} AS environment
COPY wheels /wheels
# pip's output and errors share one unbuffered stream, so the build log (and the lines a
# failed build quotes) keep the order pip wrote them in.
RUN python3 -m venv /opt/mlform/venv \\
 && PYTHONUNBUFFERED=1 /opt/mlform/venv/bin/pip install --no-index --find-links /wheels \\
      --no-cache-dir --disable-pip-version-check --no-input --progress-bar off \\
      --requirement /wheels/requirements.txt 2>&1
# Found by `docker image prune --filter label=org.mlform.stage=environment` once unused.
LABEL org.mlform.stage=environment

# Stage 2, the image: what changes least comes first, the model (which changes most) last.
FROM {BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    PATH=/opt/mlform/venv/bin:$PATH \\
    PYTHONPATH=/opt/mlform/runtime
COPY --from=environment /opt/mlform/venv /opt/mlform/venv
COPY runtime /opt/mlform/runtime
COPY extra /opt/mlform/extra
COPY code /opt/mlform/code
COPY model /opt/mlform/model
WORKDIR /opt/mlform
ENV \\
    MLFORM_MODEL_DIR="/opt/mlform/model" \\
    NOTE="costs \\$5 \\"now\\""
LABEL \\
    "org.mlform.model"="iris:3"
EXPOSE 8080
CMD ["python", "-m", "mlform.serving", "--port", "8080"]
"""
    )


def test_the_image_runs_environment_runtime_code_and_model(
    client: docker.DockerClient, scorer: Built, unique: str
) -> None:
    name = f"mlform-test-show-{unique}"
    container = run.start(client, scorer.request.tag, name=name, env={}, labels={})
    try:
        assert container.wait(timeout=60)["StatusCode"] == 0
        output = run.logs(client, name, tail=20)
    finally:
        run.stop(client, name)
    speedups = f"_speedups.cpython-311-{BOOKWORM.machine}-linux-gnu.so"
    assert output == (
        f"starlette {STARLETTE}\n"
        f"speedups {speedups}\n"
        "runtime on PYTHONPATH\n"
        "model model v1\n"
        f"tricky {TRICKY}\n"
        "python /opt/mlform/venv/bin/python /opt/mlform\n"
    )


def test_the_image_carries_labels_env_port_and_command(
    client: docker.DockerClient, scorer: Built
) -> None:
    attrs = client.images.get(scorer.request.tag).attrs
    assert scorer.image.image_id == attrs["Id"]
    assert scorer.image.size == attrs["Size"]
    assert exists(client, scorer.image.image_id)
    config = attrs["Config"]
    assert {k: config["Labels"][k] for k in scorer.request.labels} == scorer.request.labels
    assert config["Env"] == [
        "LANG=C.UTF-8",
        "PATH=/opt/mlform/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "PYTHONDONTWRITEBYTECODE=1",
        "PYTHONUNBUFFERED=1",
        "PYTHONPATH=/opt/mlform/runtime",
        "MLFORM_MODEL_DIR=/opt/mlform/model",
        f"TRICKY={TRICKY}",
    ]
    assert config["ExposedPorts"] == {"8080/tcp": {}}
    assert config["Cmd"] == ["python", "code/show.py"]
    assert config["WorkingDir"] == "/opt/mlform"


def test_the_build_log_shows_each_step_and_pips_lines(scorer: Built) -> None:
    log = scorer.log
    assert [line for line in log if line.startswith("Step ")][:3] == [
        f"Step 1/15 : FROM {BASE_IMAGE} AS environment",
        "Step 2/15 : COPY wheels /wheels",
        "Step 3/15 : RUN python3 -m venv /opt/mlform/venv  && PYTHONUNBUFFERED=1 "
        "/opt/mlform/venv/bin/pip install --no-index --find-links /wheels       --no-cache-dir "
        "--disable-pip-version-check --no-input --progress-bar off       "
        "--requirement /wheels/requirements.txt 2>&1",
    ]
    assert log[-1] == f"Successfully tagged {scorer.request.tag}"
    assert not any(line.startswith(" ---> Running in") for line in log)


def test_rebuilding_the_same_request_takes_every_layer_from_the_cache(
    client: docker.DockerClient, scorer: Built, build_cache: Path
) -> None:
    log: list[str] = []
    again = build(scorer.request, cache=build_cache, log=log.append, client=client)
    assert again.image_id == scorer.image.image_id
    assert log[0] == f"wheels for {BOOKWORM.describe()}: cached"
    assert all(cached for _, cached in steps(log))
    assert len(steps(log)) == 13
    assert again.seconds < 15


def test_a_new_model_version_reuses_the_environment_layers(
    client: docker.DockerClient, scorer: Built, build_cache: Path, tmp_path: Path, unique: str
) -> None:
    folders = write_folders(tmp_path, model="model v2")
    request = scorer_request(f"mlform-test/scorer:v2-{unique}", folders)
    log: list[str] = []
    image = build(request, cache=build_cache, log=log.append, client=client)
    try:
        assert image.image_id != scorer.image.image_id
        rebuilt = [instruction for instruction, cached in steps(log) if not cached]
        assert rebuilt[0] == "COPY model /opt/mlform/model"
        assert [cached for _, cached in steps(log)][:6] == [True] * 6  # through `code`
    finally:
        client.images.remove(request.tag)


def test_a_requirement_pip_cannot_find_fails_before_building(
    client: docker.DockerClient, build_cache: Path, unique: str
) -> None:
    request = BuildRequest(
        tag=f"mlform-test/missing:{unique}",
        base_image=BASE_IMAGE,
        requirements=(*REQUIREMENTS, "nonexistent-mlform-pkg==9.9"),
        folders={},
    )
    with pytest.raises(BuildFailed) as caught:
        build(request, cache=build_cache, log=lambda line: None, client=client)
    assert "\n  | ERROR: No matching distribution found for nonexistent-mlform-pkg==9.9\n" in str(
        caught.value
    )
    assert not exists(client, request.tag)


def test_a_wheel_that_does_not_install_names_the_install_step(
    client: docker.DockerClient, tmp_path: Path, unique: str
) -> None:
    folder = download([IDNA], BOOKWORM, tmp_path, lambda line: None)
    (wheel,) = folder.glob("*.whl")
    wheel.write_bytes(b"not a zip")  # as a damaged download in the cache would be
    request = BuildRequest(
        tag=f"mlform-test/broken:{unique}", base_image=BASE_IMAGE, requirements=(IDNA,), folders={}
    )
    with pytest.raises(BuildFailed) as caught:
        build(request, cache=tmp_path, log=lambda line: None, client=client)
    assert str(caught.value) == (
        f"building image {request.tag}: pip could not install the packages inside the image "
        "(step 3/8):\n"
        "  | Looking in links: /wheels\n"
        f"  | Processing /wheels/{wheel.name}\n"
        f"  | ERROR: Wheel 'idna' located at /wheels/{wheel.name} is invalid.\n"
        f"pip's lines above name the package. The wheels in {folder} were downloaded on this "
        f"machine for {BOOKWORM.describe()}; if one is damaged, delete that folder and build "
        "again."
    )
    assert not exists(client, request.tag)
    shutil.rmtree(folder)


def test_a_cancelled_build_stops_and_tags_nothing(
    client: docker.DockerClient, scorer: Built, build_cache: Path, unique: str
) -> None:
    folders = {name: Path(path) for name, path in scorer.request.folders.items()}
    request = scorer_request(f"mlform-test/cancelled:{unique}", folders)
    cancelled = threading.Event()

    def log(line: str) -> None:
        if line.startswith("Step 2/"):
            cancelled.set()

    with pytest.raises(ApplyError) as caught:
        build(request, cache=build_cache, log=log, cancelled=cancelled, client=client)
    assert str(caught.value) == f"building image {request.tag}: cancelled"
    assert not exists(client, request.tag)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"env": {"NOT-A-NAME": "x"}}, "'NOT-A-NAME' is not an environment variable name"),
        ({"env": {"A": "two\nlines"}}, "environment variable A has a line break, which an image"),
        ({"folders": {"wheels": Path(".")}}, "'wheels' cannot name a folder in the image"),
        ({"folders": {"model": Path("/nonexistent")}}, "folder /nonexistent (for model) does"),
    ],
)
def test_a_request_that_cannot_become_a_dockerfile_is_refused(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    request = BuildRequest(tag="t:1", base_image=BASE_IMAGE, requirements=(), folders={})
    with pytest.raises(ApplyError) as caught:  # before any engine is asked
        build(dataclasses.replace(request, **change), cache=tmp_path, log=lambda line: None)
    assert str(caught.value).startswith(f"image t:1: {message}")


def test_push_sends_the_image_to_the_registry_its_tag_names(
    client: docker.DockerClient, scorer: Built, registry: str, unique: str
) -> None:
    repository = f"{registry}/mlform-test/scorer"
    tag = f"{repository}:{unique}"
    client.images.get(scorer.request.tag).tag(repository, unique)
    log: list[str] = []
    digest = ""
    try:
        digest = push(client, tag, log.append)
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
        assert f"{repository}@{digest}" in client.images.get(tag).attrs["RepoDigests"]
        with urllib.request.urlopen(f"http://{registry}/v2/_catalog") as answer:
            assert "mlform-test/scorer" in json.load(answer)["repositories"]
        with urllib.request.urlopen(f"http://{registry}/v2/mlform-test/scorer/tags/list") as answer:
            assert unique in json.load(answer)["tags"]
        assert log[0] == f"The push refers to repository [{repository}]"
    finally:
        client.images.remove(tag)
        if digest:  # leave the registry as it was
            manifest = f"http://{registry}/v2/mlform-test/scorer/manifests/{digest}"
            urllib.request.urlopen(urllib.request.Request(manifest, method="DELETE")).close()


def test_push_to_a_registry_that_is_not_there_says_so(
    client: docker.DockerClient, scorer: Built, unique: str
) -> None:
    port = free_port()  # nothing listens on it
    repository = f"127.0.0.1:{port}/mlform-test/scorer"
    client.images.get(scorer.request.tag).tag(repository, unique)
    try:
        with pytest.raises(ApplyError) as caught:
            push(client, f"{repository}:{unique}", lambda line: None)
    finally:
        client.images.remove(f"{repository}:{unique}")
    assert str(caught.value) == (
        f"pushing image {repository}:{unique} to 127.0.0.1:{port} failed: "
        f'Get "http://127.0.0.1:{port}/v2/": dial tcp 127.0.0.1:{port}: connect: connection '
        f"refused; check that the registry is running and reachable from the Docker engine, "
        f"and `docker login 127.0.0.1:{port}` if it needs credentials"
    )
