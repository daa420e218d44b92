"""References as Azure ML files write them: registry URIs, `azureml:` names and named
compute, each resolved to what this workspace declares, or a clear error where written."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from mlform.loader import load
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


def test_a_deployment_names_its_model_and_environment_by_registry_uri(
    cli: Cli, make_workspace: Make
) -> None:
    deployment = """
        $schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
        name: {name}
        endpoint_name: my-endpoint
        model: {model}
        code_configuration:
          code: ../score
          scoring_script: score.py
        environment: azureml://registries/azureml/environments/sklearn-1.5/labels/latest
        instance_count: 1
        """
    root = make_workspace(
        {
            "workspace.yml": "name: served\n",
            "score/score.py": "def init():\n    pass\n\n\ndef run(data):\n    return data\n",
            "models/iris.pkl": "x",
            "models/iris.yml": "name: iris-model\npath: iris.pkl\n",
            "environments/sklearn.yml": ENVIRONMENT,
            "endpoints/endpoint.yml": """
                $schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
                name: my-endpoint
                auth_mode: key
                """,
            "endpoints/blue.yml": deployment.format(
                name="blue", model="azureml://registries/shared/models/iris-model/versions/1"
            ),
            "endpoints/green.yml": deployment.format(
                name="green", model="azureml://registries/shared/environments/iris-model/versions/1"
            ),
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.err.splitlines() == [
        "endpoints/green.yml:4:8: error: 'azureml://registries/shared/environments/iris-model/"
        "versions/1' names the environment 'iris-model', not a model; write "
        "azureml://registries/<registry>/models/NAME/versions/N",
        "validation failed: 1 error",
    ]
    (root / "endpoints/green.yml").unlink()
    assert cli("validate", cwd=root).code == 0
    assert load(root).deps["endpoint/my-endpoint"] == (
        "environment/sklearn-1.5",
        "model/iris-model",
    )
