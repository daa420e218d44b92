"""Jobs on a `type: virtualmachine` compute (Azure ML's attached VM) over real SSH: a
second account on a real sshd, so the run's user, home and Python are not mlform's.
The environment is built there from wheels downloaded here; the run logs with the SDK as
a local run does; its outputs come back; an unchanged file is never sent twice; a
timeout stops its whole process group there."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from tests.conftest import Ran, mlform_process
from tests.kinds.compute.conftest import Sshd
from tests.kinds.compute.servers import USER, running_sshd
from tests.ports import free_port

Cli = Callable[..., Ran]
SECRET = "vm-token-93b7a2"
VM = "Microsoft.Compute/virtualMachines/vm"


def _files(sshd: Sshd) -> dict[str, str]:
    return {
        "workspace.yml": "name: attached\nsecrets:\n  - name: TOKEN\n    env: VM_TOKEN\n",
        "data/numbers.csv": "x\n1\n2\n3\n",
        "data/numbers.yml": "name: numbers\ntype: uri_file\npath: numbers.csv\n",
        "environments/plain.yml": "name: plain\npip: []\n",
        "compute/vm.yml": f"""
            $schema: https://azuremlschemas.azureedge.net/latest/vmCompute.schema.json
            name: vm
            type: virtualmachine
            resource_id: /subscriptions/0/resourceGroups/rg/providers/{VM}
            host: 127.0.0.1
            ssh_settings:
              admin_username: {sshd.user}
              ssh_port: {sshd.port}
              ssh_private_key_file: {sshd.key}
            """,
        "src/job.py": """
            import getpass, os, sys
            from pathlib import Path

            import mlform

            data, out = sys.argv[1], Path(sys.argv[2])
            total = sum(int(line) for line in open(data).read().split()[1:])
            run = mlform.get_run()
            run.log("total", total)
            out.mkdir(parents=True, exist_ok=True)
            (out / "total.txt").write_text(str(total))
            print("user", getpass.getuser())
            print("python", sys.executable)
            print("token", os.environ["TOKEN"])
            print("host home", os.environ.get("HOME_ON_HOST", "absent"))
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
            compute: azureml:vm
            """,
        "runconfigs/slow.yml": """
            code: ../src
            command: sleep 600 & sleep 601
            environment: azureml:plain@latest
            compute: azureml:vm
            limits: {timeout: 3}
            """,
    }


def _runs(cli: Cli, root: Path) -> Mapping[str, dict[str, object]]:
    listed = json.loads(cli("runs", "list", "--json", cwd=root).out)
    return {str(r["runconfig"]): r for r in reversed(listed)}  # newest first: the latest


@pytest.mark.slow
def test_a_job_runs_on_another_machine_over_ssh(
    cli: Cli,
    make_workspace: Callable[[Mapping[str, str]], Path],
    sshd: Sshd,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("HOME_ON_HOST", "leaked")  # this machine's variables stay here
    monkeypatch.setenv("VM_TOKEN", SECRET)
    # a workspace's path may hold a space: every command line there quotes it
    root = make_workspace(_files(sshd)).rename(Path(tmp_path) / "my workspace")
    planned = cli("plan", cwd=root).out.splitlines()
    assert "note: runconfig/job runs on compute vm (virtualmachine)" in planned
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 1, applied.out + applied.err  # the slow job timed out
    assert "runconfig/slow" in applied.out and "timed out" in applied.out

    job = _runs(cli, root)["runconfig/job"]
    assert job["status"] == "completed", job
    shown = json.loads(cli("runs", "show", str(job["id"]), "--json", cwd=root).out)
    assert shown["metrics"]["total"] == 6
    log = cli("runs", "logs", str(job["id"]), cwd=root).out
    assert f"user {sshd.user}" in log  # another account, on its own environment
    assert f"python {sshd.home}/.mlform/venvs/" in log
    assert "token ***" in log and SECRET not in log + applied.out + applied.err
    assert "host home absent" in log
    output = Path(str(shown["run_dir"])) / "outputs" / "out" / "total.txt"
    assert output.read_text() == "6"  # brought back
    leftovers = subprocess.run(
        ["find", str(sshd.home / ".mlform" / "mirror"), "-name", ".secret-variables.sh"],
        capture_output=True,
        text=True,
    ).stdout
    assert leftovers == ""  # the secrets' file is gone with the run

    # the timed-out job's whole process group is gone there
    sleeping = subprocess.run(["pgrep", "-u", sshd.user, "-f", "sleep 60"], capture_output=True)
    assert sleeping.returncode == 1, sleeping.stdout

    # again, unchanged: no file's content is sent twice
    rerun = cli("apply", "--yes", "--rerun", "runconfig/job", cwd=root)
    assert "runconfig/job" in rerun.out
    again = _runs(cli, root)["runconfig/job"]
    assert again["id"] != job["id"] and again["status"] == "completed"
    log = cli("runs", "logs", str(again["id"]), cwd=root).out
    assert ", 0 of them sent (the others were there)" in log.splitlines()[0], log


@pytest.mark.slow
def test_a_dropped_connection_fails_the_run_and_stops_it_there(
    cli: Cli, make_workspace: Callable[[Mapping[str, str]], Path], tmp_path: Path
) -> None:
    """sshd killed mid-run, its sessions with it: the run fails at once with the reason,
    and the machine stops it (a server of its own: the session's one lives on)."""
    with running_sshd(tmp_path / "own-sshd") as own:
        files = _files(own)
        root = make_workspace(
            {
                **{k: v for k, v in files.items() if not k.startswith("runconfigs/")},
                "runconfigs/long.yml": """
                    code: ../src
                    command: echo started && sleep 619
                    environment: azureml:plain@latest
                    compute: azureml:vm
                    """,
            }
        )
        apply = mlform_process("apply", "--yes", cwd=root, start_new_session=True)
        deadline = time.monotonic() + 180
        # running there, and followed from here: its first line came back
        while not (_remote("sleep 619") and _followed(root, "started")):
            assert apply.poll() is None, apply.communicate()
            assert time.monotonic() < deadline, "the run did not start there"
            time.sleep(0.2)
        # the listening sshd and every sshd process of every session: each connection drops
        # as if the network had, and what the sessions ran is left to itself
        for pid in [own.pid, *_descendants(own.pid, "sshd")]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        out, err = apply.communicate(timeout=120)
    assert apply.returncode == 1, out + err
    assert "lost the connection to mlform-ssh@127.0.0.1" in out, out
    run = _runs(cli, root)["runconfig/long"]
    assert run["status"] == "failed"
    shown = json.loads(cli("runs", "show", str(run["id"]), "--json", cwd=root).out)
    assert "lost the connection" in str(shown["error"])
    deadline = time.monotonic() + 30  # SIGTERM, then SIGKILL after 5 s
    while _remote("sleep 619"):
        assert time.monotonic() < deadline, "the run still runs there"
        time.sleep(0.2)


def _followed(root: Path, line: str) -> bool:
    logs = (root / ".mlform" / "runs").glob("*/logs/std_log.txt")
    return any(line in log.read_text().splitlines() for log in logs)


def _remote(pattern: str) -> bool:
    return subprocess.run(["pgrep", "-u", USER, "-f", pattern], capture_output=True).returncode == 0


def _descendants(pid: int, named: str) -> list[int]:
    """The processes under `pid` whose name starts with `named`."""
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    found_named = []
    for child in (int(p) for p in found.split()):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{child}/comm").read_text().startswith(named):
                found_named.append(child)
        found_named.extend(_descendants(child, named))
    return found_named


@pytest.mark.slow
def test_ctrl_c_stops_the_run_there(
    cli: Cli, make_workspace: Callable[[Mapping[str, str]], Path], sshd: Sshd
) -> None:
    files = _files(sshd)
    root = make_workspace(
        {
            **{k: v for k, v in files.items() if not k.startswith("runconfigs/")},
            "runconfigs/forever.yml": """
                code: ../src
                command: sleep 615 & sleep 616
                environment: azureml:plain@latest
                compute: azureml:vm
                """,
        }
    )
    apply = mlform_process("apply", "--yes", cwd=root, start_new_session=True)
    deadline = time.monotonic() + 180
    while not (_remote("sleep 615") and _remote("sleep 616")):
        assert apply.poll() is None, [line for line in apply.communicate()[0].splitlines()[-8:]]
        assert time.monotonic() < deadline, "the run did not start there"
        time.sleep(0.2)
    os.killpg(apply.pid, signal.SIGINT)  # what a terminal sends its foreground group
    out, err = apply.communicate(timeout=60)
    assert apply.returncode != 0
    assert _runs(cli, root)["runconfig/forever"]["status"] == "canceled", out + err
    assert not _remote("sleep 61[56]")  # the whole process group, on the machine


def test_a_machine_that_refuses_the_connection_fails_the_run_saying_where_and_why(
    cli: Cli, make_workspace: Callable[[Mapping[str, str]], Path], tmp_path: Path
) -> None:
    """Nothing listens at the compute's ssh_port: the run fails at once, naming the
    machine and what to check, and the next apply tries again."""
    port = free_port()
    key = tmp_path / "key"
    key.write_text("not used: the connection is refused first\n")
    root = make_workspace(
        {
            "workspace.yml": "name: refused\n",
            "compute/vm.yml": f"""
                name: vm
                type: virtualmachine
                host: 127.0.0.1
                ssh_settings:
                  admin_username: {USER}
                  ssh_port: {port}
                  ssh_private_key_file: {key}
                """,
            "src/job.py": "print('never')\n",
            "environments/plain.yml": "name: plain\npip: []\n",
            "runconfigs/job.yml": """
                code: ../src
                command: python job.py
                environment: azureml:plain@latest
                compute: azureml:vm
                """,
        }
    )
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 1, applied.out + applied.err
    assert (
        f"cannot reach {USER}@127.0.0.1:{port}: connection refused; check the compute's "
        "host and ssh_port, and that sshd runs there"
    ) in applied.out, applied.out
    assert "Traceback" not in applied.out + applied.err
    assert _runs(cli, root)["runconfig/job"]["status"] == "failed"
    assert "runconfig/job" in cli("plan", cwd=root).out  # not recorded as done
