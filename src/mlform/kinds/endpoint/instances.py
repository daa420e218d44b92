"""A deployment instance: one start of a deployment, a process or a container serving
on its own 127.0.0.1 port. Its row in `deployments` is what plan checks and what keeps
a model in use; a new instance starts beside the old one, so a row per instance."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mlform.masking import variables

if TYPE_CHECKING:
    import duckdb

Reader = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
RECORD = "instance.json"  # beside the instance's files: what runs outlives a lost state


@dataclass(frozen=True, slots=True)
class Instance:
    endpoint: str
    deployment: str
    instance: str  # unique per start: checked against the process, so a reused pid is not it
    compute: str
    digest: str
    model: str
    port: int
    handle: str  # pid, or container id
    log: str
    image: str | None = None
    status: str = "creating"
    weight: int = 0
    error: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write(self, con: duckdb.DuckDBPyConnection, apply_id: str) -> None:
        con.execute(
            "delete from deployments where endpoint = ? and name = ? and instance = ?",
            [self.endpoint, self.deployment, self.instance],
        )
        con.execute(
            "insert into deployments (endpoint, name, model, image, compute, status, "
            "created_at, updated_at, digest, port, handle, instance, weight, log, error) "
            "values (?, ?, ?, ?, ?, ?, now(), now(), ?, ?, ?, ?, ?, ?, ?)",
            [
                self.endpoint,
                self.deployment,
                self.model,
                self.image,
                self.compute,
                self.status,
                self.digest,
                self.port,
                self.handle,
                self.instance,
                self.weight,
                self.log,
                self.error,
            ],
        )


@dataclass(frozen=True, slots=True)
class Launch:
    """What starting an instance needs, whatever the target."""

    endpoint: str
    deployment: str
    instance: str
    digest: str
    model: str
    folder: Path  # the instance's own folder: its log, its copy of the code
    code: Path  # the scoring code, copied for this instance
    script: str  # inside `code`
    model_dir: Path  # MLFORM_MODEL_DIR: the model's files
    environment: str  # name:version
    python: Path | None  # the environment's interpreter (local)
    requirements: Sequence[str] = ()  # the environment's packages (docker)
    base_image: str | None = None
    # the serving runtime's folder (`mlform.serving` alone), made by whoever launches
    runtime: Path | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    workers: int = 1
    azureml_model_dir: Path | None = None  # the files as Azure mounts them (`mount`)
    # values in `variables` that the server's output and captured data show as ***
    secrets: tuple[str, ...] = ()

    def server_environment(self) -> dict[str, str]:
        """`variables`, and where the secrets are in them for the server to mask
        (`masking.variables`): their places, never the values a second time."""
        where = variables.places(self.variables, self.secrets)
        return {**self.variables, **({variables.VARIABLES: where} if where else {})}


class Target(Protocol):
    def start(self, launch: Launch, port: int, log: Callable[[str], None]) -> Instance: ...

    def alive(self, instance: Instance) -> bool: ...

    def stop(self, instance: Instance) -> None: ...

    def kill(self, instance: Instance) -> None:
        """Stop at once: for an instance that no longer answers, so would not stop
        gracefully either."""
        ...

    def tail(self, instance: Instance, lines: int) -> str: ...


_COLUMNS = (
    "endpoint, name, instance, compute, digest, model, port, handle, log, image, status, "
    "weight, error"
)


def serving(read: Reader, endpoint: str | None = None) -> list[Instance]:
    """The instances that serve (or are starting), oldest first."""
    sql = f"select {_COLUMNS} from deployments where status in ('running', 'creating')"
    params: list[Any] = []
    if endpoint is not None:
        sql += " and endpoint = ?"
        params.append(endpoint)
    rows = read(sql + " order by endpoint, name, created_at", params)
    return [Instance(*row) for row in rows]


def forget(instance: Instance, home: Path) -> None:
    """Drop the note of a stopped instance (`home`: the endpoints folder)."""
    folder = home / instance.endpoint / instance.deployment / instance.instance
    (folder / RECORD).unlink(missing_ok=True)


def record(instance: Instance, folder: Path) -> None:
    """Note the instance in its own folder too, so that a lost state cannot hide it."""
    path = folder / RECORD
    partial = path.with_name(f".{RECORD}.partial")
    partial.write_text(json.dumps(asdict(instance)), encoding="utf-8")
    os.replace(partial, path)


def recorded_in(home: Path, endpoint: str = "*") -> list[Instance]:
    """The instances noted under an endpoints folder (<endpoint>/<deployment>/<id>/)."""
    found = []
    for path in sorted(home.glob(f"{endpoint}/*/*/{RECORD}")):
        try:
            found.append(Instance(**json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError, TypeError):
            continue  # half a record of something that never served
    return found
