"""Compute targets: where a run's command executes. One module each, one line in `TARGETS`.

A target starts a `Launch` and hands back a `Handle` the caller polls and can stop; the run
protocol (files in the run folder) is the same on every target.
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mlform.compute.local import LocalTarget
from mlform.errors import ApplyError


@dataclass(frozen=True, slots=True)
class RemoteHost:
    """Another machine a run's command executes on, over SSH."""

    host: str
    port: int
    user: str
    key_file: Path

    def to_json(self) -> dict[str, str | int]:
        return {"host": self.host, "port": self.port, "user": self.user, "key": str(self.key_file)}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> RemoteHost:
        return cls(
            str(data["host"]), int(str(data["port"])), str(data["user"]), Path(str(data["key"]))
        )


@dataclass(frozen=True, slots=True)
class RayCluster:
    """A Ray cluster a run is submitted to, through its Job Submission API."""

    address: str  # the dashboard's (job server's) http address
    runtime_env: Mapping[str, Any] = field(default_factory=dict)  # defaults for every job
    num_cpus: float | None = None  # entrypoint resources, per instance
    num_gpus: float | None = None
    memory: int | None = None  # bytes
    exchange: Path | None = None  # a folder every node reaches: where a run's files come back


@dataclass(frozen=True, slots=True)
class Launch:
    command: str  # a shell command line, inputs and outputs already substituted
    cwd: Path  # the extracted code snapshot
    env: Mapping[str, str]
    log: Path  # stdout and stderr, interleaved as the user would see them, secrets masked
    secrets: tuple[str, ...] = ()  # values in `env` that the log shows as *** (`masking`)
    # A container's or another machine's: the image (docker) or the virtual environment
    # on the machine (virtualmachine) to run the command in, what it mounts or mirrors (a
    # local path → writable), a container's CPU and memory limits, and the machine.
    image: str | None = None
    mounts: Mapping[str, bool] = field(default_factory=dict)
    cpus: float | None = None
    memory: str | None = None
    host: RemoteHost | None = None
    # a Ray cluster's: the cluster, the environment's pip list, and a distributed run's
    # instances (each one process, PyTorch's variables set as `distribution` says)
    cluster: RayCluster | None = None
    pip: tuple[str, ...] = ()
    instances: int = 1
    distribution: str | None = None


def secret_variables(
    env: Mapping[str, str], secrets: tuple[str, ...]
) -> tuple[dict[str, str], dict[str, str]]:
    """The variables a target may show, and those holding a secret value, which a target
    that runs elsewhere hands over in a file only the run reads."""
    hidden = {k: v for k, v in env.items() if any(s and s in v for s in secrets)}
    return {k: v for k, v in env.items() if k not in hidden}, hidden


@contextlib.contextmanager
def said(what: str, where: str) -> Iterator[None]:
    """Any failure of a target's client library (paramiko's, Ray's SDK's, the socket's) as
    an ApplyError that says what failed where, with the error's last line."""
    try:
        yield
    except ApplyError:
        raise
    except Exception as err:
        lines = str(err).strip().splitlines()
        last = lines[-1] if lines else ""
        shown = (
            (last or type(err).__name__)
            if isinstance(err, OSError | EOFError)
            else (f"{type(err).__name__}: {last}" if last else type(err).__name__)
        )
        raise ApplyError(f"{what} on {where} failed: {shown}") from err


def shell_exports(variables: Mapping[str, str]) -> str:
    """`variables` as lines a POSIX shell sources: `export NAME='value'`."""
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in variables.items())


class Handle(Protocol):
    ident: str  # enough for the target to find the command again (`stop_orphan`)

    def poll(self) -> int | None:
        """The exit code once the command has ended, else None."""

    def stop(self) -> int:
        """End the command and everything it started; return its exit code."""


class Target(Protocol):
    def start(self, launch: Launch) -> Handle: ...

    def stop_orphan(self, ident: str) -> bool:
        """Stop a command a killed mlform left running; True if one was still running."""


TARGETS: dict[str, Target] = {"local": LocalTarget()}
