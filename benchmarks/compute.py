"""Submitting and completing a no-op job on another machine: mlform against the bare tools.

Targets (each a ratio of wall clocks, whole processes, medians of rounds taking turns):
- ray: `mlform apply --yes --rerun runconfig/noop-ray` on a `type: ray` compute against
  `ray job submit --working-dir SNAPSHOT -- python noop.py` (which, like mlform, uploads
  the code, submits the job, follows its log and waits for its end): mlform ≤ 1.25× its time;
- ssh: `mlform apply --yes --rerun runconfig/noop-vm` on a `type: virtualmachine` compute
  against a bare `ssh host true` plus `rsync -a` of the same snapshot (two processes,
  summed): mlform ≤ 1.5× their time;
- a changed file: after one file of the snapshot changes, the next run on the machine
  sends exactly that file (the run's log counts the files sent).

Warm on both sides: the cluster, sshd and the machine's environment are up, the packages
Ray keeps and the blobs the machine keeps are in place (an untimed first round), and the
rsync target already holds the snapshot. Both Ray nodes and sshd run on this machine, on
127.0.0.1, as the tests start them (`tests/kinds/compute/servers.py`). SSH is timed
first, before the Ray cluster starts: its idle processes (raylet, GCS, dashboard) take
CPU all the time, which would slow whichever side of the SSH comparison uses more of it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from peers import BYTECODE, WORK, WorkerFailed, at_most, duration, timed, times, verdict

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.kinds.compute.servers import (  # noqa: E402  (after the path it is found on)
    RayCluster,
    Sshd,
    Unavailable,
    running_ray,
    running_sshd,
)

describe = "a no-op job elsewhere: mlform on ray vs `ray job submit`, on SSH vs ssh + rsync"

ROUNDS, QUICK_ROUNDS = 7, 3
TARGET_RAY = 1.25  # mlform ÷ ray job submit, at most
TARGET_SSH = 1.5  # mlform ÷ (ssh true + rsync), at most
MLFORM = [sys.executable, "-m", "mlform.cli.main"]
RAY = Path(sys.executable).with_name("ray")
SNAPSHOT = {  # the job's code: a no-op and a few files beside it, as a small project has
    "noop.py": "print('done')\n",
    **{f"lib/module_{i}.py": f"VALUE = {i}\n" * 40 for i in range(20)},
    "README.md": "A no-op job.\n" * 50,
}


def _workspace(folder: Path, sshd: Sshd) -> Path:
    root = folder / "workspace"
    shutil.rmtree(root, ignore_errors=True)
    files = {
        "workspace.yml": "name: compute-bench\n",
        "environments/plain.yml": "name: plain\npip: []\n",
        "compute/vm.yml": (
            f"name: vm\ntype: virtualmachine\nhost: 127.0.0.1\nssh_settings:\n"
            f"  admin_username: {sshd.user}\n  ssh_port: {sshd.port}\n"
            f"  ssh_private_key_file: {sshd.key}\n"
        ),
        "runconfigs/noop-local.yml": "code: ../src\ncommand: python noop.py\n",
        "runconfigs/noop-vm.yml": (
            "code: ../src\ncommand: python noop.py\ncompute: vm\n"
            "environment: azureml:plain@latest\n"
        ),
        **{f"src/{name}": text for name, text in SNAPSHOT.items()},
    }
    _write(root, files)
    return root


def _add_cluster(root: Path, cluster: RayCluster) -> None:
    _write(
        root,
        {
            "compute/cluster.yml": f"name: cluster\ntype: ray\naddress: {cluster.address}\n",
            "runconfigs/noop-ray.yml": "code: ../src\ncommand: python noop.py\ncompute: cluster\n",
        },
    )


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _mlform(root: Path, job: str) -> float:
    done = timed([*MLFORM, "apply", "--yes", "--rerun", f"runconfig/{job}"], cwd=root, env=BYTECODE)
    if f"runconfig/{job} ran" not in done.out:
        raise WorkerFailed(f"runconfig/{job} did not run:\n{done.out[-2000:]}")
    return done.seconds


def _ray_submit(cluster: RayCluster, snapshot: Path) -> float:
    command = [
        str(RAY),
        "job",
        "submit",
        "--address",
        cluster.address,
        "--working-dir",
        str(snapshot),
        "--",
        "python",
        "noop.py",
    ]
    done = timed(command, cwd=snapshot, env={"RAY_USAGE_STATS_ENABLED": "0"})
    if "done" not in done.out:
        raise WorkerFailed(f"ray job submit printed no job output:\n{done.out[-2000:]}")
    return done.seconds


def _ssh_rsync(sshd: Sshd, snapshot: Path) -> float:
    ssh = [
        "ssh",
        "-p",
        str(sshd.port),
        "-i",
        str(sshd.key),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "BatchMode=yes",
    ]
    target = f"{sshd.user}@127.0.0.1:bench-snapshot/"
    first = timed([*ssh, f"{sshd.user}@127.0.0.1", "true"], cwd=snapshot)
    second = timed(["rsync", "-a", "-e", " ".join(ssh), f"{snapshot}/", target], cwd=snapshot)
    return first.seconds + second.seconds


def _sent(root: Path) -> str:
    """The line of the latest vm run's log that counts the files sent."""
    runs = sorted((root / ".mlform" / "runs").glob("noop-vm_*"), key=os.path.getmtime)
    log = (runs[-1] / "logs" / "std_log.txt").read_text()
    return next(line for line in log.splitlines() if "of them sent" in line)


def _install_rsync() -> None:
    if shutil.which("rsync"):
        return
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "rsync"],
        check=True,
        capture_output=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )


def run(*, quick: bool = False) -> bool:
    rounds = QUICK_ROUNDS if quick else ROUNDS
    folder = WORK / "compute"
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as servers:
        try:
            _install_rsync()
            home = servers.enter_context(tempfile.TemporaryDirectory(prefix="sshd-", dir=folder))
            sshd = servers.enter_context(running_sshd(Path(home)))
            root = _workspace(folder, sshd)
            ssh = _compare_ssh(root, sshd, rounds)
            cluster = servers.enter_context(running_ray(nodes=1))
            _add_cluster(root, cluster)
            ray = _compare_ray(root, cluster, rounds)
        except (Unavailable, RuntimeError, subprocess.CalledProcessError) as err:
            print(f"   the targets cannot be started here, so there is no figure: {err}")
            return False
        except WorkerFailed as err:
            print(f"   a timed run failed, so there is no figure. {err}")
            return False
    return _report(rounds, ssh, ray)


@dataclass(frozen=True)
class _Ssh:
    ours: list[float]
    theirs: list[float]
    local: list[float]
    unchanged: str
    changed: str
    startup: float


def _compare_ssh(root: Path, sshd: Sshd, rounds: int) -> _Ssh:
    snapshot = root / "src"
    timed(
        [*MLFORM, "apply", "--yes"], cwd=root, env=BYTECODE
    )  # untimed: the environment, the blobs
    _ssh_rsync(sshd, snapshot)
    ours, theirs, local = [], [], []
    for _ in range(rounds):  # taking turns: a machine busier for a while slows both alike
        ours.append(_mlform(root, "noop-vm"))
        theirs.append(_ssh_rsync(sshd, snapshot))
        local.append(_mlform(root, "noop-local"))
    unchanged = _sent(root)
    # content the machine has never had (its blobs outlive a benchmark run)
    (snapshot / "lib" / "module_3.py").write_text(f"VALUE = {time.time_ns()}\n")
    _mlform(root, "noop-vm")
    changed = _sent(root)
    startup = statistics.median(
        timed([*MLFORM, "--version"], cwd=root, env=BYTECODE).seconds for _ in range(3)
    )
    return _Ssh(ours, theirs, local, unchanged, changed, startup)


def _compare_ray(root: Path, cluster: RayCluster, rounds: int) -> tuple[list[float], list[float]]:
    snapshot = root / "src"
    timed([*MLFORM, "apply", "--yes"], cwd=root, env=BYTECODE)  # untimed: the packages Ray keeps
    _ray_submit(cluster, snapshot)
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(_mlform(root, "noop-ray"))
        theirs.append(_ray_submit(cluster, snapshot))
    return ours, theirs


def _report(rounds: int, ssh: _Ssh, ray: tuple[list[float], list[float]]) -> bool:
    ours_ray, theirs_ray = ray
    ray_ratio = statistics.median(ours_ray) / statistics.median(theirs_ray)
    ssh_ratio = statistics.median(ssh.ours) / statistics.median(ssh.theirs)
    one_file = ", 1 of them sent" in ssh.changed
    rows = [
        (
            "no-op job on ray (apply vs ray job submit)",
            duration(statistics.median(ours_ray)),
            duration(statistics.median(theirs_ray)),
            times(ray_ratio, up=True),
            f"≤ {TARGET_RAY:g}×",
            at_most(ray_ratio, TARGET_RAY),
        ),
        (
            "no-op job over SSH (apply vs ssh true + rsync)",
            duration(statistics.median(ssh.ours)),
            duration(statistics.median(ssh.theirs)),
            times(ssh_ratio, up=True),
            f"≤ {TARGET_SSH:g}×",
            at_most(ssh_ratio, TARGET_SSH),
        ),
    ]
    width = max(len(row[0]) for row in rows)
    print(f"   {len(SNAPSHOT)} files in the snapshot; {rounds} rounds taking turns, medians, warm")
    print(f"   {'':<{width}}  {'mlform':>10}  {'bare tool':>10}  {'ratio':>7}  target")
    for what, mine, peer, ratio, target, met in rows:
        print(f"   {what:<{width}}  {mine:>10}  {peer:>10}  {ratio:>7}  {target:<6} {verdict(met)}")
    print("   SSH timed first, before the Ray cluster started")
    print(f"   unchanged rerun over SSH: {ssh.unchanged.removeprefix('mlform: ')}")
    print(
        f"   one file changed:         {ssh.changed.removeprefix('mlform: ')}  {verdict(one_file)}"
    )
    print(
        f"   the same apply of the job on this machine (compute: local) takes "
        f"{duration(statistics.median(ssh.local))}, of which {duration(ssh.startup)} is "
        "starting the process (`--version`)"
    )
    return all(row[-1] for row in rows) and one_file
