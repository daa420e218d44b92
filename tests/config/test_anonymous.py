"""Environments and models defined in place, as Azure ML files write them: anonymous
resources named by their definition, planned and applied like declared ones."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

from mlform.loader import load
from tests.conftest import Ran

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]

ANONYMOUS = "anonymous-d3d9531e22e5"  # what the job below defines, named from its text
SCORE = "def init():\n    pass\n\n\ndef run(data):\n    return data\n"
CONDA = """
    name: train
    channels: [conda-forge]
    dependencies:
      - python=3.11
    """
JOB = """
    $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
    command: python train.py
    code: ../src
    environment:
      image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
      conda_file: ../src/conda.yml
    compute: azureml:local
    experiment_name: inline
    """


def test_an_inline_environment_is_a_resource_its_job_runs_in(
    cli: Cli, make_workspace: Make
) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: inline\n",
            "src/train.py": "import sys\nprint(sys.prefix)\n",
            "src/conda.yml": CONDA,
            "runconfigs/train.yml": JOB,
        }
    )
    planned = cli("plan", cwd=root)
    assert planned.out.splitlines()[2:5] == [
        "  + datastore/workspaceblobstore        (new: local folder .mlform/datastore)",
        "  + environment/anonymous-d3d9531e22e5  (new: version 1 (0 packages, cpython-3.11))",
        "  > runconfig/train                     (no run yet)",
    ]
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    # The run's interpreter is the environment's, not mlform's own.
    shown = json.loads(cli("state", "show", f"environment/{ANONYMOUS}", cwd=root).out)
    assert f"    runconfig/train: {shown['outputs']['path']}" in applied.out.splitlines()

    # A package added to the conda file: a new version of the environment, and a run.
    (root / "src/conda.yml").write_text(
        "name: train\ndependencies:\n  - python=3.11\n  - pip:\n    - pyyaml\n"
    )
    replanned = cli("plan", cwd=root)
    assert replanned.out.splitlines()[2:4] == [
        "  ~ environment/anonymous-d3d9531e22e5  (content changed: conda.yml modified; "
        "version 1 → 2)",
        "  > runconfig/train                     (code: src/conda.yml modified; "
        "environment: anonymous-d3d9531e22e5 1 → 2)",
    ]


def test_one_definition_in_several_files_is_one_environment(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: shared\n",
            "src/train.py": "print('hi')\n",
            "src/conda.yml": CONDA,
            "runconfigs/train.yml": JOB,
            "runconfigs/again.yml": JOB,
            # written from another folder, the same file: the same environment
            "pipelines/train.yml": """
                $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
                type: pipeline
                jobs:
                  train:
                    type: command
                    command: python train.py
                    code: ../src
                    environment:
                      image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
                      conda_file: ../src/conda.yml
                  other:
                    type: command
                    command: python train.py
                    code: ../src
                    environment:
                      image: python:3.11-slim
                """,
        }
    )
    planned = cli("plan", cwd=root)
    assert [line.split()[1] for line in planned.out.splitlines() if "  + " in line] == [
        "datastore/workspaceblobstore",
        "environment/anonymous-d3d9531e22e5",
        "environment/anonymous-e1a995c7fec9",
    ]


def test_inline_model_and_environment_of_a_deployment(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: served\n",
            "model-1/model/model.pkl": "x",
            "model-1/onlinescoring/score.py": SCORE,
            "model-1/environment/conda.yaml": CONDA,
            "endpoints/endpoint.yml": """
                $schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
                name: my-endpoint
                auth_mode: key
                """,
            "endpoints/blue.yml": """
                $schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
                name: blue
                endpoint_name: my-endpoint
                model:
                  path: ../model-1/model/
                code_configuration:
                  code: ../model-1/onlinescoring/
                  scoring_script: score.py
                environment:
                  conda_file: ../model-1/environment/conda.yaml
                  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
                instance_type: Standard_DS3_v2
                instance_count: 1
                """,
        }
    )
    planned = cli("plan", cwd=root)
    assert planned.out.splitlines()[3:6] == [
        "  + environment/anonymous-b356a7667131  (new: version 1 (0 packages, cpython-3.11))",
        "  + model/anonymous-663328df9d2e        (new: version 1 (1 file, 1 B))",
        "  + endpoint/my-endpoint                (new: deployments: blue (local))",
    ]


def test_mistakes_in_an_inline_definition_are_where_they_are_written(
    cli: Cli, make_workspace: Make
) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: wrong\n",
            "src/train.py": "print('hi')\n",
            "runconfigs/train.yml": """
                $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
                command: python train.py
                code: ../src
                environment:
                  image: python:3.11-slim
                  conda_file: conda.yml
                """,
            "runconfigs/typo.yml": """
                $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
                command: python train.py
                code: ../src
                environment:
                  imgae: python:3.11-slim
                """,
            "runconfigs/empty.yml": "command: echo hi\nenvironment: {}\n",
            "runconfigs/number.yml": "command: echo hi\nenvironment: 3\n",
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.err.splitlines() == [
        "runconfigs/empty.yml:2:14: error: environment must not be empty",
        "runconfigs/number.yml:2:14: error: environment must be an environment reference "
        "such as sklearn-env@latest, or a mapping with image:, build: or conda_file:, not a "
        "number (3); put it in quotes to keep it as text: '3'",
        "runconfigs/train.yml:6:15: error: conda file 'conda.yml' does not exist (looked for "
        "runconfigs/conda.yml); create it, or correct the path (it is relative to this file)",
        "runconfigs/typo.yml:5:3: error: unknown key 'imgae' in environment "
        "(did you mean 'image'?)",
        "validation failed: 4 errors",
    ]


def test_a_conda_file_beside_the_file_that_names_it_is_not_a_declaration(
    cli: Cli, make_workspace: Make
) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: beside\n",
            "runconfigs/conda.yml": CONDA,
            "runconfigs/train.yml": """
                $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
                command: echo hi
                environment:
                  image: python:3.11-slim
                  conda_file: conda.yml
                """,
            "pipelines/env.yaml": CONDA,
            "pipelines/hello.yml": """
                $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
                type: pipeline
                settings:
                  default_environment:
                    conda_file: env.yaml
                jobs:
                  hello:
                    type: command
                    command: echo hello
                """,
        }
    )
    ran = cli("validate", cwd=root)
    assert (ran.code, ran.err) == (0, "")
    assert ran.out == f"Valid: 5 resources in {root}\n"
    assert load(root).deps["pipeline/hello"] == ("environment/anonymous-049a48942f1a",)
