"""Command components in the workspace: recognised wherever Azure ML users keep them,
their inputs checked where the step binds them, and Azure's optional arguments."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from mlform.kinds.component.spec import optional_arguments
from mlform.kinds.pipeline.spec import PipelineSpec
from mlform.loader import load
from tests.cli.test_runs import changes
from tests.conftest import Ran

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]

TRAIN = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
name: train_model
version: 2
type: command
inputs:
  training_data:
    type: uri_folder
  learning_rate:
    type: number
    min: 0
    max: 1
  epochs:
    type: integer
    default: 10
  loss:
    type: string
    default: squared
    enum: [squared, absolute]
  verbose:
    type: boolean
    optional: true
outputs:
  model_output:
    type: uri_folder
code: ./src
command: >-
  python train.py --data ${{inputs.training_data}} --lr ${{inputs.learning_rate}}
  --epochs ${{inputs.epochs}} --loss ${{inputs.loss}} $[[--verbose ${{inputs.verbose}}]]
  --out ${{outputs.model_output}}
"""


def test_step_inputs_are_checked_against_the_component(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: comps\n",
            "pipelines/components/train.yml": TRAIN,
            "pipelines/components/src/train.py": "",
            "pipelines/bad.yml": """\
                type: pipeline
                inputs:
                  rate: 3
                outputs:
                  model: {}
                jobs:
                  train:
                    component: ./components/train.yml
                    inputs:
                      learning_rate: 1.5
                      epochs: lots
                      loss: cubic
                      momentum: 0.9
                    outputs:
                      model_output: ${{parent.outputs.modle}}
                  again:
                    component: azureml:train_model:2
                    inputs:
                      training_data: ${{parent.jobs.train.outputs.model_output}}
                      learning_rate: ${{parent.inputs.rate}}
                      verbose: ${{parent.jobs.train.outputs.model_output}}
                    outputs:
                      model_output: ${{parent.outputs.model}}
                  score:
                    component: azureml:train_modle@latest
                  old:
                    component: azureml:train_model:1
                  gone:
                    component: ./components/missing.yml
                  data:
                    component: file:./components/train.yml
                    inputs:
                      training_data: 0.5
                      learning_rate: {type: uri_file, path: ./x.csv}
                    outputs:
                      model_output: ${{parent.outputs.model}}
            """,
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.code == 1
    assert ran.err.splitlines() == [
        "pipelines/bad.yml:9:5: error: step train does not give component train_model:2 its "
        "required input training_data; bind it under the step's inputs:",
        "pipelines/bad.yml:10:22: error: input learning_rate: 1.5 is above the maximum 1",
        "pipelines/bad.yml:11:15: error: input epochs: 'lots' is not an integer",
        "pipelines/bad.yml:12:13: error: input loss: 'cubic' is not one of squared, absolute",
        "pipelines/bad.yml:13:7: error: component train_model:2 has no input 'momentum' "
        "(inputs: epochs, learning_rate, loss, training_data, verbose); remove it or declare "
        "it in the component",
        "pipelines/bad.yml:15:21: error: ${{parent.outputs.modle}} names no output of the "
        "pipeline (outputs: model); declare it under the pipeline's outputs:",
        "pipelines/bad.yml:20:22: error: input learning_rate: 3 is above the maximum 1",
        "pipelines/bad.yml:21:16: error: input verbose: a boolean input cannot take a step's "
        "output (${{parent.jobs.train.outputs.model_output}})",
        "pipelines/bad.yml:25:16: error: unknown component 'azureml:train_modle@latest' "
        "(did you mean 'train_model'?); declare it in components/ or point at its file "
        "(./train_modle.yml)",
        "pipelines/bad.yml:27:16: error: unknown component 'azureml:train_model:1' "
        "(versions: 2); declare it in components/ or point at its file (./train_model.yml)",
        "pipelines/bad.yml:29:16: error: component file './components/missing.yml' does not "
        "exist; the path is relative to pipelines/bad.yml",
        "pipelines/bad.yml:33:22: error: input training_data: expects data (uri_folder): bind "
        "it to data or an output, or give a path:",
        "pipelines/bad.yml:34:22: error: input learning_rate: expects a number value, not "
        "data (a path:)",
        "pipelines/bad.yml:36:21: error: pipeline output 'model' is already bound to step "
        "again's output model_output; bind each pipeline output once",
        "validation failed: 14 errors",
    ]


def test_a_component_file_is_checked_once_where_it_is_written(
    cli: Cli, make_workspace: Make
) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: comps\n",
            "components/train.yml": """\
                $schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
                name: train_model
                type: command
                inputs:
                  lr: {type: number, default: 5, max: 1}
                  seed: {type: integer, optional: true}
                  kind: {type: text}
                outputs:
                  model: {type: uri_folder}
                code: ./nowhere
                environment: azureml:sklearn-env@latest
                command: python t.py ${{inputs.lr}} ${{inputs.seed}} ${{outputs.modle}}
            """,
            "components/same.yml": """\
                name: train_model
                type: command
                command: python t.py
            """,
            "pipelines/p.yml": """\
                jobs:
                  a:
                    component: azureml:train_model@latest
                  b:
                    component: ../components/train.yml
            """,
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.code == 1
    assert ran.err.splitlines() == [
        "components/train.yml:2:7: error: component train_model is also declared at "
        "components/same.yml:1; give one of them another version",
        "components/train.yml:5:31: error: default 5 is above the maximum 1",
        "components/train.yml:7:16: error: inputs.kind.type must be one of uri_folder, "
        "uri_file, mltable, mlflow_model, custom_model, number, integer, string, boolean, "
        "not 'text'",
        "components/train.yml:10:7: error: code folder './nowhere' does not exist",
        "components/train.yml:11:14: error: unknown environment 'sklearn-env'; declare it in "
        "environments/",
        "components/train.yml:12:10: error: optional input 'seed' is used outside $[[...]]; "
        "wrap the part of the command that uses it, e.g. $[[--seed ${{inputs.seed}}]]",
        "components/train.yml:12:10: error: command uses ${{outputs.modle}}, but component "
        "train_model declares no output 'modle' (outputs: model); declare it under outputs:",
        "validation failed: 7 errors",
    ]


def test_component_files_beside_jobs_are_not_jobs(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: comps\n",
            "src/run.py": "",
            # in runconfigs/ without $schema: its inputs are declared, not given
            "runconfigs/helper.yml": """\
                name: helper
                type: command
                inputs:
                  n: {type: integer, default: 1}
                code: ../src
                command: python run.py ${{inputs.n}}
            """,
            # in pipelines/: type command, so not a pipeline
            "pipelines/step.yml": """\
                name: step
                type: command
                code: ../src
                command: python run.py
            """,
            "pipelines/p.yml": """\
                jobs:
                  one:
                    component: ./step.yml
                  two:
                    component: ../runconfigs/helper.yml
                    inputs: {n: 3}
            """,
            "runconfigs/job.yml": "code: ../src\ncommand: python run.py\n",
            # its $schema says so; no pipeline runs it, and it plans nothing
            "runconfigs/unused.yml": """\
                $schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
                name: unused
                command: python run.py
            """,
        }
    )
    assert cli("validate", cwd=root).code == 0
    plan = cli("plan", cwd=root)
    assert plan.code == 0, plan.err
    assert changes(plan.out)[1:] == ["> pipeline/p (no run yet)", "> runconfig/job (no run yet)"]


def test_optional_arguments_stay_only_when_their_inputs_have_values() -> None:
    command = "python t.py $[[--seed ${{inputs.seed}}]] $[[--a ${{inputs.a}} ${{inputs.b}}]] x"
    assert optional_arguments(command, {"seed", "a"}) == "python t.py --seed ${{inputs.seed}}  x"
    assert optional_arguments(command, {"a", "b"}) == (
        "python t.py  --a ${{inputs.a}} ${{inputs.b}} x"
    )
    assert optional_arguments(command, set()) == "python t.py   x"


def test_registry_uris_name_the_component_declared_here(cli: Cli, make_workspace: Make) -> None:
    registry = "azureml://registries/azureml"
    root = make_workspace(
        {
            "workspace.yml": "name: comps\n",
            "components/train.yml": """\
                $schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
                name: train_model
                version: 2
                type: command
                command: python -c pass
            """,
            "pipelines/p.yml": f"""\
                type: pipeline
                jobs:
                  pinned:
                    component: {registry}/components/train_model/versions/2
                  latest:
                    component: {registry}/components/train_model/labels/latest
                  older:
                    component: {registry}/components/train_model/versions/1
                  elsewhere:
                    component: {registry}/components/prep_data/labels/latest
                  environment:
                    component: {registry}/environments/train_model/versions/2
                  label:
                    component: {registry}/components/train_model/labels/stable
            """,
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.code == 1
    assert ran.err.splitlines() == [
        "pipelines/p.yml:8:16: error: component 'train_model' version 1 (from Azure ML "
        "registry 'azureml') is not declared in this workspace, and mlform does not fetch "
        "from registries; declare it in components/train_model.yml (name: train_model, "
        "version: 1)",
        "pipelines/p.yml:10:16: error: component 'prep_data' (from Azure ML registry "
        "'azureml') is not declared in this workspace, and mlform does not fetch from "
        "registries; declare it in components/prep_data.yml (name: prep_data)",
        "pipelines/p.yml:12:16: error: 'azureml://registries/azureml/environments/"
        "train_model/versions/2' names the environment 'train_model', not a component; "
        "write azureml://registries/<registry>/components/NAME/versions/N",
        "pipelines/p.yml:14:16: error: component 'azureml://registries/azureml/components/"
        "train_model/labels/stable' is neither a file (./train.yml) nor a component "
        "reference (azureml:NAME:VERSION, azureml:NAME@latest or "
        "azureml://registries/<registry>/components/NAME/versions/N)",
        "validation failed: 4 errors",
    ]


def test_a_component_defines_its_environment_in_place(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: comps\n",
            "components/train.yml": """\
                $schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
                name: train_model
                type: command
                environment:
                  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
                  conda_file: ./conda.yml
                command: python -c pass
            """,
            "pipelines/p.yml": """\
                type: pipeline
                jobs:
                  a:
                    component: azureml:train_model@latest
                  b:
                    component: ../components/train.yml
            """,
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.code == 1
    assert ran.err.splitlines() == [
        "components/train.yml:6:15: error: conda file './conda.yml' does not exist (looked "
        "for components/conda.yml); create it, or correct the path (it is relative to this "
        "file)",
        "validation failed: 1 error",
    ]
    (root / "components" / "conda.yml").write_text("dependencies:\n  - python=3.11\n")
    config = load(root)
    assert [a for a in config.specs if a.startswith("environment/")] == [
        "environment/anonymous-29b8e239ffc8"
    ]
    pipeline = config.specs["pipeline/p"]
    assert isinstance(pipeline, PipelineSpec)
    assert [str(step.environment) for step in pipeline.steps] == [
        "anonymous-29b8e239ffc8@latest",
        "anonymous-29b8e239ffc8@latest",
    ]
    assert config.deps["pipeline/p"] == ("environment/anonymous-29b8e239ffc8",)


def test_a_component_builds_its_environment_from_a_docker_context(
    cli: Cli, make_workspace: Make
) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: comps\n",
            "components/train.yml": """\
                $schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
                name: train_model
                type: command
                environment:
                  build:
                    path: ./docker
                command: python -c pass
            """,
            "components/docker/Dockerfile": "FROM python:3.11-slim\n",
            "pipelines/p.yml": """\
                type: pipeline
                jobs:
                  a:
                    component: ../components/train.yml
                  b:
                    component: ../components/train.yml
                    environment: azureml:own@latest
            """,
            "environments/own.yml": "name: own\n",
        }
    )
    ran = cli("validate", cwd=root)
    assert (ran.code, ran.err) == (0, ""), ran.err
    config = load(root)
    assert config.deps["pipeline/p"] == (
        "environment/anonymous-6dd0f18a66eb",
        "environment/own",
    )
