"""Images of registered models, built and run with the real Docker engine: the example's
image scores requests from inside its container; unchanged inputs build nothing; an
unreachable engine and a package pip cannot get for the image fail clearly, recording
no image."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import docker
import pytest

from mlform.containers import run as containers
from mlform.state.store import Store
from tests.cli.test_runs import changes
from tests.conftest import Ran
from tests.containers.conftest import client, registry  # noqa: F401  (fixtures)
from tests.ports import free_port

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]


def post(url: str, payload: object) -> object:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def wait_ready(url: str, container: docker.models.containers.Container) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"not ready: {container.logs().decode()[-2000:]}")


def image_rows(root: Path) -> list[tuple[str, ...]]:
    with Store.open(root / ".mlform" / "state.duckdb", "test", write=False) as store:
        return store.query("select name, version, model from images order by version")


@pytest.fixture
def started(client: docker.DockerClient) -> Iterator[list[str]]:  # noqa: F811
    names: list[str] = []
    yield names
    for name in names:
        containers.stop(client, name)


@pytest.mark.slow
def test_the_example_image_is_built_pushed_and_scores_requests(
    cli: Cli,
    example_with_image: Path,
    client: docker.DockerClient,  # noqa: F811
    registry: str,  # noqa: F811
    started: list[str],
) -> None:
    root = example_with_image
    workspace = root / "workspace.yml"
    workspace.write_text(workspace.read_text() + f"container_registry: {registry}\n")
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    reference = f"{registry}/iris-demo/iris-scorer:1"
    assert f"+ image/iris-scorer created: built {reference} (iris-classifier:1, " in applied.out
    assert image_rows(root) == [("iris-scorer", "1", "iris-classifier:1")]
    shown = cli("images", "show", "iris-scorer", cwd=root).out
    assert f"  reference:   {reference}\n" in shown
    assert f"  pushed:      {registry}/iris-demo/iris-scorer@sha256:" in shown
    with urllib.request.urlopen(f"http://{registry}/v2/iris-demo/iris-scorer/tags/list") as r:
        assert "1" in json.loads(r.read())["tags"]

    port = free_port()
    name = f"mlform-test-iris-{port}"
    started.append(name)
    container = containers.start(
        client,
        reference,
        name=name,
        env={"MLFORM_HOST": "127.0.0.1", "MLFORM_PORT": str(port)},
        labels={"mlform.test": "image"},
    )
    wait_ready(f"http://127.0.0.1:{port}/ready", container)
    flowers = {"data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}
    assert post(f"http://127.0.0.1:{port}/score", flowers) == ["setosa", "virginica"]
    inside = container.exec_run(
        [
            "python",
            "-c",
            "import json, urllib.request as u; print(u.urlopen(u.Request("
            f"'http://127.0.0.1:{port}/score', data=json.dumps({{'dataframe_records': "
            "[{'sepal_length': 5.9, 'sepal_width': 3.0, 'petal_length': 4.2, "
            "'petal_width': 1.5}]}).encode(), headers={'Content-Type': 'application/json'}"
            ")).read().decode())",
        ]
    )
    assert (inside.exit_code, inside.output.decode().strip()) == (0, '["versicolor"]')

    # The same inputs build nothing; a retraining that registers nothing rebuilds nothing.
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0
    rerun = cli("apply", "--yes", "--rerun", "train", cwd=root)
    assert rerun.code == 0, rerun.out + rerun.err
    assert changes(rerun.out)[:2] == [
        "> runconfig/train (--rerun)",
        "~ image/iris-scorer (runconfig/train runs first and may register a new model version)",
    ]
    assert "~ image/iris-scorer updated: iris-classifier:1 is what it was built with" in rerun.out
    assert image_rows(root) == [("iris-scorer", "1", "iris-classifier:1")]
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0

    # An engine without the image (a fresh CI runner) is a cache miss, not a change to plan.
    containers.stop(client, name)
    started.remove(name)
    client.images.remove(client.images.get(reference).id, force=True)
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0


def test_an_unreachable_engine_is_said_plainly_and_records_no_image(
    cli: Cli, example_with_image: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    ran = cli("apply", "--yes", cwd=example_with_image)
    assert ran.code == 1
    assert (
        "+ image/iris-scorer failed: Docker engine not reachable at "
        "unix:///nonexistent/docker.sock; start it, or use compute: local"
    ) in ran.out
    assert "Traceback" not in ran.out + ran.err
    assert "registered iris-classifier:1" in ran.out  # the rest of the apply went on
    assert image_rows(example_with_image) == []
    plan = cli("plan", cwd=example_with_image)
    assert changes(plan.out) == [
        "+ image/iris-scorer (last apply failed: Docker engine not reachable at "
        "unix:///nonexistent/docker.sock; start it, or use compute: local)"
    ]


@pytest.mark.slow
def test_a_package_pip_cannot_get_for_the_image_fails_the_build(
    cli: Cli,
    make_workspace: Make,
    client: docker.DockerClient,  # noqa: F811
) -> None:
    # docopt 0.6.2 is published only as a source archive: the host's virtual environment
    # builds it, but an image takes wheels only, so its build must fail, and say why.
    root = make_workspace(
        {
            "workspace.yml": "name: pipfail\n",
            "environments/env.yml": "name: env\npip:\n  - docopt==0.6.2\n",
            "models/m.yml": "name: m\npath: m.json\n",
            "models/m.json": "{}",
            "score/score.py": "def init():\n    pass\n\n\ndef run(data):\n    return data\n",
            "images/img.yml": (
                "name: img\nmodel: m@latest\nenvironment: env\n"
                "code_configuration: {code: ../score, scoring_script: score.py}\n"
                "base_image: mlform/base:bookworm\n"
            ),
        }
    )
    ran = cli("apply", "--yes", cwd=root)
    assert ran.code == 1
    text = ran.out + ran.err
    assert "image/img" in text and "docopt==0.6.2" in text
    assert "pip could not download" in text
    assert "Traceback" not in text
    assert image_rows(root) == []
    assert [r[0] for r in cli("state", "list", cwd=root).out.splitlines()[1:]]  # state readable


# A model registered from a folder, and a scoring script that finds its file as Azure ML's
# documentation shows: os.path.join(os.getenv("AZUREML_MODEL_DIR"), "<folder>/<file>")
# ("Deploy and score a machine learning model by using an online endpoint").
FOLDER_MODEL = {
    "workspace.yml": "name: layout\n",
    "environments/env.yml": "name: env\npip: []\n",
    "models/clf.yml": (
        "$schema: https://azuremlschemas.azureedge.net/latest/model.schema.json\n"
        "name: clf\nversion: 1\npath: ../model/\ntype: custom_model\n"
    ),
    "model/weights.json": '{"bias": 0.5}\n',
    "score/score.py": """
        import json
        import os


        def init():
            global model
            path = os.path.join(os.getenv("AZUREML_MODEL_DIR"), "model/weights.json")
            with open(path) as file:
                model = json.load(file)


        def run(raw_data):
            return {
                "model": model,
                "AZUREML_MODEL_DIR": os.environ["AZUREML_MODEL_DIR"],
                "MLFORM_MODEL_DIR": sorted(os.listdir(os.environ["MLFORM_MODEL_DIR"])),
            }
        """,
    "images/img.yml": (
        "name: img\nmodel: clf@latest\nenvironment: env\n"
        "code_configuration: {code: ../score, scoring_script: score.py}\n"
        "base_image: mlform/base:bookworm\n"
    ),
}


def test_an_image_lays_out_a_folder_model_as_azure_mounts_it(
    cli: Cli,
    make_workspace: Make,
    client: docker.DockerClient,  # noqa: F811
    started: list[str],
) -> None:
    root = make_workspace(FOLDER_MODEL)
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    port = free_port()
    name = f"mlform-test-layout-{port}"
    started.append(name)
    container = containers.start(
        client,
        "layout/img:1",
        name=name,
        env={"MLFORM_HOST": "127.0.0.1", "MLFORM_PORT": str(port)},
        labels={"mlform.test": "image"},
    )
    wait_ready(f"http://127.0.0.1:{port}/ready", container)
    assert post(f"http://127.0.0.1:{port}/score", {}) == {
        "model": {"bias": 0.5},
        "AZUREML_MODEL_DIR": "/opt/mlform/model",
        "MLFORM_MODEL_DIR": ["weights.json"],
    }
