"""The example's training on every kind of target: this machine's process, the example's
docker compute, another machine over SSH and a Ray cluster. Each run records the same
metrics and parameters as the local one, and `runs show` names where it ran."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from tests.conftest import Ran
from tests.containers.conftest import BASE_IMAGE, client  # noqa: F401  (fixture)
from tests.kinds.compute.conftest import RayCluster, Sshd

Cli = Callable[..., Ran]


@pytest.mark.slow
def test_the_example_trains_alike_on_every_target(
    cli: Cli,
    example: Path,
    client: docker.DockerClient,  # noqa: F811
    sshd: Sshd,
    ray_cluster: RayCluster,
) -> None:
    (example / "compute" / "vm.yml").write_text(
        f"name: vm\ntype: virtualmachine\nhost: 127.0.0.1\nssh_settings:\n"
        f"  admin_username: {sshd.user}\n  ssh_port: {sshd.port}\n"
        f"  ssh_private_key_file: {sshd.key}\n"
    )
    (example / "compute" / "cpu-cluster.yml").write_text(
        f"name: cpu-cluster\ntype: ray\naddress: {ray_cluster.address}\n"
    )
    # the engine here reaches no registry: the environment's base is the engine's own
    environment = example / "environments" / "sklearn.yml"
    text = environment.read_text()
    assert "image: python:3.11-slim" in text
    environment.write_text(text.replace("python:3.11-slim", BASE_IMAGE))
    train = example / "runconfigs" / "train.yml"
    declared = train.read_text()
    assert "compute: local" in declared
    seen = {}
    for compute, target in (
        ("local", "local"),
        ("azureml:container", "docker"),
        ("azureml:vm", "virtualmachine"),
        ("azureml:cpu-cluster", "ray"),
    ):
        train.write_text(declared.replace("compute: local", f"compute: {compute}"))
        applied = cli("apply", "--yes", cwd=example)
        assert applied.code == 0, applied.out + applied.err
        listed = json.loads(cli("runs", "list", "--json", cwd=example).out)
        latest = listed[0]
        shown = json.loads(cli("runs", "show", str(latest["id"]), "--json", cwd=example).out)
        assert shown["status"] == "completed" and shown["target"] == target, shown
        history = json.loads(cli("runs", "metrics", str(latest["id"]), "--json", cwd=example).out)
        curve = [p["value"] for p in history["metrics"] if p["key"] == "learning_curve_accuracy"]
        seen[target] = (shown["metrics"], shown["params"], curve)
        model = Path(str(shown["run_dir"])) / "outputs" / "model"
        assert any(model.iterdir()), f"no model came back from {target}"
    local = seen.pop("local")
    assert local[0]["accuracy"] > 0.9 and len(local[2]) > 1
    for target, (metrics, params, curve) in seen.items():
        assert params == local[1], target
        assert metrics == pytest.approx(local[0], rel=1e-9), target
        assert curve == pytest.approx(local[2], rel=1e-9), target
