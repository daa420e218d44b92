"""The ray target: a run submitted to a Ray cluster through Ray's Job Submission API.

The job's working_dir is the run's folder (its snapshot, data inputs) at
`mirror/<local path>`, with the job's description and `raydriver.py` as its entrypoint;
Ray uploads it by content, and the SDK's package once (`py_modules`). The environment's
pip list is the job's `pip`, which Ray installs on the node, once per list. Every
variable is in the job's description, never in its runtime_env, which Ray's dashboard
shows to anyone; a secret one is in a file of its own in the working_dir.

Ray brings no file back from a node, so a run hands its log, metrics and files back
through a folder every node and this machine reach: the default datastore's folder
(`exchange`), under `.ray-runs/<run id>/`. The log and metrics are followed there as they
grow; `.exit`, which the driver writes last, says the rest is in place. Stopping a run
stops its Ray job, which ends the command's whole process tree on every node. The Ray
job's id is `mlform-<run id>`, so an apply that died is found again by the next one,
which re-attaches to its job (`reattach`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlform import private
from mlform.compute import Launch, RayCluster, said, secret_variables
from mlform.errors import ApplyError
from mlform.masking import Masker
from mlform.tracking import protocol

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

_POLL_EVERY = 0.25  # seconds between two looks at the exchange folder
_STATUS_EVERY = 1.0  # … and at the job's status on the cluster
_STOP_WAIT = 15.0  # seconds a stopped job has to end (Ray kills it after 3)
_LOST_AFTER = 30.0  # seconds the cluster may not answer before the run is lost
_FOLLOWED = (f"{protocol.LOGS}/std_log.txt", "metrics.csv")
_DRIVER = "_mlform_driver.py"
_TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
EXCHANGE = ".ray-runs"  # under the exchange folder: one folder per run


def client(address: str) -> JobSubmissionClient:
    # start-up: Ray's SDK only for a run on a Ray cluster
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError as err:
        raise ApplyError(
            f"a ray compute needs Ray's SDK on this machine: pip install 'mlform[ray]' ({err})"
        ) from None
    # Ray's SDK says each package it uploads on stderr: the run's log says what matters
    logging.getLogger("ray").setLevel(logging.WARNING)
    with _said("reaching the cluster", address):
        return JobSubmissionClient(address)


def job_id(run_id: str) -> str:
    return f"mlform-{run_id}"


class RayHandle:
    def __init__(
        self,
        launch: Launch,
        address: str,
        submission: str,
        exchange: Path,
        base: int,
        ray_client: JobSubmissionClient,
    ) -> None:
        self.launch = launch
        self.address = address
        self.submission = submission
        self.exchange = exchange
        # `base`: how much of the local log mlform wrote before the job's own lines
        self.ident = json.dumps(
            {"address": address, "job": submission, "exchange": str(exchange), "log": base}
        )
        self.client = ray_client
        self.offsets = dict.fromkeys(_FOLLOWED, 0)
        self.masker = Masker(launch.secrets).stream()
        self.looked = self.asked = 0.0
        self.answered = time.monotonic()
        self._code: int | None = None

    def poll(self) -> int | None:
        if self._code is not None:
            return self._code
        now = time.monotonic()
        if now - self.looked < _POLL_EVERY:
            return None
        self.looked = now
        self._follow()
        if (self.exchange / ".exit").exists():
            return self._end(self._exit_code())
        if now - self.asked < _STATUS_EVERY:
            return None
        self.asked = now
        status, message = self._status()
        if status in _TERMINAL:
            if (self.exchange / ".exit").exists():  # it ended between the two looks
                return self._end(self._exit_code())
            return self._end(self._lost(status, message))
        return None

    def stop(self) -> int:
        if self._code is not None:
            return self._code
        with contextlib.suppress(ApplyError), _said("stopping the run", self.address):
            self.client.stop_job(self.submission)
        # until Ray says the job has ended: then nothing of it runs on any node
        deadline = time.monotonic() + _STOP_WAIT
        while time.monotonic() < deadline:
            with contextlib.suppress(ApplyError):
                if self._status()[0] in _TERMINAL:
                    break
            time.sleep(0.2)
        # what the driver said, when it could say it before it was stopped
        return self._end(self._exit_code() if (self.exchange / ".exit").exists() else -15)

    def _status(self) -> tuple[str, str]:
        """The job's status on the cluster and Ray's message; an ApplyError once the
        cluster has not answered for `_LOST_AFTER` seconds."""
        try:
            info = self.client.get_job_info(self.submission)
        except Exception as err:  # Ray's SDK raises RuntimeError, requests' errors, …
            if time.monotonic() - self.answered < _LOST_AFTER:
                return "", ""
            raise ApplyError(
                f"lost the Ray cluster at {self.address}: it has not answered for "
                f"{_LOST_AFTER:.0f}s ({type(err).__name__}: {err})"
            ) from err
        self.answered = time.monotonic()
        return str(getattr(info.status, "value", info.status)), str(info.message or "")

    def _lost(self, status: str, message: str) -> int:
        """A job that ended without its driver saying so (its node died, its environment
        could not be set up): Ray's own log and message go into the run's log."""
        with contextlib.suppress(Exception):
            said = self.client.get_job_logs(self.submission)
            self._write_log(said.encode(errors="replace"))
        self._write_log(
            f"mlform: the Ray job {self.submission} ended {status.lower()} before the run "
            f"could: {message}\n".encode()
        )
        return -15 if status == "STOPPED" else 1

    def _exit_code(self) -> int:
        try:
            return int((self.exchange / ".exit").read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return 1

    def _follow(self) -> None:
        """Read what the log and the metrics gained since the last look."""
        local = self.launch.log.parent.parent
        for name, offset in self.offsets.items():
            try:
                with (self.exchange / name).open("rb") as handle:
                    handle.seek(offset)
                    new = handle.read()
            except OSError:
                continue
            if not new:
                continue
            self.offsets[name] = offset + len(new)
            if name.startswith(protocol.LOGS):
                self._write_log(new)
                continue
            with (local / name).open("ab") as out:
                out.write(new)

    def _write_log(self, data: bytes) -> None:
        with self.launch.log.open("ab") as out:
            out.write(self.masker.feed(data))

    def _end(self, code: int) -> int:
        self._follow()
        with self.launch.log.open("ab") as out:
            out.write(self.masker.flush())
        local = self.launch.log.parent.parent
        if self.exchange.is_dir():
            for path in sorted(self.exchange.rglob("*")):
                relative = path.relative_to(self.exchange).as_posix()
                if not path.is_file() or relative in _FOLLOWED or relative == ".exit":
                    continue
                target = local / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
            shutil.rmtree(self.exchange, ignore_errors=True)
        self._code = code
        return code


def _said(what: str, address: str) -> contextlib.AbstractContextManager[None]:
    """A failure of Ray's SDK as an ApplyError that says what failed where."""
    return said(what, f"the Ray cluster at {address}")


class RayTarget:
    def start(self, launch: Launch) -> RayHandle:
        cluster = launch.cluster
        assert cluster is not None and cluster.exchange is not None
        run_dir = launch.log.parent.parent
        run_id = launch.env.get("MLFORM_RUN_ID", run_dir.name)
        exchange = cluster.exchange / EXCHANGE / run_id
        try:
            exchange.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ApplyError(
                f"the exchange folder {exchange} of the Ray cluster's runs cannot be made: {err}"
            ) from None
        staging = run_dir / ".ray-job"
        package = _package()
        _stage(launch, staging, exchange, cluster, package)
        submission = job_id(run_id)
        runtime_env = _runtime_env(cluster, launch, staging, package)
        distributed = launch.instances > 1
        ray_client = client(cluster.address)
        # Ray reads a .gitignore of the working_dir as excludes: the snapshot already
        # left out what its ignore files say, and data inputs must not lose a file
        os.environ["RAY_RUNTIME_ENV_IGNORE_GITIGNORE"] = "1"
        try:
            with _said("submitting the run", cluster.address):
                ray_client.submit_job(
                    entrypoint=f"python {_DRIVER}",
                    submission_id=submission,
                    runtime_env=runtime_env,
                    metadata={"mlform_run": run_id},
                    # a distributed run's driver only coordinates: its instances hold them
                    entrypoint_num_cpus=0 if distributed else cluster.num_cpus,
                    entrypoint_num_gpus=None if distributed else cluster.num_gpus,
                    entrypoint_memory=None if distributed else cluster.memory,
                )
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # uploaded: the cluster has it
        with launch.log.open("a", encoding="utf-8") as log:
            log.write(f"mlform: submitted as Ray job {submission} to {cluster.address}\n")
        base = launch.log.stat().st_size
        return RayHandle(launch, cluster.address, submission, exchange, base, ray_client)

    def stop_orphan(self, ident: str) -> bool:
        try:
            found = json.loads(ident)
            address, submission = str(found["address"]), str(found["job"])
        except (ValueError, KeyError, TypeError):
            return False
        try:
            return bool(client(address).stop_job(submission))
        except Exception:  # gone, or the cluster with it: nothing left to stop
            return False

    def reattach(self, ident: str, launch: Launch) -> RayHandle | None:
        """The job an apply that died left, when the cluster still has it (running or
        ended): a handle that follows it as if this apply had started it."""
        try:
            found = json.loads(ident)
            address, submission = str(found["address"]), str(found["job"])
            exchange, base = Path(str(found["exchange"])), int(found["log"])
            handle = RayHandle(launch, address, submission, exchange, base, client(address))
            handle.client.get_job_info(submission)
        except Exception:  # no such job, or no such cluster any more
            return None
        # what the dead apply had followed is followed again, from the start
        with contextlib.suppress(OSError), launch.log.open("r+b") as log:
            log.truncate(base)
        (launch.log.parent.parent / "metrics.csv").unlink(missing_ok=True)
        return handle


def _package() -> str:
    """The folder of mlform's own package, which the job gets as a py_module (the SDK)."""
    # start-up: the package's own folder only for a run on a Ray cluster
    import mlform

    return str(Path(mlform.__file__).resolve().parent)


def _stage(
    launch: Launch, staging: Path, exchange: Path, cluster: RayCluster, package: str
) -> None:
    """The job's working_dir: the run's files at `mirror/<local path>`, hard-linked where
    the file system lets (not the SDK's `package`: a py_module), the job's description
    and the driver."""
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    given = [Path(root) for root in launch.mounts if root != package]
    # a root inside another (the snapshot in the run's folder) comes with it
    roots = [str(r) for r in given if not any(o != r and r.is_relative_to(o) for o in given)]
    for root in roots:
        source = Path(root)
        target = staging / "mirror" / source.relative_to(source.anchor)
        if source.is_dir():
            shutil.copytree(
                source,
                target,
                symlinks=True,
                ignore=shutil.ignore_patterns(".ray-job", ".sdk", "__pycache__"),
                copy_function=_link_or_copy,
                dirs_exist_ok=True,
            )
        elif source.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(str(source), str(target))
    shutil.copyfile(Path(__file__).with_name("raydriver.py"), staging / _DRIVER)
    shown, hidden = secret_variables(launch.env, launch.secrets)
    run_dir = launch.log.parent.parent
    job: dict[str, Any] = {
        "command": launch.command,
        "cwd": str(launch.cwd),
        "run_dir": str(run_dir),
        "env": shown,
        "roots": roots,
        "exchange": str(exchange),
        "instances": launch.instances,
        "distribution": launch.distribution,
        "num_cpus": cluster.num_cpus,
        "num_gpus": cluster.num_gpus,
        "memory": cluster.memory,
    }
    (staging / "mlform-job.json").write_text(json.dumps(job), encoding="utf-8")
    if hidden:
        private.write(staging / "mlform-secrets.json", json.dumps(hidden).encode())


def _runtime_env(
    cluster: RayCluster, launch: Launch, staging: Path, package: str
) -> dict[str, Any]:
    """The compute's runtime_env defaults, with the run's working_dir, the SDK's package
    and the environment's pip list."""
    env: dict[str, Any] = json.loads(json.dumps(cluster.runtime_env))  # a copy
    env["working_dir"] = str(staging)
    env["py_modules"] = [*env.get("py_modules", ()), package]
    env["excludes"] = [*env.get("excludes", ()), "__pycache__"]
    if launch.pip:
        given = env.get("pip") or []
        packages = given.get("packages", []) if isinstance(given, dict) else list(given)
        merged = [*packages, *launch.pip]
        env["pip"] = {**given, "packages": merged} if isinstance(given, dict) else merged
    return env


def _link_or_copy(source: str, target: str) -> str:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
    return target


TARGET = RayTarget()
