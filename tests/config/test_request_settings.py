"""A deployment's request_settings, as Azure ML's deployment YAML writes them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from mlform.kinds.endpoint.spec import EndpointSpec
from mlform.loader import load

Make = Callable[[Mapping[str, str]], Path]

ENDPOINT = """
    $schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
    name: my-endpoint
    auth_mode: key
    """
DEPLOYMENT = """
    $schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
    name: {name}
    endpoint_name: my-endpoint
    model: azureml:iris-model@latest
    code_configuration:
      code: ../score
      scoring_script: score.py
    environment: azureml:sklearn@latest
    instance_type: Standard_DS3_v2
    instance_count: 1
    {settings}
    """
ENVIRONMENT = """
    name: sklearn
    version: "1"
    image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
    """


def test_request_settings_give_the_timeout_the_concurrency_and_the_queue_wait(
    make_workspace: Make,
) -> None:
    settings = (
        "request_settings:\n"
        "      request_timeout_ms: 3000\n"
        "      max_concurrent_requests_per_instance: 2\n"
        "      max_queue_wait_ms: 750\n"
    )
    root = make_workspace(
        {
            "workspace.yml": "name: served\n",
            "score/score.py": "def run(raw_data):\n    return raw_data\n",
            "models/iris.pkl": "x",
            "models/iris.yml": "name: iris-model\npath: iris.pkl\n",
            "environments/sklearn.yml": ENVIRONMENT,
            "endpoints/endpoint.yml": ENDPOINT,
            "endpoints/blue.yml": DEPLOYMENT.format(name="blue", settings=settings),
            "endpoints/green.yml": DEPLOYMENT.format(name="green", settings=""),
        }
    )
    endpoint = load(root).specs["endpoint/my-endpoint"]
    assert isinstance(endpoint, EndpointSpec)
    blue, green = endpoint.deployments
    assert (blue.request_timeout, blue.max_concurrent, blue.max_queue_wait) == (3.0, 2, 0.75)
    assert (green.request_timeout, green.max_concurrent, green.max_queue_wait) == (None,) * 3
