"""Running one runconfig: prepare its folder, start it on a compute target, watch it,
and record what happened — through the run protocol, the same on every target."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import mlform
from mlform import datasets, gitinfo
from mlform import snapshot as snapshots
from mlform.compute import TARGETS, Handle, Launch, RayCluster, Target
from mlform.config.refs import AssetRef, LocalPath, Url
from mlform.config.specs import DataInput, env_text
from mlform.context import Context, Outcome
from mlform.datasets import download
from mlform.errors import ApplyError, DatastoreError, RunFailed, SecretError
from mlform.kinds.compute.spec import BUILT_THERE, ELSEWHERE, ComputeSpec
from mlform.kinds.runconfig import gated
from mlform.kinds.runconfig.payload import RunPayload
from mlform.kinds.runconfig.spec import RunconfigSpec
from mlform.plan.model import Change
from mlform.state.records import Record
from mlform.state.runs import Abandoned, Experiment, RunFiles, RunRow, SnapshotRow
from mlform.state.store import Store
from mlform.tracking import mlflow_job, protocol
from mlform.tracking.record import TrackingRecord
from mlform.tracking.tail import MetricPoint, Tail

_SUBSTITUTION = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z0-9_.-]+)\s*\}\}")
_LOG_TAIL = 30
_METRICS_EVERY = 2.0
_STATUS_EVERY = 0.5
_BRISK = 30.0  # seconds of a run during which its end is looked for every 20 ms
_LAUNCH = "launch.json"  # in a run's folder: how a later apply takes it over (`adopt`)


# (ctx, owner address, environment name, version) → its virtual environment, built first
# when this machine has none (`mlform.kinds.environment.kind.ensure_built`)
Build = Callable[[Context, str, str, str], Path]
# Asked with each batch of metric points a running run logs: why to stop it now (a
# sweep's early termination), or None to let it go on.
Stop = Callable[[list[MetricPoint]], str | None]


def run(
    change: Change,
    payload: RunPayload,
    ctx: Context,
    build: Build,
    parent_id: str | None = None,
    stop: Stop | None = None,
) -> Outcome:
    """Run `change`'s runconfig (or a pipeline step or a sweep's trial made into one,
    under `parent_id`), in the environment `build` makes ready; `stop` may end it early
    as its metrics come in (its run then says `canceled` and why)."""
    return _Run(change, payload, ctx, build, parent_id, stop).execute()


class _Run:
    """One run of a runconfig, from preparing its folder to recording what it did."""

    def __init__(
        self,
        change: Change,
        payload: RunPayload,
        ctx: Context,
        build: Build,
        parent_id: str | None = None,
        stop: Stop | None = None,
    ) -> None:
        assert change.after is not None
        self.change = change
        self.stop = stop
        self.ctx = ctx
        self.build = build
        self.spec: RunconfigSpec = payload.spec
        self.snap: snapshots.Snapshot | None = payload.snap
        self.git = payload.git
        self.id = f"{self.spec.name}_{time.strftime('%Y%m%d_%H%M%S')}_{secrets.token_hex(2)}"
        self.dir = ctx.state_dir / "runs" / self.id
        self.values: dict[str, str] = {}  # inputs.x / outputs.x → what the command saw
        self.lost: str | None = None  # why the target lost the run, when it did
        self.saved: tuple[dict[str, str], dict[str, str]] = ({}, {})  # versions, inputs
        self.row = RunRow(
            id=self.id,
            experiment=self.spec.experiment,
            name=self.spec.name,
            status="queued",
            compute=self.spec.compute,
            run_dir=str(self.dir),
            runconfig=change.address,
            parent_id=parent_id,
            display_name=self.spec.display_name,
            created_at=time.time(),
            digest=change.after.digest,
        )

    def launch(self) -> tuple[Launch, dict[str, str], dict[str, str]]:
        """Prepare the run and say it runs (committed before it starts, so that a later
        apply finds it if this one dies): its launch, versions and inputs."""
        self.ctx.emit([Experiment(self.spec.experiment), self.row])
        self.update(status="preparing")
        try:
            launch, versions, inputs = self.prepare()
        except ApplyError as err:
            self.update(status="failed", error=str(err), ended_at=time.time())
            raise RunFailed(str(err), self.id) from err
        self.update(status="running", started_at=time.time(), inputs=inputs, wait=True)
        self.saved = (versions, inputs)
        # Paths inside the workspace as the user would type them from its folder.
        command = launch.command.replace(f"{self.ctx.config.root}{os.sep}", "")
        self.ctx.log(self.change.address, f"run {self.id} started: {command}")
        return launch, versions, inputs

    def adopt(self) -> tuple[Launch, Handle, dict[str, str], dict[str, str]] | None:
        """The run of exactly this job (the same digest) that an apply which died left
        on a target that can re-attach (a Ray cluster): followed from where it is, as
        this run, whether it still runs or has ended meanwhile; None when there is none."""
        assert self.change.after is not None
        rows = self.ctx.read(
            "select id, run_dir from runs where runconfig = ? and digest = ? and "
            "parent_id is null and status = 'running' order by created_at desc limit 1",
            [self.change.address, self.change.after.digest],
        )
        if not rows:
            return None
        run_id, where = str(rows[0][0]), Path(rows[0][1])
        try:
            launched = json.loads((where / "compute.json").read_text(encoding="utf-8"))
            saved = json.loads((where / _LAUNCH).read_text(encoding="utf-8"))
            target = _target(str(launched["target"]))
        except (OSError, ValueError, KeyError):
            return None
        reattach = getattr(target, "reattach", None)
        try:
            _, secret_values = self.ctx.config.vault.resolve(dict(self.spec.variables))
        except SecretError:
            secret_values = ()
        launch = Launch(
            saved["command"], Path(saved["cwd"]), {}, Path(saved["log"]), tuple(secret_values)
        )
        handle = reattach(str(launched["ident"]), launch) if reattach else None
        if handle is None:  # the target has it no more: what it logged is kept
            reason = "the apply running it was interrupted, and its compute has it no more"
            self.ctx.emit([Abandoned(run_id, reason), TrackingRecord(run_id, where)])
            return None
        self.id, self.dir = run_id, where
        self.row = RunRow(**saved["row"])
        self.values = dict(saved["values"])
        return launch, handle, dict(saved["versions"]), dict(saved["inputs"])

    def update(self, wait: bool = False, **fields: Any) -> None:
        self.row = replace(self.row, **fields)
        self.ctx.emit([self.row], wait=wait)

    def execute(self) -> Outcome:
        adopted = self.adopt()
        if adopted is not None:
            launch, handle, versions, inputs = adopted
            self.ctx.log(
                self.change.address,
                f"run {self.id}: re-attached to what an earlier apply left on its compute",
            )
            status, code = self.watch(launch, handle)
        else:
            launch, versions, inputs = self.launch()
            status, code = self.watch(launch)
        # the state keeps the tail: a script that printed a secret leaves it out there
        tail = _tail(launch.log, launch.secrets) if status != "completed" else None
        final = replace(
            self.row,
            status=status,
            exit_code=code,
            ended_at=time.time(),
            log_tail=tail,
            error=self.lost,
        )
        records: list[Record] = [final, TrackingRecord(self.id, self.dir)]
        records.extend(self.kept())
        if status != "completed":
            self.ctx.emit(records)
            failed = f"failed: {self.lost}" if self.lost else f"failed (exit code {code})"
            canceled = f"canceled ({self.lost})" if self.lost else "canceled"
            how = {"failed": failed, "timed_out": "timed out", "canceled": canceled}.get(
                status, status
            )
            shown = "\n".join(f"  | {line}" for line in (tail or "").splitlines())
            raise RunFailed(
                f"{self.change.address}: run {self.id} {how}"
                # the first line says it all (a plan's reason); the log tail follows
                + (f"\nthe last lines of its log:\n{shown}" if shown else ""),
                self.id,
            )
        seconds = (final.ended_at or 0) - (final.started_at or 0)
        outputs: dict[str, Any] = {
            "run_id": self.id,
            "status": status,
            "experiment": self.spec.experiment,
            "run_dir": str(self.dir),
            "versions": versions,
            "inputs": inputs,
        }
        message = f"run {self.id} completed in {seconds:.1f}s"
        if self.spec.register_model is not None:
            try:
                registered = gated.register_output(
                    self.ctx, self.spec, self.id, self.dir, self.values
                )
            except ApplyError:
                self.ctx.emit(records)  # the run did complete: its record stays
                raise
            records.extend(registered.records)
            outputs.update(registered.outputs)
            message += f"; {registered.message}"
            self.ctx.log(self.change.address, registered.message)
        return Outcome(outputs, records, message)

    def kept(self) -> list[RunFiles]:
        """The run's outputs and logs, kept in the default datastore as it ends, so that
        another machine sharing the datastore can download and read them. A datastore
        that fails now costs only that: the run's own record is not lost with it."""
        # start-up: folders of blobs only once a run ends
        from mlform.storage import folders

        try:
            storage = self.ctx.storage(self.ctx.config.default_datastore)
            manifest = folders.keep(storage, self.dir, (protocol.OUTPUTS, protocol.LOGS))
        except DatastoreError as err:
            self.ctx.log(
                self.change.address,
                f"run {self.id}: its outputs and logs stay on this machine only ({err})",
            )
            return []
        return [RunFiles(self.id, manifest)]

    # -- preparing -----------------------------------------------------------------------

    def prepare(self) -> tuple[Launch, dict[str, str], dict[str, str]]:
        spec, ctx = self.spec, self.ctx
        for sub in (protocol.OUTPUTS, protocol.LOGS, "snapshot"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        if self.snap is not None:
            storage = ctx.storage(ctx.config.default_datastore)
            key = snapshots.store(self.snap, storage)
            snapshots.extract(storage, key, self.dir / "snapshot")
            ctx.emit([SnapshotRow(self.snap.digest, key, len(self.snap.files), self.snap.size)])
            _write_manifest(self.dir / "logs" / "snapshot.json", self.snap)
            self.row = replace(self.row, snapshot_id=self.snap.digest)
        git = self.git or gitinfo.describe(
            spec.code or ctx.config.root, ignore=(ctx.state_dir, ctx.cache)
        )
        self.row = replace(
            self.row, git_commit=git.commit, branch=git.branch, remote=git.remote, dirty=git.dirty
        )
        compute = self.compute()
        elsewhere = compute is not None and compute.type in ELSEWHERE
        if compute is not None and compute.type == "ray":
            compute = replace(compute, cluster=self.cluster(compute))
        # a container or another machine sees only what the run is given, never this
        # machine's environment
        env = {} if elsewhere else dict(os.environ)
        versions: dict[str, str] = {}
        image: str | None = None
        # Without an environment, `python` is the interpreter running mlform.
        path_prefix = f"{Path(sys.executable).parent}{os.pathsep}"
        pip: tuple[str, ...] = ()
        if compute is not None and compute.type in BUILT_THERE and spec.environment is None:
            raise ApplyError(
                f"{self.change.address}: compute {spec.compute} runs a job in its "
                "environment, built there: name the job's environment"
            )
        if compute is not None and compute.type == "ray" and spec.environment is not None:
            version, pip, variables = self.environment_pip()
            versions[f"environment/{spec.environment.name}"] = version
            env.update(variables)
            self.row = replace(self.row, environment=f"{spec.environment.name}:{version}")
        elif compute is not None and elsewhere and spec.environment is not None:
            version, image, variables = self.environment_elsewhere(compute)
            versions[f"environment/{spec.environment.name}"] = version
            env.update(variables)
            self.row = replace(
                self.row, environment=f"{spec.environment.name}:{version}", env_digest=image
            )
        elif spec.environment is not None:
            version, venv, variables = self.environment()
            versions[f"environment/{spec.environment.name}"] = version
            env.update(variables)
            env["VIRTUAL_ENV"] = str(venv)
            path_prefix = f"{venv / 'bin'}{os.pathsep}"
            self.row = replace(
                self.row, environment=f"{spec.environment.name}:{version}", env_digest=str(venv)
            )
        try:
            variables, secret_values = ctx.config.vault.resolve(dict(spec.variables))
        except SecretError as err:
            raise ApplyError(f"{self.change.address}: {err}") from None
        env.update(variables)
        values: dict[str, str] = {}
        inputs: dict[str, str] = {}
        data: list[str] = []  # the data inputs' paths, which a run elsewhere is given
        for name, value in spec.inputs.items():
            if not isinstance(value, DataInput):
                values[f"inputs.{name}"] = inputs[name] = value
                continue
            path, label = self.data_input(name, value, versions)
            data.append(path)
            values[f"inputs.{name}"] = path
            inputs[name] = label
            env[f"MLFORM_INPUT_{_env_name(name)}"] = path
        for name, kind in spec.outputs.items():
            target = self.dir / protocol.OUTPUTS / name
            if kind != "uri_file":
                target.mkdir(parents=True, exist_ok=True)
            values[f"outputs.{name}"] = str(target)
            env[f"MLFORM_OUTPUT_{_env_name(name)}"] = str(target)
        self.values = values
        command = _SUBSTITUTION.sub(lambda m: shlex.quote(values[f"{m[1]}.{m[2]}"]), spec.command)
        env.update(protocol.run_environment(self.id, self.dir))
        env.update(
            {
                "MLFORM_EXPERIMENT": spec.experiment,
                "MLFLOW_EXPERIMENT_NAME": spec.experiment,
                "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(self.sdk()), env.get("PYTHONPATH", "")) if p
                ),
            }
        )
        if not elsewhere:  # elsewhere, the target puts the environment first
            env["PATH"] = path_prefix + env.get("PATH", os.defpath)
        cwd = self.dir / "snapshot"
        _working_folders(cwd, self.dir)
        if not elsewhere:
            env.update(self.mlflow_run(env, cwd))
        self.row = replace(self.row, command=command)
        log = self.dir / protocol.LOGS / "std_log.txt"
        if not elsewhere:
            return Launch(command, cwd, env, log, secret_values), versions, inputs
        # start-up: the docker target only for a run elsewhere
        from mlform.kinds.compute.docker import image_mounts

        assert compute is not None
        launch = Launch(
            command,
            cwd,
            env,
            log,
            secret_values,
            image=image,
            mounts=image_mounts(self.dir, cwd, data),
            cpus=compute.cpus,
            memory=compute.memory,
            host=compute.host,
            cluster=compute.cluster,
            pip=pip,
            instances=spec.instance_count,
            distribution=spec.distribution,
        )
        return launch, versions, inputs

    def compute(self) -> ComputeSpec | None:
        """The declared compute the job names (None for `local`, which needs none)."""
        declared = self.ctx.config.specs.get(f"compute/{self.spec.compute}")
        return declared if isinstance(declared, ComputeSpec) else None

    def cluster(self, compute: ComputeSpec) -> RayCluster:
        """The Ray cluster of `compute`, with the folder its runs hand their files back
        through: the default datastore's, which every node must reach."""
        assert compute.cluster is not None
        name = self.ctx.config.default_datastore
        location = self.ctx.config.datastore(name).location
        if not isinstance(location, LocalPath):
            raise ApplyError(
                f"{self.change.address}: compute {compute.name} is a Ray cluster: its runs "
                f"hand their files back through the default datastore, which must be a "
                f"folder every node reaches (a shared file system); datastore {name} is "
                f"{location.url}. Make a shared folder the default datastore"
            )
        return replace(compute.cluster, exchange=location.path)

    def environment_pip(self) -> tuple[str, tuple[str, ...], dict[str, str]]:
        """The job's environment version, its pip list (which Ray installs on the node)
        and its variables."""
        # start-up: the image kind's reading of an environment only for a run elsewhere
        from mlform.kinds.image.kind import environment_build

        ref = self.spec.environment
        assert ref is not None
        version = ref.version or self._current_version(f"environment/{ref.name}")
        _, requirements, _ = environment_build(
            self.ctx, AssetRef(ref.name, version), self.change.address
        )
        return version, tuple(requirements), self.environment_variables(ref.name, version)

    def environment_elsewhere(self, compute: ComputeSpec) -> tuple[str, str, dict[str, str]]:
        """The job's environment version; its image (docker) or its virtual environment
        on the machine (virtualmachine), built there first when missing; its variables."""
        # start-up: the docker and SSH targets only for a run on one
        from mlform.kinds.compute.docker import environment_image
        from mlform.kinds.compute.ssh import remote_environment

        ref = self.spec.environment
        assert ref is not None
        address = f"environment/{ref.name}"
        version = ref.version or self._current_version(address)

        def say(line: str) -> None:
            self.ctx.log(self.change.address, line)

        owner = self.change.address
        if compute.host is not None:
            image = remote_environment(self.ctx, compute.host, owner, ref.name, version, say)
        else:
            image = environment_image(self.ctx, owner, ref.name, version, say)
        return version, image, self.environment_variables(ref.name, version)

    def mlflow_run(self, env: dict[str, str], cwd: Path) -> dict[str, str]:
        """MLFLOW_RUN_ID and the experiment of the job's own MLflow run, as Azure ML sets
        them, when the run's Python has mlflow (`mlform.tracking.mlflow_job`)."""
        if not self._names_mlflow(cwd):
            return {}
        try:
            job = mlflow_job.create(env, cwd, self.dir, self.spec.experiment, self.id)
        except mlflow_job.JobRunFailed as err:
            raise ApplyError(
                f"{self.change.address}: {err}. Repair or remove mlflow in the run's "
                "environment, then apply again"
            ) from err
        return job.environment() if job is not None else {}

    def _names_mlflow(self, cwd: Path) -> bool:
        """Whether the command or a Python file of its code names mlflow. Creating the job's
        MLflow run imports mlflow, seconds of CPU that a script without MLflow would pay
        for nothing; a library that logs to MLflow by itself still lands in the run, as
        its one top-level MLflow run (`mlform.tracking.ingest`)."""
        if "mlflow" in self.spec.command:
            return True
        files = self.snap.files if self.snap is not None else ()
        for file in files:
            if file.relpath.endswith(".py"):
                with contextlib.suppress(OSError):
                    if b"mlflow" in (cwd / file.relpath).read_bytes():
                        return True
        return False

    def sdk(self) -> Path:
        """A folder holding only the `mlform` package, so a script in any environment can
        `import mlform` for the SDK without mlform's own dependencies leaking in."""
        shim = self.dir / ".sdk"
        shim.mkdir(exist_ok=True)
        link = shim / "mlform"
        if not link.exists():
            link.symlink_to(Path(mlform.__file__).resolve().parent, target_is_directory=True)
        return shim

    def environment(self) -> tuple[str, Path, dict[str, str]]:
        ref = self.spec.environment
        assert ref is not None
        address = f"environment/{ref.name}"
        version = ref.version or self._current_version(address)
        venv = self.build(self.ctx, self.change.address, ref.name, version)
        return version, venv, self.environment_variables(ref.name, version)

    def environment_variables(self, name: str, version: str) -> dict[str, str]:
        """The variables environment `name:version` sets."""
        rows = self.ctx.read(
            "select spec from asset_versions "
            "where kind = 'environment' and name = ? and version = ?",
            [name, version],
        )
        spec = json.loads(rows[0][0])
        return {str(k): env_text(v) for k, v in (spec.get("environment_variables") or {}).items()}

    def data_input(self, name: str, value: DataInput, versions: dict[str, str]) -> tuple[str, str]:
        """The local path the command sees for a data input, and how the run records it."""
        if value.asset is None:
            location = value.location
            if isinstance(location, LocalPath):
                return str(location.path), str(location.path)
            assert isinstance(location, Url)
            if value.mode == "direct":
                return location.url, location.url
            fetched = download(location.url, self.dir / "inputs" / name, value.type)
            return str(fetched), location.url
        asset = value.asset
        address = f"data/{asset.name}"
        version = asset.version or self._current_version(address)
        item = datasets.find(self.ctx.read, asset.name, version)
        if item is None:
            raise ApplyError(f"{self.change.address}: data {asset.name}:{version} does not exist")
        versions[address] = version
        direct = datasets.direct_location(self.ctx, item) if value.mode == "direct" else None
        if direct is not None:
            return direct, f"{asset.name}:{version}"
        target = self.dir / "inputs" / name
        datasets.materialize(self.ctx, item, target)
        if item.type == "uri_file" and len(item.manifest) == 1:
            return str(target / item.manifest[0]["path"]), f"{asset.name}:{version}"
        return str(target), f"{asset.name}:{version}"

    def _current_version(self, address: str) -> str:
        rows = self.ctx.read("select outputs from resources where address = ?", [address])
        version = json.loads(rows[0][0]).get("version") if rows else None
        if version is None:
            raise ApplyError(f"{self.change.address}: {address} has no version yet")
        return str(version)

    # -- running -------------------------------------------------------------------------

    def watch(self, launch: Launch, handle: Handle | None = None) -> tuple[str, int]:
        if handle is None:
            # a declared compute runs on the target its type names; else `compute:` does
            declared = self.compute()
            target = declared.type if declared else self.spec.compute
            handle = _target(target).start(launch)
            (self.dir / "compute.json").write_text(
                json.dumps({"target": target, "ident": handle.ident}), encoding="utf-8"
            )
            # after the start: what the target sends of the run's folder never holds it
            _save_launch(self.dir, self.row, launch, *self.saved, self.values)
        started = time.monotonic()
        shown = 0
        metrics = Tail(self.dir)
        last_metrics = started
        latest: dict[str, float] = {}
        fresh: dict[str, float] = {}  # read since the progress line was last drawn
        status = ""
        address = self.change.address
        progress = self.ctx.progress
        nap = 0.0025
        while (code := self._poll(handle)) is None:
            if self.ctx.cancelled.is_set():
                code, status = handle.stop(), "canceled"
                break
            if self.spec.timeout is not None and time.monotonic() - started > self.spec.timeout:
                code, status = handle.stop(), "timed_out"
                break
            shown = self._show_log(launch.log, shown)
            now = time.monotonic()
            if self.stop is not None:  # asked as soon as points come in
                points = metrics.points()
                fresh.update({point.key: point.value for point in points})
                why = self.stop(points)
                if why is not None:
                    code, status, self.lost = handle.stop(), "canceled", why
                    break
            if now - last_metrics >= (_STATUS_EVERY if progress else _METRICS_EVERY):
                last_metrics = now
                new = fresh if self.stop is not None else metrics.latest()
                latest.update(new)
                fresh = {}
                text = ", ".join(f"{k}={v:.4g}" for k, v in sorted(latest.items())[:6])
                if progress is not None:  # a terminal: one status line, redrawn in place
                    progress(address, f"running {now - started:.0f}s  {text}".rstrip())
                elif new:  # plain output: a line whenever the metrics moved
                    self.ctx.log(address, f"metrics: {text}")
            # looks close together at first, a tenth of a second apart once the run has
            # lasted a while: a short run (a sweep's trial) is not held up by the look
            # that finds it ended, a long one costs no more
            nap = min(nap * 2, 0.02 if now - started < _BRISK else 0.1)
            time.sleep(nap)
        if progress is not None:
            progress(address, None)
        if self.stop is not None and not status:
            self.stop(metrics.points())  # what it logged as it ended: too late to stop it
        self._show_log(launch.log, shown)
        return status or ("completed" if code == 0 else "failed"), code

    def _poll(self, handle: Handle) -> int | None:
        """The handle's exit code; when the target cannot say any more (a connection lost,
        a cluster gone), the run has failed, for the reason the target gives."""
        try:
            return handle.poll()
        except ApplyError as err:
            self.lost = str(err)
            with contextlib.suppress(ApplyError, OSError):
                handle.stop()  # what can still be reached is stopped
            return -1

    def _show_log(self, log: Path, offset: int) -> int:
        try:
            with log.open("rb") as handle:
                handle.seek(offset)
                data = handle.read()
        except FileNotFoundError:
            return offset
        end = data.rfind(b"\n") + 1
        for line in data[:end].decode(errors="replace").splitlines():
            self.ctx.log(self.change.address, line)
        return offset + end


def _save_launch(
    run_dir: Path,
    row: RunRow,
    launch: Launch,
    versions: dict[str, str],
    inputs: dict[str, str],
    values: dict[str, str],
) -> None:
    """What a later apply needs to take the run over if this one dies (`adopt`): its
    record, command and log, and what its outcome will say. No secret value is in it."""
    data = {
        "row": asdict(row),
        "command": launch.command,
        "cwd": str(launch.cwd),
        "log": str(launch.log),
        "versions": versions,
        "inputs": inputs,
        "values": values,
    }
    (run_dir / _LAUNCH).write_text(json.dumps(data), encoding="utf-8")


def _write_manifest(path: Path, snap: snapshots.Snapshot) -> None:
    """What went into the snapshot and what was left out, by which rule, for
    `mlform runs snapshot RUN [--explain]`."""
    data = {
        "digest": snap.digest,
        "files": [{"path": f.relpath, "size": f.size, "sha256": f.sha256} for f in snap.files],
        "excluded": [
            {"relpath": e.relpath, "rule_file": e.rule_file, "line": e.line, "pattern": e.pattern}
            for e in snap.excluded
        ],
    }
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")


def _working_folders(cwd: Path, run_dir: Path) -> None:
    """`./outputs` and `./logs` in the job's working directory are the run folder's own, as
    Azure ML uploads those two folders of a job's working directory as its outputs and
    logs: what a script writes there (`outputs/model.pkl`) is kept with the run. Files the
    code snapshot brought in them move there too."""
    for name in (protocol.OUTPUTS, protocol.LOGS):
        inside, kept = cwd / name, run_dir / name
        if inside.is_dir() and not inside.is_symlink():
            shutil.copytree(inside, kept, dirs_exist_ok=True)
            shutil.rmtree(inside)
        elif inside.exists() or inside.is_symlink():
            inside.unlink()
        # relative, so the pair stays right wherever the run folder is mounted or copied
        inside.symlink_to(Path("..") / name, target_is_directory=True)


def _tail(log: Path, secrets: tuple[str, ...] = ()) -> str:
    try:
        text = log.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    for value in sorted(secrets, key=len, reverse=True):
        text = text.replace(value, "***")
    return "\n".join(text.splitlines()[-_LOG_TAIL:])


def _env_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def _target(name: str) -> Target:
    """The compute target `name`: this machine's, a container engine's, another
    machine's."""
    if name == "docker":
        # start-up: the docker target (the engine's SDK) only for a run on one
        from mlform.kinds.compute import docker

        return docker.TARGET
    if name == "virtualmachine":
        # start-up: the SSH target (fabric) only for a run on one
        from mlform.kinds.compute import ssh

        return ssh.TARGET
    if name == "ray":
        # start-up: the ray target (Ray's SDK) only for a run on a cluster
        from mlform.kinds.compute import ray

        return ray.TARGET
    return TARGETS[name]


def abandon_stale_runs(
    store: Store, apply_id: str, planned: Collection[tuple[str, str]] = ()
) -> list[str]:
    """Runs an interrupted apply left unfinished: stop what still runs, keep what they
    logged, and record them as failed. Called as a new apply starts. A run of a job this
    apply runs again, exactly (`planned`: its address and digest), on a target that can
    re-attach (a Ray cluster), is left for the job's run to take over (`adopt`)."""

    stale = store.query(
        "select id, run_dir, runconfig, digest, parent_id from runs "
        "where status in ('queued', 'preparing', 'running')"
    )
    abandoned = []
    for run_id, run_dir, runconfig, digest, parent in stale:
        where = Path(run_dir)
        try:
            launched = json.loads((where / "compute.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            launched = None
        known = bool(launched) and launched.get("target") in (*TARGETS, *ELSEWHERE)
        if (
            known
            and parent is None
            and (runconfig, digest) in planned
            and hasattr(_target(launched["target"]), "reattach")
        ):
            continue
        abandoned.append(run_id)
        if known:
            _target(launched["target"]).stop_orphan(str(launched["ident"]))
        records: list[Record] = [Abandoned(run_id, "the apply running it was interrupted")]
        if where.is_dir():
            records.append(TrackingRecord(run_id, where))
        store.write(apply_id, records)
    return abandoned
