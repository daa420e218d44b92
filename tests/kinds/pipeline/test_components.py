"""Command components through the real CLI, in files shaped as Azure ML documents them
(https://learn.microsoft.com/azure/machine-learning/reference-yaml-component-command and
reference-yaml-job-pipeline): a prep → train → score pipeline whose steps run component
files by path and by name, publish outputs to the pipeline's own, and are reused when
nothing they depend on changed."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

from mlform.state.store import Store
from tests.cli.test_runs import changes
from tests.conftest import Ran
from tests.kinds.pipeline.test_pipelines import step_lines

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]

PIPELINE = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
display_name: nyc_taxi_data_regression
description: Train a regression model on taxi fares

inputs:
  pipeline_job_input:
    type: uri_folder
    path: ./data

outputs:
  pipeline_job_prepped_data:
    mode: rw_mount
  pipeline_job_trained_model:
    mode: rw_mount
  pipeline_job_predictions:
    mode: rw_mount

settings:
  default_datastore: azureml:workspaceblobstore
  default_compute: azureml:local
  continue_on_step_failure: false

jobs:
  prep_job:
    type: command
    component: ./components/prep.yml
    inputs:
      raw_data: ${{parent.inputs.pipeline_job_input}}
    outputs:
      prep_data: ${{parent.outputs.pipeline_job_prepped_data}}

  train_job:
    type: command
    component: ../components/train.yml
    inputs:
      training_data: ${{parent.jobs.prep_job.outputs.prep_data}}
      learning_rate: 0.5
    outputs:
      model_output: ${{parent.outputs.pipeline_job_trained_model}}

  score_job:
    type: command
    component: azureml:score_model:1
    inputs:
      model_input: ${{parent.jobs.train_job.outputs.model_output}}
      test_data: ${{parent.jobs.prep_job.outputs.prep_data}}
    outputs:
      predictions: ${{parent.outputs.pipeline_job_predictions}}
"""

PREP = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
name: prep_taxi_data
display_name: PrepTaxiData
version: 1
type: command
inputs:
  raw_data:
    type: uri_folder
outputs:
  prep_data:
    type: uri_folder
code: ./prep_src
environment: azureml:python-env@latest
command: >-
  python prep.py
  --raw_data ${{inputs.raw_data}}
  --prep_data ${{outputs.prep_data}}
"""

PREP_PY = """\
import argparse, csv, pathlib
p = argparse.ArgumentParser()
p.add_argument("--raw_data")
p.add_argument("--prep_data")
a = p.parse_args()
rows = []
for f in sorted(pathlib.Path(a.raw_data).glob("*.csv")):
    rows += [r for r in csv.DictReader(f.open()) if r["fare"]]
with open(pathlib.Path(a.prep_data) / "clean.csv", "w", newline="") as out:
    w = csv.DictWriter(out, ["distance", "fare"])
    w.writeheader()
    w.writerows(rows)
"""

# A component in a sibling folder of pipelines/, with typed parameters: a default, a
# range, an enum and an optional argument in Azure's $[[...]] syntax.
TRAIN = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
name: train_linear_regression_model
display_name: TrainLinearRegressionModel
version: 1
type: command
inputs:
  training_data:
    type: uri_folder
  learning_rate:
    type: number
    min: 0.0
    max: 1.0
  epochs:
    type: integer
    default: 200
  loss:
    type: string
    default: squared
    enum: [squared, absolute]
  seed:
    type: integer
    optional: true
outputs:
  model_output:
    type: uri_folder
code: ./train_src
environment: azureml:python-env@latest
command: >-
  python train.py
  --training_data ${{inputs.training_data}}
  --learning_rate ${{inputs.learning_rate}}
  --epochs ${{inputs.epochs}}
  --loss ${{inputs.loss}}
  $[[--seed ${{inputs.seed}}]]
  --model_output ${{outputs.model_output}}
"""

TRAIN_PY = """\
import argparse, csv, json, pathlib, sys
p = argparse.ArgumentParser()
p.add_argument("--training_data")
p.add_argument("--learning_rate", type=float)
p.add_argument("--epochs", type=int)
p.add_argument("--loss")
p.add_argument("--seed", type=int)
p.add_argument("--model_output")
a = p.parse_args()
rows = list(csv.DictReader(open(pathlib.Path(a.training_data) / "clean.csv")))
xs = [float(r["distance"]) for r in rows]
ys = [float(r["fare"]) for r in rows]
w = 0.0
for _ in range(a.epochs):
    grad = sum((w * x - y) * x for x, y in zip(xs, ys)) / len(xs)
    w -= a.learning_rate * grad / max(x * x for x in xs)
(pathlib.Path(a.model_output) / "model.json").write_text(
    json.dumps({"w": round(w, 6), "argv": sys.argv[1:]})
)
"""

SCORE = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
name: score_model
version: 1
display_name: ScoreModel
type: command
inputs:
  model_input:
    type: uri_folder
  test_data:
    type: uri_folder
outputs:
  predictions:
    type: uri_folder
code: ./score_src
environment: azureml:python-env@latest
command: >-
  python score.py
  --model_input ${{inputs.model_input}}
  --test_data ${{inputs.test_data}}
  --predictions ${{outputs.predictions}}
"""

SCORE_PY = """\
import argparse, csv, json, pathlib
p = argparse.ArgumentParser()
p.add_argument("--model_input")
p.add_argument("--test_data")
p.add_argument("--predictions")
a = p.parse_args()
w = json.loads((pathlib.Path(a.model_input) / "model.json").read_text())["w"]
rows = list(csv.DictReader(open(pathlib.Path(a.test_data) / "clean.csv")))
with open(pathlib.Path(a.predictions) / "predictions.csv", "w") as out:
    out.write("distance,predicted\\n")
    for r in rows:
        out.write(f"{r['distance']},{w * float(r['distance']):.2f}\\n")
"""


def taxi_workspace(make: Make) -> Path:
    return make(
        {
            "workspace.yml": "name: taxi\n",
            "environments/python.yml": "name: python-env\n",
            "pipelines/taxi.yml": PIPELINE,
            "pipelines/data/trips.csv": "distance,fare\n1,2.5\n2,5.1\n3,\n4,9.8\n",
            "pipelines/components/prep.yml": PREP,
            "pipelines/components/prep_src/prep.py": PREP_PY,
            "components/train.yml": TRAIN,
            "components/train_src/train.py": TRAIN_PY,
            "components/score.yml": SCORE,
            "components/score_src/score.py": SCORE_PY,
        }
    )


def test_an_azure_pipeline_of_components_runs_publishes_and_reuses(
    cli: Cli, make_workspace: Make
) -> None:
    root = taxi_workspace(make_workspace)
    assert cli("validate", cwd=root).code == 0

    # The components are steps of the pipeline, never runs of their own.
    plan = cli("plan", cwd=root)
    assert plan.code == 0, plan.err
    assert [line.split(" (")[0] for line in changes(plan.out)] == [
        "+ datastore/workspaceblobstore",
        "+ environment/python-env",
        "> pipeline/taxi",
    ]
    assert changes(plan.out)[-1] == "> pipeline/taxi (no run yet)"

    first = cli("apply", "--yes", cwd=root)
    assert first.code == 0, first.out + first.err
    assert step_lines(first.out) == [
        "prep_job completed",
        "score_job completed",
        "train_job completed",
    ]
    outputs = pipeline_outputs(root)
    assert sorted(outputs) == [
        "pipeline_job_predictions",
        "pipeline_job_prepped_data",
        "pipeline_job_trained_model",
    ]
    assert {name: o["step"] for name, o in outputs.items()} == {
        "pipeline_job_predictions": "score_job",
        "pipeline_job_prepped_data": "prep_job",
        "pipeline_job_trained_model": "train_job",
    }
    model = json.loads(
        (Path(outputs["pipeline_job_trained_model"]["path"]) / "model.json").read_text()
    )
    # The defaults were applied; the optional seed, not given, left no argument behind.
    assert model["argv"][2:8] == ["--learning_rate", "0.5", "--epochs", "200", "--loss", "squared"]
    assert "--seed" not in model["argv"]
    run_folder = Path(runs_of(root)[0][1]) / "outputs"
    assert (run_folder / "pipeline_job_predictions" / "predictions.csv").read_text() == (
        "distance,predicted\n1,2.47\n2,4.94\n4,9.89\n"
    )
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0

    # A component's file is part of its steps' digest: a new parameter value in it
    # reruns training and what depends on it, and reuses data preparation.
    train = root / "components" / "train.yml"
    train.write_text(train.read_text().replace("default: 200", "default: 300"))
    plan = cli("plan", cwd=root)
    assert changes(plan.out) == [
        "> pipeline/taxi (prep_job: reuse; train_job: component changed, input epochs: 200 → 300; "
        "score_job: after train_job)"
    ]
    second = cli("apply", "--yes", cwd=root)
    assert second.code == 0, second.out + second.err
    assert step_lines(second.out) == [
        "prep_job reused",
        "score_job completed",
        "train_job completed",
    ]

    # Its description is metadata: editing it reruns nothing.
    train.write_text(train.read_text().replace("version: 1", "version: 1\ndescription: fares"))
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0

    # Code a component points at is in the digest too; an optional input given a value
    # brings its argument back.
    score_py = root / "components" / "score_src" / "score.py"
    score_py.write_text(score_py.read_text().replace(":.2f", ":.1f"))
    pipeline = root / "pipelines" / "taxi.yml"
    pipeline.write_text(
        pipeline.read_text().replace("learning_rate: 0.5", "learning_rate: 0.5\n      seed: 7")
    )
    plan = cli("plan", cwd=root)
    assert changes(plan.out) == [
        "> pipeline/taxi (prep_job: reuse; train_job: command changed, input seed changed; "
        "score_job: after train_job)"
    ]
    third = cli("apply", "--yes", cwd=root)
    assert third.code == 0, third.out + third.err
    model = json.loads(
        (
            Path(pipeline_outputs(root)["pipeline_job_trained_model"]["path"]) / "model.json"
        ).read_text()
    )
    assert model["argv"][8:10] == ["--seed", "7"]
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0

    # A component that says it is not deterministic is never reused.
    score = root / "components" / "score.yml"
    score.write_text(score.read_text() + "is_deterministic: false\n")
    plan = cli("plan", "--detailed-exitcode", cwd=root)
    assert plan.code == 2
    assert changes(plan.out) == [
        "> pipeline/taxi (prep_job: reuse; train_job: reuse; score_job: not deterministic)"
    ]


def pipeline_outputs(root: Path, address: str = "pipeline/taxi") -> dict[str, dict[str, str]]:
    with Store.open(root / ".mlform" / "state.duckdb", "test", write=False) as store:
        rows = store.query("select outputs from resources where address = ?", [address])
    found: dict[str, dict[str, str]] = json.loads(rows[0][0])["outputs"]
    return found


def runs_of(root: Path) -> list[tuple[str, str]]:
    """The pipeline's runs, latest first: id and folder."""
    with Store.open(root / ".mlform" / "state.duckdb", "test", write=False) as store:
        rows = store.query(
            "select id, run_dir from runs where runconfig = 'pipeline/taxi' "
            "and parent_id is null order by created_at desc"
        )
    return [(str(a), str(b)) for a, b in rows]


INLINE_COMPONENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
name: train_model
display_name: TrainModel
version: 1
type: command
inputs:
  note:
    type: string
    optional: true
outputs:
  model_output:
    type: uri_folder
code: ./train_src
environment:
  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
  conda_file: ./conda.yml
command: >-
  python train.py --model_output ${{outputs.model_output}} $[[--note ${{inputs.note}}]]
"""

INLINE_TRAIN_PY = """\
import argparse, pathlib, sys
p = argparse.ArgumentParser()
p.add_argument("--model_output")
p.add_argument("--note", default="")
a = p.parse_args()
(pathlib.Path(a.model_output) / "prefix.txt").write_text(sys.prefix + a.note)
"""

INLINE_PIPELINE = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
outputs:
  trained:
    mode: rw_mount
  again:
    mode: rw_mount
settings:
  default_compute: azureml:local
jobs:
  train_job:
    type: command
    component: ../components/train.yml
    outputs:
      model_output: ${{parent.outputs.trained}}
  again_job:
    type: command
    component: azureml://registries/azureml/components/train_model/versions/1
    outputs:
      model_output: ${{parent.outputs.again}}
"""

ANONYMOUS = "anonymous-29b8e239ffc8"  # what the component defines, named from its text


def test_a_component_runs_in_the_environment_it_defines_in_place(
    cli: Cli, make_workspace: Make
) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: inline\n",
            "pipelines/train.yml": INLINE_PIPELINE,
            "components/train.yml": INLINE_COMPONENT,
            "components/conda.yml": "name: train\ndependencies:\n  - python=3.11\n",
            "components/train_src/train.py": INLINE_TRAIN_PY,
        }
    )
    plan = cli("plan", cwd=root)
    assert plan.code == 0, plan.err
    assert changes(plan.out) == [
        "+ datastore/workspaceblobstore (new: local folder .mlform/datastore)",
        f"+ environment/{ANONYMOUS} (new: version 1 (0 packages, cpython-3.11))",
        "> pipeline/train (no run yet)",
    ]
    first = cli("apply", "--yes", cwd=root)
    assert first.code == 0, first.out + first.err
    assert step_lines(first.out) == ["again_job completed", "train_job completed"]
    # Both steps ran in the environment's interpreter, not mlform's own.
    env = json.loads(cli("state", "show", f"environment/{ANONYMOUS}", cwd=root).out)
    outputs = pipeline_outputs(root, "pipeline/train")
    for name in ("trained", "again"):
        prefix = Path(outputs[name]["path"]) / "prefix.txt"
        assert prefix.read_text() == env["outputs"]["path"]
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0

    # A step given a note reruns; the other is reused, in the same environment.
    pipeline = root / "pipelines" / "train.yml"
    pipeline.write_text(
        pipeline.read_text().replace(
            "${{parent.outputs.again}}", "${{parent.outputs.again}}\n    inputs:\n      note: x"
        )
    )
    assert changes(cli("plan", cwd=root).out) == [
        "> pipeline/train (again_job: command changed, input note changed; train_job: reuse)"
    ]
    second = cli("apply", "--yes", cwd=root)
    assert second.code == 0, second.out + second.err
    assert step_lines(second.out) == ["again_job completed", "train_job reused"]

    # A package added to the conda file: a new version of the environment, both steps rerun.
    (root / "components" / "conda.yml").write_text(
        "name: train\ndependencies:\n  - python=3.11\n  - pip:\n    - pyyaml\n"
    )
    assert changes(cli("plan", cwd=root).out) == [
        f"~ environment/{ANONYMOUS} (content changed: conda.yml modified; version 1 → 2)",
        "> pipeline/train (again_job: environment changed; train_job: environment changed)",
    ]
    third = cli("apply", "--yes", cwd=root)
    assert third.code == 0, third.out + third.err
    assert step_lines(third.out) == ["again_job completed", "train_job completed"]
    env = json.loads(cli("state", "show", f"environment/{ANONYMOUS}", cwd=root).out)
    trained = Path(pipeline_outputs(root, "pipeline/train")["trained"]["path"])
    assert (trained / "prefix.txt").read_text() == env["outputs"]["path"]
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0
