"""References as Azure ML files write them: registry URIs, `azureml:` names and named
compute, each resolved to what this workspace declares, or a clear error where written."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from mlform.config.workspace import load
from tests.conftest import Ran

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]


def job(environment: str, compute: str = "azureml:cpu-cluster") -> str:
    return f"""
        $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
        command: python train.py
        code: ../src
        environment: {environment}
        compute: {compute}
        """


ENVIRONMENT = """
    $schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json
    name: sklearn-1.5
    version: "1"
    image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
    """
COMPUTE = """
    $schema: https://azuremlschemas.azureedge.net/latest/amlCompute.schema.json
    name: cpu-cluster
    type: local
    size: STANDARD_DS3_v2
    min_instances: 0
    max_instances: 2
    """


def test_registry_references_resolve_to_the_environment_declared_here(
    cli: Cli, make_workspace: Make
) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: refs\n",
            "src/train.py": "print('hi')\n",
            "environments/sklearn.yml": ENVIRONMENT,
            "compute/cpu-cluster.yml": COMPUTE,
            "runconfigs/latest.yml": job(
                "azureml://registries/azureml/environments/sklearn-1.5/labels/latest"
            ),
            "runconfigs/pinned.yml": job(
                "azureml://registries/azureml/environments/sklearn-1.5/versions/1"
            ),
            "runconfigs/named.yml": job("azureml:sklearn-1.5:1"),
            "runconfigs/label.yml": job("azureml:sklearn-1.5@latest"),
        }
    )
    ran = cli("validate", cwd=root)
    assert (ran.code, ran.err) == (0, "")
    deps = load(root).deps
    for name in ("latest", "pinned", "named", "label"):
        assert deps[f"runconfig/{name}"] == ("environment/sklearn-1.5", "compute/cpu-cluster")


def test_references_to_nothing_declared_here_fail_where_written(
    cli: Cli, make_workspace: Make
) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: refs\n",
            "src/train.py": "print('hi')\n",
            "environments/sklearn.yml": ENVIRONMENT,
            "compute/cpu-cluster.yml": COMPUTE,
            "runconfigs/registry.yml": job(
                "azureml://registries/azureml/environments/sklearn-1.1/versions/3"
            ),
            "runconfigs/label.yml": job(
                "azureml://registries/azureml/environments/sklearn-1.5/labels/stable"
            ),
            "runconfigs/model.yml": job("azureml://registries/azureml/models/iris/versions/1"),
            "runconfigs/short.yml": job("azureml:sklearn-15@latest"),
            "runconfigs/compute.yml": job("azureml:sklearn-1.5:1", "azureml:cpu-clster"),
            "runconfigs/local.yml": job("azureml:sklearn-1.5:1", "local"),
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.err.splitlines() == [
        "runconfigs/compute.yml:5:10: error: unknown compute 'cpu-clster' (did you mean "
        "'cpu-cluster'?); declare it in compute/cpu-clster.yml with type: local, "
        "or use compute: local",
        "runconfigs/label.yml:4:14: error: 'azureml://registries/azureml/environments/"
        "sklearn-1.5/labels/stable' is not an environment reference; write NAME, "
        "NAME:VERSION or NAME@latest (azureml: prefix allowed), or "
        "azureml://registries/<registry>/environments/NAME/versions/N",
        "runconfigs/model.yml:4:14: error: 'azureml://registries/azureml/models/iris/versions/1' "
        "names the model 'iris', not an environment; write "
        "azureml://registries/<registry>/environments/NAME/versions/N",
        "runconfigs/registry.yml:4:14: error: environment 'sklearn-1.1' (from Azure ML "
        "registry 'azureml') is not declared in this workspace, and mlform does not fetch "
        "from registries; declare it in environments/sklearn-1.1.yml "
        "(name: sklearn-1.1, version: 3)",
        "runconfigs/short.yml:4:14: error: unknown environment 'sklearn-15' "
        "(did you mean 'sklearn-1.5'?); declare it in environments/",
        "validation failed: 5 errors",
    ]
