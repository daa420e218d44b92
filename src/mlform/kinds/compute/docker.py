"""The docker target: a run's command in a container of its environment's image.

The image is the environment built as images/*.yml images are (the base image from the
environment's `image:`, wheels downloaded on this machine, a build without network), so
a run is hermetic: nothing of this machine's Python reaches it. The run folder is
mounted at its own path, read-write, and its code snapshot and data inputs read-only
over it, so the command line, the paths it was given and the run protocol's files are
the same inside as outside; what it writes to its outputs is the run's when it ends.
`mlform` itself (the SDK, `import mlform`) is mounted read-only and on PYTHONPATH.

The container runs under an init, as the host's user, with the compute's CPU and memory
limits. Its output is relayed to the run's log, secret values masked; secret variables
are in a file mounted read-only and read by the command's shell (removed when the run
ends), never in the environment `docker inspect` shows. Stopping it stops the container
(SIGTERM, then SIGKILL); a container a killed apply left is found by its id and removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mlform import private
from mlform.cachedir import cache_dir
from mlform.compute import Launch, secret_variables, shell_exports
from mlform.config.refs import AssetRef
from mlform.context import Context
from mlform.errors import EngineUnavailable
from mlform.masking import Masker
from mlform.masking.relay import Relay

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

_GRACE_SECONDS = 5
_SECRETS = "/run/secrets/mlform-run"


class DockerHandle:
    def __init__(
        self,
        client: docker.DockerClient,
        container: Container,
        relay: Relay,
        pump: threading.Thread,
        held: Path | None,
    ) -> None:
        self.client = client
        self.container = container
        self.relay = relay
        self.pump = pump
        self.held = held  # the secret variables' file, removed when the run ends
        self.ident = str(container.id)
        self._code: int | None = None

    def poll(self) -> int | None:
        if self._code is not None:
            return self._code
        self.container.reload()
        if self.container.status not in ("exited", "dead"):
            return None
        return self._end()

    def stop(self) -> int:
        if self._code is not None:
            return self._code
        with contextlib.suppress(Exception):  # it may have ended meanwhile
            self.container.stop(timeout=_GRACE_SECONDS)
        self.container.wait()
        return self._end()

    def _end(self) -> int:
        self.container.reload()
        code = int(self.container.attrs["State"]["ExitCode"])
        self.pump.join()  # the log stream ends with the container
        self.relay.close()
        with contextlib.suppress(Exception):
            self.container.remove(force=True)
        self.client.close()
        if self.held is not None:
            shutil.rmtree(self.held, ignore_errors=True)
        self._code = code
        return code


class DockerRunTarget:
    def start(self, launch: Launch) -> DockerHandle:
        # start-up: the engine (and the Docker SDK) only when a run is started on it
        from mlform.containers import engine

        assert launch.image is not None, "a docker run needs its image"
        run_id = launch.env.get("MLFORM_RUN_ID", "run")
        env, hidden = secret_variables(launch.env, launch.secrets)
        mounts = {
            path: {"bind": path, "mode": "rw" if w else "ro"} for path, w in launch.mounts.items()
        }
        command = launch.command
        folder: Path | None = None
        if hidden:  # a file mounted read-only, which the shell reads before the command
            folder = launch.log.parent.parent / ".secret-variables"
            private.folder(folder)
            private.write(folder / "variables.sh", shell_exports(hidden).encode())
            mounts[str(folder)] = {"bind": _SECRETS, "mode": "ro"}
            command = f". {_SECRETS}/variables.sh && {command}"
        client = engine.connect()
        try:
            with engine.engine_errors(f"starting the container of run {run_id}"):
                container = client.containers.run(
                    launch.image,
                    ["/bin/sh", "-c", command],
                    name=f"mlform-run-{run_id}",
                    working_dir=str(launch.cwd),
                    environment=env,
                    labels={"mlform.run": run_id},
                    volumes=mounts,
                    user=f"{os.getuid()}:{os.getgid()}",
                    network_mode="host",
                    init=True,
                    detach=True,
                    nano_cpus=int(launch.cpus * 1e9) if launch.cpus else None,
                    mem_limit=launch.memory,
                )
        except BaseException:
            client.close()
            raise
        launch.log.parent.mkdir(parents=True, exist_ok=True)
        log = os.open(launch.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        read, write = os.pipe()
        relay = Relay(read, log, Masker(launch.secrets))
        pump = threading.Thread(target=_pump, args=(container, write), daemon=True)
        pump.start()
        return DockerHandle(client, container, relay, pump, folder)

    def stop_orphan(self, ident: str) -> bool:
        # start-up: the engine only when a run is stopped on it
        import docker.errors

        from mlform.containers import engine

        try:
            client = engine.connect()
        except EngineUnavailable:
            return False
        try:
            container = client.containers.get(ident)
            running = container.status == "running"
            container.remove(force=True)
            return bool(running)
        except docker.errors.NotFound:
            return False
        finally:
            client.close()


def _pump(container: Container, write: int) -> None:
    """Copy the container's output, as it comes, into the relay's pipe."""
    try:
        for chunk in container.logs(stream=True, follow=True):
            view = memoryview(chunk)
            while view:
                view = view[os.write(write, view) :]
    except Exception:  # the engine went away: the run's end says what happened
        pass
    finally:
        os.close(write)


def image_mounts(run_dir: Path, snapshot: Path, inputs: list[str]) -> dict[str, bool]:
    """What a run's container mounts (path → writable), each at its own path: the run
    folder, its snapshot and data inputs read-only over it, and the SDK's package."""
    # start-up: the package's own folder, for the SDK the container imports
    import mlform

    mounts = {str(run_dir): True, str(snapshot): False}
    mounts[str(Path(mlform.__file__).resolve().parent)] = False
    mounts.update({path: False for path in inputs if Path(path).exists()})
    return mounts


def environment_image(
    ctx: Context, owner: str, name: str, version: str, log: Callable[[str], None]
) -> str:
    """The image of environment `name:version` (built when the engine has none), as
    images/*.yml images are built: its id."""
    # start-up: the image builder (jinja2, the Docker SDK) only for a docker run
    from mlform.containers import build
    from mlform.kinds.image.kind import environment_build
    from mlform.serving import runtime

    ref = AssetRef(name, version)
    label, requirements, _ = environment_build(ctx, ref, owner)
    rows = ctx.read(
        "select spec from asset_versions where kind = 'environment' and name = ? and version = ?",
        [name, version],
    )
    spec = json.loads(rows[0][0]) if rows else {}
    request = build.BuildRequest(
        tag=f"mlform-environment/{name}:{version}",
        base_image=str(spec.get("image") or runtime.DEFAULT_BASE),
        requirements=tuple(requirements),
        folders={},
        labels={"mlform.environment": label},
    )
    built = build.build(request, cache=cache_dir() / "wheels", log=log, cancelled=ctx.cancelled)
    return built.image_id


TARGET = DockerRunTarget()
