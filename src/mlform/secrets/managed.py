"""Secrets mlform makes and keeps itself, rotated by the same `mlform secrets rotate`.

Each is named `<kind>/<name>/<secret>` (`endpoint/iris/signing-key`). A kind declares the
ones its resources have (`Kind.managed_secrets`), each saying which resources have one
and how to make a new one. A rotation takes effect at once: nothing needs to be rolled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mlform.config.specs import Spec


class ManagedSecret(Protocol):
    kind: str  # the kind of resource that has one
    what: str  # shown in `mlform secrets list`

    def owners(self, specs: Mapping[str, Spec]) -> list[str]:
        """The names of the declared resources of `kind` (`specs`: by address) that
        have one."""

    def rotate(self, state_dir: Path, owner: str) -> list[str]:
        """Make a new one, in use at once; what changed, and how long the old one keeps
        working."""


@dataclass(frozen=True, slots=True)
class Found:
    name: str  # endpoint/iris/signing-key
    secret: ManagedSecret
    owner: str

    @property
    def address(self) -> str:
        return f"{self.secret.kind}/{self.owner}"


Managed = Mapping[str, ManagedSecret]  # secret name (`signing-key`) → what it is


def every(specs: Mapping[str, Spec], managed: Managed) -> list[Found]:
    return [
        Found(f"{secret.kind}/{owner}/{key}", secret, owner)
        for key, secret in managed.items()
        for owner in secret.owners(specs)
    ]


def find(specs: Mapping[str, Spec], name: str, managed: Managed) -> Found | None:
    """The managed secret `name` names, if it names one."""
    return next((found for found in every(specs, managed) if found.name == name), None)
