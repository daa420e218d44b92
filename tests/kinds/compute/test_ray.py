"""Jobs on a `type: ray` compute: a real Ray cluster of two nodes (a head and a worker),
reached through its Job Submission API. A job file as Azure ML writes it runs unchanged
once its `cpu-cluster` is declared as a ray target; the run logs with the SDK as a local
run does, its outputs come back through the shared datastore, its secret stays out of
Ray's job record; a timeout stops the Ray job and every process it started; a
distributed run sees PyTorch's variables; independent pipeline steps run side by side."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import Ran, mlform_process
from tests.kinds.compute.conftest import RayCluster

Cli = Callable[..., Ran]
SECRET = "ray-token-5d1c0e"
JOB_SCHEMA = "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json"


def _files(cluster: RayCluster) -> dict[str, str]:
    return {
        "workspace.yml": "name: clustered\nsecrets:\n  - name: TOKEN\n    env: RAY_TOKEN\n",
        "data/numbers.csv": "x\n1\n2\n3\n",
        "data/numbers.yml": "name: numbers\ntype: uri_file\npath: numbers.csv\n",
        "environments/plain.yml": "name: plain\npip: []\nenvironment_variables:\n  MODE: plain\n",
        "compute/cpu-cluster.yml": f"""
            name: cpu-cluster
            type: ray
            address: {cluster.address}
            resources: {{num_cpus: 1}}
            runtime_env:
              env_vars: {{FROM_COMPUTE: "yes"}}
            """,
        "src/job.py": """
            import os, sys
            from pathlib import Path

            import mlform

            data, out = sys.argv[1], Path(sys.argv[2])
            total = sum(int(line) for line in open(data).read().split()[1:])
            run = mlform.get_run()
            for step in range(3):
                run.log("total", total + step, step=step)
            out.mkdir(parents=True, exist_ok=True)
            (out / "total.txt").write_text(str(total))
            Path("outputs/note.txt").write_text("kept")
            print("token", os.environ["TOKEN"])
            print("mode", os.environ["MODE"], "compute", os.environ.get("FROM_COMPUTE"))
            print("host home", os.environ.get("HOME_ON_HOST", "absent"))
            print("cwd", os.getcwd())
            """,
        # as Azure ML's CLI v2 documents a command job, unchanged
        "runconfigs/job.yml": f"""
            $schema: {JOB_SCHEMA}
            type: command
            code: ../src
            command: python job.py ${{{{inputs.numbers}}}} ${{{{outputs.out}}}}
            inputs:
              numbers: {{type: uri_file, path: azureml:numbers@latest}}
            outputs:
              out: {{type: uri_folder}}
            environment: azureml:plain@latest
            environment_variables:
              TOKEN: ${{{{secrets.TOKEN}}}}
            compute: azureml:cpu-cluster
            experiment_name: numbers
            """,
        "runconfigs/slow.yml": """
            code: ../src
            command: sleep 611 & sleep 612
            compute: azureml:cpu-cluster
            limits: {timeout: 3}
            """,
    }


def _runs(cli: Cli, root: Path) -> Mapping[str, dict[str, object]]:
    listed = json.loads(cli("runs", "list", "--json", cwd=root).out)
    return {str(r["runconfig"]): r for r in reversed(listed)}  # newest first: the latest


def _job(cluster: RayCluster, run_id: str) -> dict[str, object]:
    with urllib.request.urlopen(f"{cluster.address}/api/jobs/mlform-{run_id}") as answer:
        return dict(json.load(answer))


def _processes(pattern: str) -> list[str]:
    found = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True)
    return [line for line in found.stdout.splitlines() if "pgrep" not in line]


@pytest.mark.slow
def test_an_azure_job_runs_unchanged_on_a_ray_cluster(
    cli: Cli,
    make_workspace: Callable[[Mapping[str, str]], Path],
    ray_cluster: RayCluster,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOME_ON_HOST", "leaked")  # this machine's variables stay here
    monkeypatch.setenv("RAY_TOKEN", SECRET)
    root = make_workspace(_files(ray_cluster))
    planned = cli("plan", cwd=root).out.splitlines()
    assert "note: runconfig/job runs on compute cpu-cluster (ray)" in planned
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 1, applied.out + applied.err  # the slow job timed out
    assert "runconfig/slow" in applied.out and "timed out" in applied.out

    runs = _runs(cli, root)
    job = runs["runconfig/job"]
    assert job["status"] == "completed", job
    shown = json.loads(cli("runs", "show", str(job["id"]), "--json", cwd=root).out)
    assert shown["compute"] == "cpu-cluster" and shown["target"] == "ray"
    assert "compute:      cpu-cluster (ray)" in cli("runs", "show", str(job["id"]), cwd=root).out
    assert shown["metrics"]["total"] == 8  # the last of 6, 7, 8
    log = cli("runs", "logs", str(job["id"]), cwd=root).out
    assert f"submitted as Ray job mlform-{job['id']}" in log
    assert "token ***" in log and SECRET not in log + applied.out + applied.err
    assert "mode plain compute yes" in log  # the environment's and the compute's variables
    assert "host home absent" in log
    assert "/runtime_resources/working_dir_files/" in log  # it ran where Ray put it
    run_dir = Path(str(shown["run_dir"]))
    assert (run_dir / "outputs" / "out" / "total.txt").read_text() == "6"  # brought back
    assert (run_dir / "outputs" / "note.txt").read_text() == "kept"
    history = json.loads(cli("runs", "metrics", str(job["id"]), "--json", cwd=root).out)
    assert [p["value"] for p in history["metrics"] if p["key"] == "total"] == [6, 7, 8]

    ray_job = _job(ray_cluster, str(job["id"]))
    assert ray_job["status"] == "SUCCEEDED"
    assert SECRET not in json.dumps(ray_job)  # Ray's dashboard shows the job record
    assert not list((root / ".mlform").rglob(".ray-runs/*"))  # the exchange folder is emptied

    slow = runs["runconfig/slow"]
    assert slow["status"] == "timed_out"
    assert _job(ray_cluster, str(slow["id"]))["status"] == "STOPPED"
    assert _processes("sleep 61[12]") == []  # nothing left on any node

    again = cli("plan", "--detailed-exitcode", cwd=root)
    assert "runconfig/job" not in again.out  # ran once: nothing to do for it


def _interrupted_files(cluster: RayCluster) -> dict[str, str]:
    def job(name: str, seconds: int) -> str:
        return f"""
            code: ../src
            command: python tick.py {seconds} {name}
            compute: azureml:cpu-cluster
            """

    return {
        "workspace.yml": "name: interrupted\n",
        "compute/cpu-cluster.yml": f"name: cpu-cluster\ntype: ray\naddress: {cluster.address}\n",
        "src/tick.py": """
            import sys, time

            import mlform

            seconds, name = int(sys.argv[1]), sys.argv[2]
            run = mlform.get_run()
            for second in range(seconds):
                run.log("second", second, step=second)
                print(name, "tick", second, flush=True)
                time.sleep(1)
            print(name, "done")
            """,
        "runconfigs/short.yml": job("short", 4),
        "runconfigs/long.yml": job("long", 14),
        "runconfigs/forever.yml": job("forever", 613),
    }


def _ray_jobs(cluster: RayCluster) -> list[dict[str, object]]:
    with urllib.request.urlopen(f"{cluster.address}/api/jobs/") as answer:
        return [dict(j) for j in json.load(answer)]


def _wait_until(check: Callable[[], bool], what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


def _running(cluster: RayCluster, root: Path, *names: str) -> bool:
    """Whether the Ray jobs of the runs of `names` in workspace `root` all run."""
    runs = root / ".mlform" / "runs"
    wanted = {f"mlform-{p.name}" for p in runs.glob("*_*") if p.name.split("_")[0] in names}
    jobs = {j["submission_id"]: j["status"] for j in _ray_jobs(cluster)}
    return len(wanted) == len(names) and all(jobs.get(w) == "RUNNING" for w in wanted)


@pytest.mark.slow
def test_an_apply_killed_during_ray_runs_is_reconciled_by_the_next(
    cli: Cli, make_workspace: Callable[[Mapping[str, str]], Path], ray_cluster: RayCluster
) -> None:
    files = _interrupted_files(ray_cluster)
    del files["runconfigs/forever.yml"]
    root = make_workspace(files)
    apply = mlform_process("apply", "--yes", cwd=root, start_new_session=True)
    try:
        _wait_until(lambda: _running(ray_cluster, root, "short", "long"), "both jobs run")
    finally:
        os.killpg(apply.pid, signal.SIGKILL)  # the apply dies; its runs go on on the cluster
        apply.communicate()
    started = {p.name for p in (root / ".mlform" / "runs").iterdir()}
    short = next(name for name in started if name.startswith("short_"))
    _wait_until(
        lambda: (
            {j["submission_id"]: j["status"] for j in _ray_jobs(ray_cluster)}.get(f"mlform-{short}")
            == "SUCCEEDED"
        ),
        "the short job ends while no apply watches it",
    )

    again = cli("apply", "--yes", cwd=root)
    assert again.code == 0, again.out + again.err
    assert again.out.count("re-attached") == 2, again.out
    runs = _runs(cli, root)
    # the same runs, not new ones: the short one ingested, the long one followed to its end
    assert {str(runs[f"runconfig/{n}"]["id"]) for n in ("short", "long")} == started
    for name, seconds in (("short", 4), ("long", 14)):
        run = runs[f"runconfig/{name}"]
        assert run["status"] == "completed", run
        log = cli("runs", "logs", str(run["id"]), cwd=root).out
        assert [line for line in log.splitlines() if " tick " in line] == [
            f"{name} tick {s}" for s in range(seconds)
        ]  # every line once, though two applies followed it
        history = json.loads(cli("runs", "metrics", str(run["id"]), "--json", cwd=root).out)
        assert [p["value"] for p in history["metrics"]] == list(range(seconds))
    submitted = [
        j for j in _ray_jobs(ray_cluster) if str(j["submission_id"]).endswith(tuple(started))
    ]
    assert len(submitted) == 2  # nothing submitted twice
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0


@pytest.mark.slow
def test_ctrl_c_stops_the_ray_job_and_everything_it_started(
    cli: Cli, make_workspace: Callable[[Mapping[str, str]], Path], ray_cluster: RayCluster
) -> None:
    files = _interrupted_files(ray_cluster)
    root = make_workspace({k: v for k, v in files.items() if "short" not in k and "long" not in k})
    apply = mlform_process("apply", "--yes", cwd=root, start_new_session=True)
    _wait_until(lambda: _running(ray_cluster, root, "forever"), "the job runs")
    _wait_until(lambda: bool(_processes("tick.py 613")), "its process runs on a node")
    os.killpg(apply.pid, signal.SIGINT)  # what a terminal sends its foreground group
    out, err = apply.communicate(timeout=60)
    assert apply.returncode != 0
    run = _runs(cli, root)["runconfig/forever"]
    assert run["status"] == "canceled", out + err
    assert _job(ray_cluster, str(run["id"]))["status"] == "STOPPED"
    assert _processes("tick.py 613") == []


RENDEZVOUS = """
    import os, socket, time

    import mlform

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    master = (os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]))
    print("rank", rank, "of", world, "local", os.environ["LOCAL_RANK"],
          "node", os.environ["NODE_RANK"], flush=True)
    try:
        import torch
        import torch.distributed as dist
    except ImportError:
        torch = None
    if torch is not None:  # PyTorch's own rendezvous (env://) and a gloo all-reduce
        dist.init_process_group("gloo")
        total = torch.tensor([float(rank + 1)])
        dist.all_reduce(total)
        print("rank", rank, "all-reduced", total.item(), flush=True)
        if rank == 0:
            mlform.get_run().log("all_reduce_sum", total.item())
        dist.destroy_process_group()
    elif rank == 0:  # as torch.distributed's TCP store: rank 0 listens, the others report
        with socket.create_server(master) as server:
            seen = []
            for _ in range(world - 1):
                peer, _ = server.accept()
                with peer:
                    seen.append(int(peer.recv(16).decode()))
        mlform.get_run().log("rank_sum", sum(seen))
        print("rank 0 met ranks", sorted(seen))
    else:
        for _ in range(100):
            try:
                with socket.create_connection(master, timeout=2) as peer:
                    peer.sendall(str(rank).encode())
                break
            except OSError:
                time.sleep(0.1)
        print("rank", rank, "reported")
"""


def _cpu_torch() -> str | None:
    """`torch==VERSION+cpu` when pip's configured find-links folders hold a CPU-only
    wheel of PyTorch for this Python (the index's own wheel carries CUDA: gigabytes)."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    ).stdout
    folders = [
        folder
        for line in listed.splitlines()
        if line.split("=", 1)[0].endswith("find-links")
        for folder in line.split("=", 1)[1].strip("'\"").split()
    ]
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    for folder in folders:
        for wheel in sorted(Path(folder).glob(f"torch-*+cpu-{tag}-*.whl")):
            return f"torch=={wheel.name.split('-')[1]}"
    return None


@pytest.mark.slow
def test_a_distributed_pytorch_job_gets_its_ranks_across_the_cluster(
    cli: Cli, make_workspace: Callable[[Mapping[str, str]], Path], ray_cluster: RayCluster
) -> None:
    torch = _cpu_torch()
    root = make_workspace(
        {
            "workspace.yml": "name: distributed\n",
            "compute/gpu-cluster.yml": f"""
                name: gpu-cluster
                type: ray
                address: {ray_cluster.address}
                resources: {{num_cpus: 1}}
                """,
            "environments/torch.yml": f"name: torch\npip: [{torch or ''}]\n",
            "src/train.py": RENDEZVOUS,
            # Azure ML's distributed command job keys
            "runconfigs/ddp.yml": f"""
                $schema: {JOB_SCHEMA}
                code: ../src
                command: python train.py
                environment: azureml:torch@latest
                compute: azureml:gpu-cluster
                resources: {{instance_count: 2}}
                distribution: {{type: pytorch, process_count_per_instance: 1}}
                """,
        }
    )
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    run = _runs(cli, root)["runconfig/ddp"]
    shown = json.loads(cli("runs", "show", str(run["id"]), "--json", cwd=root).out)
    run_dir = Path(str(shown["run_dir"]))
    first = (run_dir / "logs" / "user_logs" / "std_log_process_0.txt").read_text()
    second = (run_dir / "logs" / "user_logs" / "std_log_process_1.txt").read_text()
    assert "rank 0 of 2 local 0" in first and "rank 1 of 2 local 0" in second
    if torch:  # gloo's all-reduce of 1 and 2, across the two nodes
        assert shown["metrics"] == {"all_reduce_sum": 3}
        assert "rank 1 all-reduced 3.0" in second
    else:
        assert shown["metrics"] == {"rank_sum": 1}
        assert "rank 0 met ranks [1]" in first and "rank 1 reported" in second
    # one instance per node: the placement group spread them
    nodes = {line.split()[-1] for line in (first + second).splitlines() if " node " in line}
    assert nodes == {"0", "1"}
    assert "rank 0 of 2" in cli("runs", "logs", str(run["id"]), cwd=root).out


def test_instances_need_a_ray_compute(
    cli: Cli, make_workspace: Callable[[Mapping[str, str]], Path]
) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: one-machine\n",
            "runconfigs/ddp.yml": """
                command: python train.py
                resources: {instance_count: 2}
                distribution: {type: pytorch}
                """,
        }
    )
    checked = cli("validate", cwd=root)
    assert checked.code != 0
    assert "runconfigs/ddp.yml:2:29" in checked.err and "instance_count" in checked.err
    assert "a ray compute runs a job's instances" in checked.err


def _fan(name: str, settings: str) -> str:
    steps = "".join(
        f"""
                  {name}{i}:
                    code: ../src
                    command: sleep 2 && echo {name} step {i}
"""
        for i in range(8)
    )
    return f"""
                type: pipeline
                settings:
                  default_compute: azureml:cpu-cluster
{settings}
                jobs:{steps}"""


@pytest.mark.slow
def test_independent_pipeline_steps_run_side_by_side_across_the_cluster(
    cli: Cli, make_workspace: Callable[[Mapping[str, str]], Path], ray_cluster: RayCluster
) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: fanned\n",
            "compute/cpu-cluster.yml": f"""
                name: cpu-cluster
                type: ray
                address: {ray_cluster.address}
                resources: {{num_cpus: 1}}
                """,
            "src/empty.txt": "",
            "pipelines/serial.yml": _fan("serial", "                  max_concurrency: 1"),
            "pipelines/fan.yml": _fan("fan", ""),
            # a step's output reaches the next step on whichever node runs it
            "pipelines/chain.yml": """
                type: pipeline
                settings: {default_compute: azureml:cpu-cluster}
                jobs:
                  make:
                    code: ../src
                    command: echo 41 > ${{outputs.number}}
                    outputs: {number: {type: uri_file}}
                  use:
                    code: ../src
                    command: echo "got $(( $(cat ${{inputs.number}}) + 1 ))"
                    inputs: {number: "${{parent.jobs.make.outputs.number}}"}
                """,
        }
    )
    applied = cli("apply", "--yes", "--parallelism", "1", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    runs = _runs(cli, root)

    def wall(address: str) -> float:
        run = runs[address]
        ended = datetime.fromisoformat(str(run["ended_at"]))
        return (ended - datetime.fromisoformat(str(run["started_at"]))).total_seconds()

    serial, fanned = wall("pipeline/serial"), wall("pipeline/fan")
    assert fanned < serial * 2 / 3, (fanned, serial)
    listed = json.loads(cli("runs", "list", "--json", cwd=root).out)
    fan = [r for r in listed if r["parent_id"] and str(r["name"]).startswith("fan")]
    assert len(fan) == 8, fan
    nodes = {_job(ray_cluster, str(r["id"]))["driver_node_id"] for r in fan}
    assert len(nodes) == 2  # both nodes ran steps
    use = next(r for r in listed if r["name"] == "use")
    assert "got 42" in cli("runs", "logs", str(use["id"]), cwd=root).out


@pytest.mark.slow
def test_mlflow_logging_lands_in_the_run_from_a_ray_node(
    cli: Cli, make_workspace: Callable[[Mapping[str, str]], Path], ray_cluster: RayCluster
) -> None:
    """A script that logs with MLflow, unchanged: the cluster's Python has mlflow (the
    nodes run in the test's environment, which does)."""
    root = make_workspace(
        {
            "workspace.yml": "name: tracked\n",
            "compute/cpu-cluster.yml": f"""
                name: cpu-cluster
                type: ray
                address: {ray_cluster.address}
                """,
            "src/train.py": """
                import mlflow

                with mlflow.start_run():
                    mlflow.log_param("alpha", 0.5)
                    for step in range(3):
                        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
                """,
            "runconfigs/train.yml": """
                code: ../src
                command: python train.py
                compute: azureml:cpu-cluster
                """,
        }
    )
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    run = _runs(cli, root)["runconfig/train"]
    shown = json.loads(cli("runs", "show", str(run["id"]), "--json", cwd=root).out)
    assert shown["params"] == {"alpha": "0.5"}
    assert shown["metrics"]["loss"] == pytest.approx(1 / 3)
