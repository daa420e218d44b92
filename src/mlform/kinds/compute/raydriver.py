"""A run on a Ray cluster, as the job's entrypoint runs it on a node.

This file is the job's entrypoint (`python _mlform_driver.py`), copied into the job's
working_dir: it imports nothing of mlform, as it runs in whatever Python the cluster gives
the job, and nothing beyond the standard library but Ray itself for a distributed run.

The working_dir holds `mlform-job.json` and the run's files at `mirror/<local path>`.
The command runs with every local path it was given moved under `mirror/`, in its own
process group, which dies with the process that started it (as Ray's own job supervisor
does for the entrypoint). Its output goes to the job's log (what Ray shows) and, with
the run's metrics, to the exchange folder as it grows; when it ends the run's files are
copied there and `.exit` is written last, which tells the apply that started it that
everything is in place.

With `instances` > 1, each instance is a Ray actor in one placement group, every one
running the command with PyTorch's variables (`MASTER_ADDR`, `MASTER_PORT`, `RANK`,
`WORLD_SIZE`, `LOCAL_RANK`, `NODE_RANK`) as `torchrun` sets them; rank 0's folder is
the run's, and the others' output goes to `logs/user_logs/std_log_process_<rank>.txt`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import traceback

JOB = "mlform-job.json"
SECRETS = "mlform-secrets.json"
SENT = ("snapshot", "inputs", ".sdk")  # what the run was given: not sent back
LOG = "logs/std_log.txt"
METRICS = "metrics.csv"
EVERY = 0.5  # seconds between two copies of the metrics to the exchange folder


class Job:
    """The job as `mlform-job.json` describes it, in the working_dir `here`."""

    def __init__(self, here: str) -> None:
        self.here = here
        with open(os.path.join(here, JOB), encoding="utf-8") as handle:
            data = json.load(handle)
        self.data = data
        roots = sorted(data["roots"], key=len, reverse=True)
        self.pattern = re.compile("|".join(re.escape(r) for r in roots))
        self.exchange: str = data["exchange"]
        self.secrets: dict[str, str] = {}
        held = os.path.join(here, SECRETS)
        if os.path.exists(held):
            with open(held, encoding="utf-8") as handle:
                self.secrets = json.load(handle)
        self.hidden = sorted((v for v in self.secrets.values() if v), key=len, reverse=True)

    def moved(self, text: str) -> str:
        """A local path (or a text holding some) as it is on this node."""
        return self.pattern.sub(lambda m: f"{self.here}/mirror{m[0]}", text)

    @property
    def run_dir(self) -> str:
        return self.moved(self.data["run_dir"])

    def mask(self, line: bytes) -> bytes:
        for value in self.hidden:
            line = line.replace(value.encode(), b"***")
        return line

    def environment(self, extra: dict[str, str]) -> dict[str, str]:
        env = dict(os.environ)
        given = {k: self.moved(v) for k, v in self.data["env"].items()}
        given.update({k: self.moved(v) for k, v in self.secrets.items()})
        # the run's own path first, then Ray's (its py_modules: the SDK's package)
        ray_path = os.environ.get("PYTHONPATH", "")
        env.update(given)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (given.get("PYTHONPATH"), ray_path) if p)
        env.update(extra)
        return env


def working_folders(cwd: str, run_dir: str) -> None:
    """`./outputs` and `./logs` in the working directory are the run folder's own (the
    links the archive may not have kept). Instances on one node share the folder: one at
    a time."""
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, ".working-folders.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _link_working_folders(cwd, run_dir)


def _link_working_folders(cwd: str, run_dir: str) -> None:
    for name in ("outputs", "logs"):
        inside, kept = os.path.join(cwd, name), os.path.join(run_dir, name)
        os.makedirs(kept, exist_ok=True)
        if os.path.islink(inside):
            continue
        if os.path.isdir(inside):
            shutil.copytree(inside, kept, dirs_exist_ok=True)
            shutil.rmtree(inside)
        elif os.path.exists(inside):
            os.remove(inside)
        os.symlink(os.path.join("..", name), inside)


def execute(job: Job, extra: dict[str, str], logs: list[str], keeper: bool) -> int:
    """Run the command with `extra` variables, its output masked into each of `logs` (and
    this process's own output); `keeper`: its metrics and files go to the exchange folder.
    Return its exit code."""
    run_dir, cwd = job.run_dir, job.moved(job.data["cwd"])
    working_folders(cwd, run_dir)
    for path in logs:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    outs = [open(path, "ab") for path in logs]  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        ["/bin/bash", "-c", job.moved(job.data["command"])],
        cwd=cwd,
        env=job.environment(extra),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    # the command's group dies with this process, however it ends
    subprocess.Popen(
        f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 1; done; kill -9 -{process.pid}",
        shell=True,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def stop(signum: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
    done = threading.Event()
    follower = threading.Thread(target=follow_metrics, args=(run_dir, job.exchange, done))
    if keeper:
        follower.start()
    assert process.stdout is not None
    for line in iter(process.stdout.readline, b""):
        shown = job.mask(line)
        sys.stdout.buffer.write(shown)
        sys.stdout.flush()
        for out in outs:
            out.write(shown)
            out.flush()
    code = process.wait()
    for out in outs:
        out.close()
    done.set()
    if keeper:
        follower.join()
        bring_back(run_dir, job.exchange)
    return code


def follow_metrics(run_dir: str, exchange: str, done: threading.Event) -> None:
    """Append what the run's metrics gained to the exchange folder's copy, every `EVERY`
    seconds and once more at the end."""
    offset = 0
    source, target = os.path.join(run_dir, METRICS), os.path.join(exchange, METRICS)
    while True:
        finished = done.wait(EVERY)
        try:
            with open(source, "rb") as handle:
                handle.seek(offset)
                new = handle.read()
        except FileNotFoundError:
            new = b""
        end = new.rfind(b"\n") + 1  # whole lines only: the reader parses each
        if end:
            with open(target, "ab") as out:
                out.write(new[:end])
            offset += end
        if finished:
            return


def bring_back(run_dir: str, exchange: str) -> None:
    """Copy the run's files (not what it was given, not what was followed) to the
    exchange folder."""
    for folder, names, files in os.walk(run_dir):
        relative = os.path.relpath(folder, run_dir)
        top = relative.split(os.sep)[0]
        if top in SENT:
            names[:] = []
            continue
        for name in files:
            path = os.path.normpath(os.path.join(relative, name))
            if path in (LOG, METRICS) or os.path.islink(os.path.join(folder, name)):
                continue
            target = os.path.join(exchange, path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(os.path.join(folder, name), target)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def distributed(job: Job) -> int:
    """`instances` copies of the command, one per bundle of a placement group."""
    # start-up: Ray for a distributed run only (the job's Python has it, on a node)
    import ray
    from ray.util.placement_group import placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    ray.init()  # the cluster the job runs on
    count = int(job.data["instances"])
    bundle: dict[str, float] = {"CPU": float(job.data.get("num_cpus") or 1)}
    if job.data.get("num_gpus"):
        bundle["GPU"] = float(job.data["num_gpus"])
    if job.data.get("memory"):
        bundle["memory"] = float(job.data["memory"])
    group = placement_group([bundle] * count, strategy="SPREAD")
    ray.get(group.ready())

    @ray.remote
    class Instance:
        def where(self) -> tuple[str, int, str]:
            ip = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
            return ip, free_port(), ray.get_runtime_context().get_node_id()

        def run(self, extra: dict[str, str], logs: list[str], keeper: bool) -> int:
            return execute(Job(os.getcwd()), extra, logs, keeper)

    instances = [
        Instance.options(  # type: ignore[attr-defined]
            num_cpus=bundle["CPU"],
            num_gpus=bundle.get("GPU", 0),
            scheduling_strategy=PlacementGroupSchedulingStrategy(
                placement_group=group, placement_group_bundle_index=rank
            ),
        ).remote()
        for rank in range(count)
    ]
    places: list[tuple[str, int, str]] = ray.get([i.where.remote() for i in instances])
    master, port, _ = places[0]
    nodes = list(dict.fromkeys(node for _, _, node in places))
    runs = []
    for rank, instance in enumerate(instances):
        node = places[rank][2]
        here = [r for r, (_, _, other) in enumerate(places) if other == node]
        extra = {
            "MASTER_ADDR": master,
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "WORLD_SIZE": str(count),
            "LOCAL_RANK": str(here.index(rank)),
            "LOCAL_WORLD_SIZE": str(len(here)),
            "NODE_RANK": str(nodes.index(node)),
        }
        own = os.path.join(job.exchange, f"logs/user_logs/std_log_process_{rank}.txt")
        logs = [os.path.join(job.exchange, LOG), own] if rank == 0 else [own]
        runs.append(instance.run.remote(extra, logs, rank == 0))
    codes: list[int] = ray.get(runs)
    return next((c for c in codes if c != 0), 0)


def main() -> int:
    job = Job(os.getcwd())
    os.makedirs(os.path.join(job.exchange, "logs"), exist_ok=True)
    code = 1
    try:
        if int(job.data.get("instances", 1)) > 1:
            code = distributed(job)
        else:
            code = execute(job, {}, [os.path.join(job.exchange, LOG)], keeper=True)
    except Exception:
        # the run's log says why the driver failed, as well as Ray's job log
        said = f"mlform: the run's driver on the Ray cluster failed:\n{traceback.format_exc()}"
        print(said, flush=True)
        with open(os.path.join(job.exchange, LOG), "a", encoding="utf-8") as out:
            out.write(said)
    finally:
        # written last: the apply reads everything else once it sees this
        with open(os.path.join(job.exchange, ".exit"), "w", encoding="utf-8") as out:
            out.write(str(code))
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
