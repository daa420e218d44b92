"""Secrets mlform makes and keeps itself, rotated by the same `mlform secrets rotate`.

Each is named `<kind>/<name>/<secret>` (`endpoint/iris/signing-key`), one class per
secret in `MANAGED`: which resources have one, and how to make a new one. A rotation
takes effect at once: nothing needs to be rolled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from mlform.config.specs import EndpointSpec

if TYPE_CHECKING:
    from mlform.config.workspace import Config


class ManagedSecret(Protocol):
    kind: str  # the kind of resource that has one
    what: str  # shown in `mlform secrets list`

    def owners(self, config: Config) -> list[str]:
        """The names of the resources of `kind` that have one."""

    def rotate(self, state_dir: Path, owner: str) -> list[str]:
        """Make a new one, in use at once; what changed, and how long the old one keeps
        working."""


class SigningKey:
    """The key an `auth_mode: token` endpoint signs its tokens with
    (`mlform.endpoints.signing`)."""

    kind = "endpoint"
    what = "token-signing key"

    def owners(self, config: Config) -> list[str]:
        return sorted(
            spec.name
            for spec in config.specs.values()
            if isinstance(spec, EndpointSpec) and spec.auth_mode in ("token", "aml_token")
        )

    def rotate(self, state_dir: Path, owner: str) -> list[str]:
        # start-up: `mlform --help` imports this module; the key ring only when rotating
        from mlform.endpoints import signing

        return signing.rotate(state_dir, owner).lines()


MANAGED: dict[str, ManagedSecret] = {"signing-key": SigningKey()}


@dataclass(frozen=True, slots=True)
class Found:
    name: str  # endpoint/iris/signing-key
    secret: ManagedSecret
    owner: str

    @property
    def address(self) -> str:
        return f"{self.secret.kind}/{self.owner}"


def every(config: Config) -> list[Found]:
    return [
        Found(f"{managed.kind}/{owner}/{key}", managed, owner)
        for key, managed in MANAGED.items()
        for owner in managed.owners(config)
    ]


def find(config: Config, name: str) -> Found | None:
    """The managed secret `name` names, if it names one."""
    return next((found for found in every(config) if found.name == name), None)
