from __future__ import annotations

import importlib.metadata
import io
import json
import re
import shutil
import tarfile
from pathlib import Path

import docker
import pytest

from mlform.containers.wheels import COMPLETE, PythonTarget, download, probe
from mlform.errors import BuildFailed
from tests.containers.conftest import BASE_IMAGE, BOOKWORM, REQUIREMENTS

IDNA = f"idna=={importlib.metadata.version('idna')}"


def test_probe_reads_the_base_images_python_once_per_image(
    client: docker.DockerClient, tmp_path: Path
) -> None:
    assert probe(client, BASE_IMAGE, cache=tmp_path) == BOOKWORM
    image_id = str(client.images.get(BASE_IMAGE).id).removeprefix("sha256:")
    remembered = tmp_path / "targets" / f"{image_id}.json"
    assert json.loads(remembered.read_text()) == {
        "python": "3.11",
        "implementation": "cp",
        "abi": "cp311",
        "glibc": [2, 36],
        "machine": BOOKWORM.machine,
    }
    # The next probe of the same image reads the file instead of starting a container.
    remembered.write_text(json.dumps({**BOOKWORM.to_json(), "machine": "remembered"}))
    assert probe(client, BASE_IMAGE, cache=tmp_path).machine == "remembered"


def test_probe_of_an_image_without_python_says_so(client: docker.DockerClient, unique: str) -> None:
    empty = io.BytesIO()
    with tarfile.open(fileobj=empty, mode="w") as tar:
        info = tarfile.TarInfo("etc/hostname")
        tar.addfile(info, io.BytesIO(b""))
    name = f"mlform-test/no-python:{unique}"
    client.api.import_image_from_data(empty.getvalue(), repository=name.split(":")[0], tag=unique)
    try:
        with pytest.raises(BuildFailed) as caught:
            probe(client, name)
        message = str(caught.value)
        assert message.startswith(f"base image {name} cannot run python3 (")
        assert 'exec: "python3": executable file not found in $PATH' in message
        assert message.endswith(
            "); the environment is installed with the image's own Python, so pick a base "
            "image that has python3 with the venv module (Debian: python3-venv)"
        )
        assert client.containers.list(all=True, filters={"ancestor": name}) == []
    finally:
        client.images.remove(name)


def test_probe_of_a_missing_image_says_to_get_it_first(client: docker.DockerClient) -> None:
    with pytest.raises(BuildFailed) as caught:
        probe(client, "mlform-test/absent:0")
    assert str(caught.value) == (
        "base image mlform-test/absent:0 is not on the Docker engine; pull or build it first"
    )


def test_platforms_are_every_manylinux_tag_the_glibc_runs_newest_first() -> None:
    arm = PythonTarget("3.12", "cp", "cp312", (2, 19), "aarch64")
    assert arm.platforms() == (
        "manylinux_2_19_aarch64",
        "manylinux_2_18_aarch64",
        "manylinux_2_17_aarch64",
        "manylinux2014_aarch64",
    )
    assert arm.pip_args() == [
        *("--python-version", "3.12", "--implementation", "cp", "--abi", "cp312"),
        *("--platform", "manylinux_2_19_aarch64", "--platform", "manylinux_2_18_aarch64"),
        *("--platform", "manylinux_2_17_aarch64", "--platform", "manylinux2014_aarch64"),
    ]
    x86 = PythonTarget("3.11", "cp", "cp311", (2, 36), "x86_64").platforms()
    assert x86[:2] == ("manylinux_2_36_x86_64", "manylinux_2_35_x86_64")
    assert x86[19:22] == ("manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_16_x86_64")
    assert x86[25:27] == ("manylinux_2_12_x86_64", "manylinux2010_x86_64")
    assert x86[-2:] == ("manylinux_2_5_x86_64", "manylinux1_x86_64")
    assert len(x86) == 35


def test_download_fetches_wheels_for_the_image_and_reuses_them(build_cache: Path) -> None:
    log: list[str] = []
    folder = download(REQUIREMENTS, BOOKWORM, build_cache, log.append)
    names = sorted(p.name for p in folder.glob("*.whl"))
    assert {name.split("-")[0].lower() for name in names} == {
        "anyio",
        "click",
        "h11",
        "idna",
        "markupsafe",
        "starlette",
        "typing_extensions",
        "uvicorn",
    }
    compiled = next(name for name in names if name.startswith("markupsafe-"))
    assert re.search(rf"-cp311-cp311-.*manylinux_2_\d+_{BOOKWORM.machine}\.", compiled)
    assert (folder / "requirements.txt").read_text() == "".join(f"{r}\n" for r in REQUIREMENTS)

    again: list[str] = []
    assert download(REQUIREMENTS, BOOKWORM, build_cache, again.append) == folder
    assert again == [f"wheels for {BOOKWORM.describe()}: cached"]


def test_a_download_cut_short_is_done_again(tmp_path: Path) -> None:
    folder = download([IDNA], BOOKWORM, tmp_path, lambda line: None)
    (folder / COMPLETE).unlink()  # as a killed download leaves it: no marker
    (folder / "partial.whl.tmp").write_text("half")
    log: list[str] = []
    assert download([IDNA], BOOKWORM, tmp_path, log.append) == folder
    assert log[0] == f"downloading wheels for {BOOKWORM.describe()}"
    assert sorted(p.name for p in folder.iterdir()) == [
        COMPLETE,
        f"{IDNA.replace('==', '-')}-py3-none-any.whl",
        "requirements.txt",
    ]


def test_a_requirement_pip_cannot_find_quotes_pip_and_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(BuildFailed) as caught:
        download([IDNA, "nonexistent-mlform-pkg==9.9"], BOOKWORM, tmp_path, lambda line: None)
    message = str(caught.value)
    head, *quoted, advice = message.splitlines()
    assert head == (
        "pip could not download the environment's packages for the image "
        f"({BOOKWORM.describe()}), exit 1:"
    )
    assert quoted[-1] == "  | ERROR: No matching distribution found for nonexistent-mlform-pkg==9.9"
    assert all(line.startswith("  | ") for line in quoted)
    assert advice == (
        "Fix the requirement pip names above. An image installs wheels only: a package that "
        "publishes no wheel for this Python and platform (source only) cannot be used in an "
        "image yet."
    )
    assert [p.name for p in (tmp_path / "wheels").iterdir() if not p.name.endswith(".lock")] == []


def test_nothing_to_download_is_an_empty_requirements_file(tmp_path: Path) -> None:
    folder = download([], BOOKWORM, tmp_path, lambda line: None)
    assert sorted(p.name for p in folder.iterdir()) == [COMPLETE, "requirements.txt"]
    assert (folder / "requirements.txt").read_text() == ""
    shutil.rmtree(folder)
