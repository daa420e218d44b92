"""Compute targets: where a run's command executes. One module each, one line in `TARGETS`.

A target starts a `Launch` and hands back a `Handle` the caller polls and can stop; the run
protocol (files in the run folder) is the same on every target.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mlform.compute.local import LocalTarget


@dataclass(frozen=True, slots=True)
class Launch:
    command: str  # a shell command line, inputs and outputs already substituted
    cwd: Path  # the extracted code snapshot
    env: Mapping[str, str]
    log: Path  # stdout and stderr, interleaved as the user would see them, secrets masked
    secrets: tuple[str, ...] = ()  # values in `env` that the log shows as *** (`masking`)
    # A container target's: the image to run the command in, what it mounts (a host path
    # at the same path inside → writable), and its CPU and memory limits.
    image: str | None = None
    mounts: Mapping[str, bool] = field(default_factory=dict)
    cpus: float | None = None
    memory: str | None = None


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
