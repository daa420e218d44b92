"""The real Docker engine (scripts/docker-up.sh) and, for pushes, a local registry
(scripts/registry-up.sh). Without them these tests skip, except in CI, where that fails."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import secrets
import textwrap
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import docker
import pytest

from mlform.containers.build import BuildRequest, BuiltImage, build
from mlform.containers.engine import connect
from mlform.containers.wheels import PythonTarget
from mlform.errors import EngineUnavailable

BASE_IMAGE = "mlform/base:bookworm"
# Pure-Python packages the runtime needs, and one with a compiled extension, pinned to
# what this venv has: MarkupSafe proves a manylinux wheel was chosen that loads in the image.
REQUIREMENTS = tuple(
    f"{name}=={importlib.metadata.version(name)}" for name in ("starlette", "uvicorn", "MarkupSafe")
)
BOOKWORM = PythonTarget("3.11", "cp", "cp311", (2, 36), platform.machine())
TRICKY = 'a "quoted" $HOME \\ value'  # Dockerfile quoting must keep it as it is
# What the image's CMD prints: each line proves one part of the image is in place.
SHOW = """\
import os, sys, markupsafe._speedups, starlette, mlform_probe
print("starlette", starlette.__version__)
print("speedups", markupsafe._speedups.__file__.rsplit("/", 1)[1])
print("runtime", mlform_probe.GREETING)
print("model", open(os.path.join(os.environ["MLFORM_MODEL_DIR"], "weights.txt")).read().strip())
print("tricky", os.environ["TRICKY"])
print("python", sys.executable, os.getcwd())
"""


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI must provide it)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def client() -> Iterator[docker.DockerClient]:
    try:
        engine = connect()
    except EngineUnavailable as err:
        unavailable(f'{err} (eval "$(scripts/docker-up.sh)")')
    try:
        engine.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        engine.close()
        unavailable(f"base image {BASE_IMAGE} missing (run scripts/docker-up.sh)")
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def build_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Probes, wheels and contexts for every build in the session: each downloads once."""
    return tmp_path_factory.mktemp("image-cache")


@pytest.fixture(scope="session")
def registry() -> str:
    address = os.environ.get("MLFORM_TEST_REGISTRY", "")
    if not address:
        unavailable('MLFORM_TEST_REGISTRY is not set (eval "$(scripts/registry-up.sh)")')
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=5):
            pass
    except OSError as err:
        unavailable(f"no registry answers at {address}: {err}")
    return address


@pytest.fixture
def unique() -> str:
    """A suffix that keeps names of this test run apart from any other on the engine."""
    return secrets.token_hex(4)


def write_folders(root: Path, model: str) -> dict[str, Path]:
    """The three folders an image carries: the runtime package, the code, the model."""
    files = {
        "runtime/mlform_probe/__init__.py": 'GREETING = "on PYTHONPATH"\n',
        "code/show.py": SHOW,
        "model/weights.txt": f"{model}\n",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return {name: root / name for name in ("model", "code", "runtime")}


def scorer_request(tag: str, folders: dict[str, Path]) -> BuildRequest:
    return BuildRequest(
        tag=tag,
        base_image=BASE_IMAGE,
        requirements=REQUIREMENTS,
        folders=folders,
        env={"MLFORM_MODEL_DIR": "/opt/mlform/model", "TRICKY": TRICKY},
        labels={"org.mlform.test": "containers", "org.mlform.tricky": TRICKY},
        command=("python", "code/show.py"),
        port=8080,
    )


@dataclass(frozen=True)
class Built:
    request: BuildRequest
    image: BuiltImage
    log: list[str]


@pytest.fixture(scope="session")
def scorer(
    client: docker.DockerClient, build_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Built]:
    """One image for every test that needs one: built once, removed at the end."""
    folders = write_folders(tmp_path_factory.mktemp("scorer"), model="model v1")
    request = scorer_request(f"mlform-test/scorer:{secrets.token_hex(4)}", folders)
    log: list[str] = []
    image = build(request, cache=build_cache, log=log.append, client=client)
    yield Built(request, image, log)
    client.images.remove(request.tag, force=True)  # untag even if a failed test left a user
