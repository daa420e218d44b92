"""Running containers from built images: start, stop, read logs.

Containers use the host's network: the engine runs without a bridge (and so do many CI
machines), and a served endpoint then listens on 127.0.0.1 like a local one. They run
under an init process (Docker's tini): a command running as PID 1 has no default signal
handlers, so without one SIGTERM is ignored and every stop waits out its timeout. It also
means a command that does not exist still starts: the container exits 127 at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from mlform.containers.engine import engine_errors
from mlform.errors import ApplyError, NotFound

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container


def start(
    client: docker.DockerClient,
    image: str,
    *,
    name: str,
    env: Mapping[str, str],
    labels: Mapping[str, str],
    command: Sequence[str] | None = None,
    volumes: Mapping[str, str] | None = None,
    read_only: Mapping[str, str] | None = None,
) -> Container:
    """Start `image` detached as container `name`; `command` replaces the image's CMD;
    `volumes` mounts host folders (host path → path in the container), read-write, and
    `read_only` others that the container may only read."""
    # start-up: the Docker SDK, only when a container runs
    import docker.errors

    with engine_errors(f"starting container {name} from {image}"):
        try:
            container = client.containers.create(
                image,
                command=list(command) if command is not None else None,
                name=name,
                environment=dict(env),
                labels=dict(labels),
                network_mode="host",
                init=True,
                detach=True,
                volumes={
                    **{h: {"bind": c, "mode": "rw"} for h, c in (volumes or {}).items()},
                    **{h: {"bind": c, "mode": "ro"} for h, c in (read_only or {}).items()},
                },
            )
        except docker.errors.APIError as err:
            if err.status_code == 409:
                raise ApplyError(
                    f"a container named {name} already exists; remove it (`docker rm -f "
                    f"{name}`) if nothing should be running there"
                ) from err
            raise
        try:
            container.start()
        except BaseException:
            container.remove(force=True)  # created but never ran: leave nothing behind
            raise
    return container


def stop(client: docker.DockerClient, name_or_id: str, timeout: int = 5) -> bool:
    """Stop and remove a container; False if there was none to stop."""
    # start-up: the Docker SDK, only when a container runs
    import docker.errors

    with engine_errors(f"stopping container {name_or_id}"):
        try:
            container = client.containers.get(name_or_id)
            container.stop(timeout=timeout)
            container.remove(force=True)
        except docker.errors.NotFound:
            return False
    return True


def logs(client: docker.DockerClient, name_or_id: str, tail: int) -> str:
    """The last `tail` lines a container wrote, stdout and stderr interleaved."""
    # start-up: the Docker SDK, only when a container runs
    import docker.errors

    with engine_errors(f"reading the logs of container {name_or_id}"):
        try:
            container = client.containers.get(name_or_id)
        except docker.errors.NotFound as err:
            raise NotFound(f"no container named {name_or_id} on the Docker engine") from err
        output = container.logs(stdout=True, stderr=True, tail=tail)
    return output.decode("utf-8", "replace")
