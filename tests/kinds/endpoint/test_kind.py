"""A deployment on compute: docker — the deployment's image built with the real engine,
run as a container on the host network behind the endpoint's router; and a local
deployment that hangs, healed by apply as Azure ML's liveness probe would."""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import docker
import pytest

from mlform.kinds.endpoint import local
from mlform.kinds.endpoint.local import Process
from tests.cli.test_endpoints import FLOWERS, port_of, primary_key, request
from tests.cli.test_runs import changes
from tests.conftest import Ran, stop_endpoints
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
def test_a_docker_token_deployment_reads_its_token_keys_from_a_mounted_folder(
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
    keys = root / ".mlform" / "secrets" / "tokens" / "iris"
    try:
        assert applied.code == 0, applied.out + applied.err
        token = cli("endpoints", "token", "iris", cwd=root).out.strip()
        body = json.dumps(FLOWERS).encode()
        status, _, answer = request(port_of(root), body, {"Authorization": f"Bearer {token}"})
        assert (status, answer) == (200, b'["setosa","virginica"]')
        (container,) = client.containers.list(filters={"label": "mlform.endpoint=iris"})
        (key,) = [entry["key"] for entry in json.loads((keys / "ring.json").read_text())["keys"]]
        assert key not in json.dumps(container.attrs)  # `docker inspect` shows no key
        assert (
            "MLFORM_TOKEN_KEY_FILE=/run/secrets/mlform-token-keys/ring.json"
            in container.attrs["Config"]["Env"]
        )
        mounts = {m["Destination"]: (m["Source"], m["RW"]) for m in container.attrs["Mounts"]}
        assert mounts["/run/secrets/mlform-token-keys"] == (str(keys), False)

        # A rotation reaches the container without a restart: old and new tokens pass,
        # at the router and at the deployment itself.
        assert cli("endpoints", "keys", "iris", "--rotate-token-key", cwd=root).code == 0
        new = cli("endpoints", "token", "iris", cwd=root).out.strip()
        deployment = json.loads(cli("endpoints", "show", "iris", "--json", cwd=root).out)
        direct = int(deployment["deployments"][0]["url"].rsplit(":", 1)[1])
        for port in (port_of(root), direct):
            for held in (token, new):
                status, _, _ = request(port, body, {"Authorization": f"Bearer {held}"})
                assert status == 200
        assert client.containers.list(filters={"label": "mlform.endpoint=iris"}) == [container]
    finally:
        spec.unlink()
        gone = cli("apply", "--yes", cwd=root)
    assert "- endpoint/iris destroyed: stopped and deleted (blue)" in gone.out
    assert not keys.exists()


# A deployment as small as Azure ML allows: a registered model file, a scoring script
# that reads it from AZUREML_MODEL_DIR, an environment of no packages (the scoring
# server's own are added beside it), and Azure's liveness probe settings, short.
TINY = {
    "workspace.yml": "name: tiny\n",
    "environments/plain.yml": "name: plain\npip: []\n",
    "models/triple.yml": """
        $schema: https://azuremlschemas.azureedge.net/latest/model.schema.json
        name: triple
        path: ../model/factor.txt
        type: custom_model
        """,
    "model/factor.txt": "3\n",
    "score/score.py": """
        import json
        import os
        from pathlib import Path

        factor = None


        def init():
            global factor
            factor = int((Path(os.environ["AZUREML_MODEL_DIR"]) / "factor.txt").read_text())


        def run(raw_data):
            return [factor * x for x in json.loads(raw_data)["data"]]
        """,
    "endpoints/tiny.yml": """
        $schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
        name: tiny
        auth_mode: key
        deployments:
          - name: blue
            model: azureml:triple:1
            code_configuration:
              code: ../score
              scoring_script: score.py
            environment: azureml:plain@latest
            instance_count: 1
            liveness_probe:
              period: 0.2
              timeout: 0.5
              failure_threshold: 3
        """,
    "request.json": '{"data": [1, 2]}\n',
}


@pytest.fixture
def tiny(make_workspace: Callable[[Mapping[str, str]], Path]) -> Iterator[Path]:
    root = make_workspace(TINY)
    yield root
    stop_endpoints(root)
    for noted in (root / ".mlform" / "endpoints").glob("*/*/*/instance.json"):
        local.kill(Process.parse(json.loads(noted.read_text())["handle"]))  # unknown ones too


def _pid(cli: Cli, root: Path, endpoint: str) -> int:
    shown = cli("endpoints", "show", endpoint, cwd=root).out
    found = re.search(r"compute:   local \(pid (\d+)\)", shown)
    assert found, shown
    return int(found[1])


def test_apply_kills_and_restarts_a_hung_deployment(cli: Cli, tiny: Path) -> None:
    root = tiny
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    hung = _pid(cli, root, "tiny")
    os.killpg(hung, signal.SIGSTOP)  # it runs, holds its port, and answers nothing

    assert changes(cli("plan", cwd=root).out) == [
        "~ endpoint/tiny (deployment blue fails its liveness probe)"
    ]
    healed = cli("apply", "--yes", cwd=root)
    assert healed.code == 0, healed.out + healed.err
    assert (
        "    endpoint/tiny: deployment blue: its liveness probe failed 3 times in a row: "
        "GET /health did not answer within 0.5s, every 0.2s; killing it (local "
    ) in healed.out
    assert (
        "~ endpoint/tiny updated: restarted blue, which was hung: its liveness probe failed 3 "
        "times in a row: GET /health did not answer within 0.5s, every 0.2s; traffic blue 100%"
    ) in healed.out
    assert "Apply complete: 0 added, 1 changed, 0 destroyed, 0 ran." in healed.out
    assert not Process.parse(str(hung)).running() or _state(hung) == "Z"
    assert _pid(cli, root, "tiny") != hung

    invoked = cli("endpoints", "invoke", "tiny", "--data", str(root / "request.json"), cwd=root)
    assert (invoked.code, invoked.out) == (0, "[3,6]\n")
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0


def _state(pid: int) -> str:
    """The process state letter of /proc/<pid>/stat (Z: ended, not yet reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_an_instance_the_state_does_not_know_is_stopped_by_apply(cli: Cli, tiny: Path) -> None:
    root = tiny
    assert cli("apply", "--yes", cwd=root).code == 0
    state = root / ".mlform" / "state.duckdb"
    backup = root / "state-backup.duckdb"
    backup.write_bytes(state.read_bytes())
    score = root / "score" / "score.py"
    score.write_text(score.read_text() + "\n# a new revision\n")
    assert cli("apply", "--yes", cwd=root).code == 0
    newer = _pid(cli, root, "tiny")
    record = next((root / ".mlform" / "endpoints" / "tiny" / "blue").glob("*/instance.json"))
    handle = json.loads(record.read_text())["handle"]
    # The state restored from the backup: it knows the instance that served before.
    state.write_bytes(backup.read_bytes())

    assert changes(cli("plan", cwd=root).out) == [
        "~ endpoint/tiny (deployment blue not running; deployment blue has an instance the "
        f"state does not know running (local {handle}); deployment blue code changed)"
    ]
    healed = cli("apply", "--yes", cwd=root)
    assert healed.code == 0, healed.out + healed.err
    assert (
        "    endpoint/tiny: deployment blue: stopped an instance the state does not know "
        f"(local {handle}, port "
    ) in healed.out
    assert _state(newer) in ("Z", "gone")
    assert not record.exists()
    assert _pid(cli, root, "tiny") != newer
    invoked = cli("endpoints", "invoke", "tiny", "--data", str(root / "request.json"), cwd=root)
    assert (invoked.code, invoked.out) == (0, "[3,6]\n")
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0
