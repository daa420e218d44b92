"""Jobs on a `type: docker` compute, on the real engine (scripts/docker-up.sh): the run is
hermetic (its environment's image, not this machine's Python), logs with the SDK as a
local run does, reads its data read-only, writes its outputs back, runs with the
compute's limits, and a timeout stops its container; nothing is left running."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import docker
import pytest

from tests.conftest import Ran, mlform_process
from tests.containers.conftest import BASE_IMAGE, client  # noqa: F401  (fixture)

Cli = Callable[..., Ran]
SECRET = "box-token-5e1f0c"

FILES = {
    "workspace.yml": "name: boxed\nsecrets:\n  - name: TOKEN\n    env: BOX_TOKEN\n",
    "data/numbers.csv": "x\n1\n2\n3\n",
    "data/numbers.yml": "name: numbers\ntype: uri_file\npath: numbers.csv\n",
    "environments/plain.yml": f"name: plain\nimage: {BASE_IMAGE}\npip: []\n",
    "compute/box.yml": """
        $schema: https://azuremlschemas.azureedge.net/latest/amlCompute.schema.json
        name: box
        type: docker
        resources: {cpus: 1, memory: 256m}
        """,
    "src/job.py": """
        import os, sys
        from pathlib import Path

        import mlform

        data, out = sys.argv[1], Path(sys.argv[2])
        total = sum(int(line) for line in open(data).read().split()[1:])
        run = mlform.get_run()
        run.log("total", total)
        out.mkdir(parents=True, exist_ok=True)
        (out / "total.txt").write_text(str(total))
        print("python", sys.executable)
        try:
            Path("scribble.txt").write_text("no")
        except OSError as err:
            print("code is read-only:", type(err).__name__)
        try:
            open(data, "a").write("4\\n")
        except OSError as err:
            print("data is read-only:", type(err).__name__)
        def first(*paths):  # cgroup v2's file, else v1's
            for path in paths:
                if os.path.exists(path):
                    return open(path).read().split()[0]
        print("cpu limit", first("/sys/fs/cgroup/cpu.max", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"))
        print("memory limit", first(
            "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"
        ))
        print("host home", os.environ.get("HOME_ON_HOST", "absent"))
        print("token", os.environ["TOKEN"])
        """,
    "runconfigs/job.yml": """
        code: ../src
        command: python job.py ${{inputs.numbers}} ${{outputs.out}}
        inputs:
          numbers: {type: uri_file, path: azureml:numbers@latest}
        outputs:
          out: {type: uri_folder}
        environment: azureml:plain@latest
        environment_variables:
          TOKEN: ${{secrets.TOKEN}}
        compute: azureml:box
        """,
    "runconfigs/slow.yml": """
        code: ../src
        command: sleep 600
        environment: azureml:plain@latest
        compute: azureml:box
        limits: {timeout: 3}
        """,
}


# The compute, environment and data of FILES, without its jobs or secrets.
BOX = {
    **{k: v for k, v in FILES.items() if not k.startswith("runconfigs/")},
    "workspace.yml": "name: boxed\n",
}


def _runs(cli: Cli, root: Path) -> Mapping[str, dict[str, object]]:
    listed = json.loads(cli("runs", "list", "--json", cwd=root).out)
    return {str(r["runconfig"]): r for r in listed}


@pytest.mark.slow
def test_a_job_runs_in_a_container_of_its_environment(
    cli: Cli,
    make_workspace: Callable[[Mapping[str, str]], Path],
    client: docker.DockerClient,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOME_ON_HOST", "leaked")  # this machine's variables stay out
    monkeypatch.setenv("BOX_TOKEN", SECRET)
    root = make_workspace(FILES)
    planned = cli("plan", cwd=root).out.splitlines()
    assert "note: runconfig/job runs on compute box (docker)" in planned
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 1, applied.out + applied.err  # the slow job timed out
    assert "runconfig/slow" in applied.out and "timed out" in applied.out

    runs = _runs(cli, root)
    job = runs["runconfig/job"]
    assert job["status"] == "completed", job
    shown = json.loads(cli("runs", "show", str(job["id"]), "--json", cwd=root).out)
    assert shown["metrics"]["total"] == 6
    assert shown["environment"].startswith("plain:")
    log = cli("runs", "logs", str(job["id"]), cwd=root).out
    assert "python /opt/mlform/venv/bin/python" in log  # the image's, not this machine's
    assert "code is read-only: OSError" in log
    assert "data is read-only: OSError" in log
    assert "cpu limit 100000" in log  # 1 CPU: 100,000 µs of every 100,000
    assert f"memory limit {256 * 1024 * 1024}" in log
    assert "host home absent" in log
    # the secret reached the job, masked in its log, through a private file since removed
    assert "token ***" in log and SECRET not in log + applied.out + applied.err
    assert not (Path(str(shown["run_dir"])) / ".secret-variables").exists()
    outputs = Path(str(shown["run_dir"])) / "outputs" / "out" / "total.txt"
    assert outputs.read_text() == "6"  # written back

    slow = runs["runconfig/slow"]
    assert slow["status"] == "timed_out", slow
    # nothing left: every run's container is removed when it ends
    assert not client.containers.list(all=True, filters={"label": "mlform.run"})


@pytest.mark.slow
def test_pipeline_steps_run_on_their_docker_compute(
    cli: Cli,
    make_workspace: Callable[[Mapping[str, str]], Path],
    client: docker.DockerClient,  # noqa: F811
) -> None:
    root = make_workspace(
        {
            **BOX,
            "pipelines/p.yml": """
                type: pipeline
                settings:
                  default_compute: azureml:box
                  default_environment: azureml:plain@latest
                inputs:
                  numbers: {type: uri_file, path: azureml:numbers@latest}
                jobs:
                  add:
                    code: ../src
                    command: >-
                      python -c "import sys; open(sys.argv[2], 'w').write(str(sum(int(x)
                      for x in open(sys.argv[1]).read().split()[1:])))"
                      ${{inputs.numbers}} ${{outputs.total}}
                    inputs: {numbers: "${{parent.inputs.numbers}}"}
                    outputs: {total: {type: uri_file}}
                  show:
                    code: ../src
                    command: >-
                      python -c "import sys; print('total is', open(sys.argv[1]).read(),
                      'in', sys.executable)" ${{inputs.total}}
                    inputs: {total: "${{parent.jobs.add.outputs.total}}"}
                """,
        }
    )
    planned = cli("plan", cwd=root).out.splitlines()
    assert "note: pipeline/p runs on compute box (docker)" in planned
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    steps = [r for r in json.loads(cli("runs", "list", "--json", cwd=root).out) if r["parent_id"]]
    assert {r["status"] for r in steps} == {"completed"} and len(steps) == 2
    show = next(r for r in steps if r["name"] == "show")
    log = cli("runs", "logs", str(show["id"]), cwd=root).out
    assert "total is 6 in /opt/mlform/venv/bin/python" in log  # in the environment's image
    assert not client.containers.list(all=True, filters={"label": "mlform.run"})


@pytest.mark.slow
def test_a_sweeps_trials_run_in_containers_of_its_compute(
    cli: Cli,
    make_workspace: Callable[[Mapping[str, str]], Path],
    client: docker.DockerClient,  # noqa: F811
) -> None:
    root = make_workspace(
        {
            **BOX,
            "src/trial.py": """
                import sys
                import mlform

                x = float(sys.argv[1])
                mlform.get_run().log("score", -((x - 2) ** 2))
                print("trial", x, "in", sys.executable)
                """,
            "runconfigs/sweep.yml": """
                $schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
                type: sweep
                trial:
                  code: ../src
                  command: python trial.py ${{search_space.x}}
                  environment: azureml:plain@latest
                compute: azureml:box
                sampling_algorithm: grid
                search_space:
                  x: {type: choice, values: [1, 2, 3]}
                objective: {goal: maximize, primary_metric: score}
                limits: {max_total_trials: 3, max_concurrent_trials: 2}
                """,
        }
    )
    planned = cli("plan", cwd=root).out.splitlines()
    assert "note: runconfig/sweep runs on compute box (docker)" in planned
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    assert re.search(r"3 trials \(3 completed\); best trial \d \(x=2\)", applied.out), applied.out
    trials = [
        r
        for r in json.loads(cli("runs", "list", "--json", cwd=root).out)
        if str(r["runconfig"]).startswith("runconfig/sweep/trial")
    ]
    assert len(trials) == 3 and {r["status"] for r in trials} == {"completed"}
    for trial in trials:
        shown = json.loads(cli("runs", "show", str(trial["id"]), "--json", cwd=root).out)
        assert shown["compute"] == "box" and shown["target"] == "docker", shown
        log = cli("runs", "logs", str(trial["id"]), cwd=root).out
        assert "in /opt/mlform/venv/bin/python" in log  # in the environment's image
    assert not client.containers.list(all=True, filters={"label": "mlform.run"})


@pytest.mark.slow
def test_ctrl_c_stops_and_removes_the_container(
    cli: Cli,
    make_workspace: Callable[[Mapping[str, str]], Path],
    client: docker.DockerClient,  # noqa: F811
) -> None:
    root = make_workspace(
        {
            **{k: v for k, v in FILES.items() if not k.startswith("runconfigs/")},
            "runconfigs/forever.yml": """
                code: ../src
                command: sleep 614
                environment: azureml:plain@latest
                compute: azureml:box
                """,
        }
    )
    apply = mlform_process("apply", "--yes", cwd=root, start_new_session=True)

    def containers() -> list[str]:
        """The containers of this workspace's runs."""
        runs = {p.name for p in (root / ".mlform" / "runs").glob("forever_*")}
        found = client.containers.list(all=True, filters={"label": "mlform.run"})
        return [c.name for c in found if c.labels.get("mlform.run") in runs]

    deadline = time.monotonic() + 300  # the environment's image is built first
    while not containers():
        assert apply.poll() is None, apply.communicate()
        assert time.monotonic() < deadline, "the container did not start"
        time.sleep(0.2)
    time.sleep(0.5)
    os.killpg(apply.pid, signal.SIGINT)  # what a terminal sends its foreground group
    out, err = apply.communicate(timeout=60)
    assert apply.returncode != 0
    assert _runs(cli, root)["runconfig/forever"]["status"] == "canceled", out + err
    assert containers() == []  # stopped and removed, on the engine
