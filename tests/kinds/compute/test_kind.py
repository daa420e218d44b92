"""Compute targets declared in compute/*.yml (Azure ML's compute YAML): resources in the
plan, named by jobs and pipeline steps, run on this machine for type: local."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from tests.conftest import Ran

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]

CLUSTER = """
    $schema: https://azuremlschemas.azureedge.net/latest/amlCompute.schema.json
    name: cpu-cluster
    type: local
    size: STANDARD_DS3_v2
    min_instances: 0
    max_instances: 2
    idle_time_before_scale_down: 120
    """
JOB = """
    $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
    command: python -c "print('on the cluster')"
    compute: azureml:cpu-cluster
    """
PIPELINE = """
    $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
    type: pipeline
    settings:
      default_compute: azureml:cpu-cluster
    jobs:
      hello:
        type: command
        command: python -c "print('a step on the cluster')"
    """


def test_a_local_compute_is_planned_and_runs_jobs(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: computed\n",
            "compute/cpu-cluster.yml": CLUSTER,
            "runconfigs/train.yml": JOB,
            "pipelines/hello.yml": PIPELINE,
        }
    )
    planned = cli("plan", cwd=root)
    assert planned.out.splitlines()[2:6] == [
        "  + compute/cpu-cluster           (new: type local)",
        "  + datastore/workspaceblobstore  (new: local folder .mlform/datastore)",
        "  > pipeline/hello                (no run yet)",
        "  > runconfig/train               (no run yet)",
    ]
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    assert "    runconfig/train: on the cluster" in applied.out.splitlines()
    listed = cli("runs", "list", cwd=root).out.splitlines()
    shown = [cli("runs", "show", line.split()[0], cwd=root).out for line in listed[1:]]
    # the job and the pipeline's step; the pipeline's own run runs nothing
    assert sum("  compute:      cpu-cluster (local)\n" in out for out in shown) == 2

    # Its size is Azure's business: editing it changes the record, and runs nothing.
    (root / "compute/cpu-cluster.yml").write_text(
        CLUSTER.replace("max_instances: 2", "max_instances: 4").replace("\n    ", "\n")
    )
    replanned = cli("plan", cwd=root)
    assert replanned.out.splitlines()[2:4] == [
        "  ~ compute/cpu-cluster  (max_instances: 2 → 4)",
        "",
    ]


def test_compute_that_is_not_local_or_not_declared_is_an_error(
    cli: Cli, make_workspace: Make
) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: computed\n",
            "compute/gpu.yml": """
                $schema: https://azuremlschemas.azureedge.net/latest/amlCompute.schema.json
                name: gpu-cluster
                type: amlcompute
                size: Standard_NC6s_v3
                max_instances: 4
                """,
            "compute/k8s.yml": """
                $schema: https://azuremlschemas.azureedge.net/latest/kubernetesCompute.schema.json
                name: k8s
                type: kubernetes
                resource_id: /subscriptions/0000/resourceGroups/rg/providers/x/y
                """,
            "runconfigs/train.yml": JOB,
            "pipelines/hello.yml": PIPELINE.replace("cpu-cluster", "gpu-cluster"),
            "runconfigs/local.yml": "command: echo local\ncompute: local\n",
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.err.splitlines() == [
        "compute/gpu.yml:3:7: error: not supported yet: compute type 'amlcompute' "
        "(in compute/gpu.yml); mlform runs jobs on this machine, a container, another machine "
        "over SSH or a Ray cluster: use type: local, docker, virtualmachine or ray",
        "compute/k8s.yml:3:7: error: not supported yet: compute type 'kubernetes' "
        "(in compute/k8s.yml); mlform runs jobs on this machine, a container, another machine "
        "over SSH or a Ray cluster: use type: local, docker, virtualmachine or ray",
        "runconfigs/train.yml:3:10: error: unknown compute 'cpu-cluster' (did you mean "
        "'gpu-cluster'?); declare it in compute/cpu-cluster.yml with type: local, "
        "or use compute: local",
        "validation failed: 3 errors",
    ]


def test_the_compute_schema_is_shipped(cli: Cli) -> None:
    shown = cli("schema", "compute")
    assert shown.code == 0
    assert '"title": "mlform compute"' in shown.out


def test_a_job_on_a_docker_compute_must_name_its_environment(
    cli: Cli, make_workspace: Make
) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: boxed\n",
            "compute/cpu-cluster.yml": CLUSTER.replace("type: local", "type: docker"),
            "runconfigs/job.yml": JOB,
            "pipelines/p.yml": PIPELINE,
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.code == 1
    problem = (
        "error: compute cpu-cluster is of type docker: it runs a job in the job's environment, "
        "built there; name an environment (environment: azureml:NAME@latest)"
    )
    lines = ran.err.splitlines()
    assert any(line.startswith("runconfigs/job.yml:") and line.endswith(problem) for line in lines)
    assert any(line.startswith("pipelines/p.yml:") and line.endswith(problem) for line in lines)
