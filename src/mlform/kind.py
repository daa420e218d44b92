"""What a kind of resource is, to the planner and the executor: the whole contract.

A kind is a package under `mlform.kinds`, registered by one line in
`mlform.config.kinds.REGISTERED`: its `DECLARING` reads its files (`Declaring`, imported
by the loader), and its `kind` module's `KIND` implements `Kind`, which adds the lifecycle
to the reading (imported the first time a resource of the kind is planned). The planner
and the executor call it through this protocol and never name a concrete kind.

`Kind` is generic over the kind's spec and its payload: what `desire` computed that
`apply` needs (the snapshot of the code, the files scanned), a frozen dataclass of the
kind's own. `desire` makes it with `declared(..., payload=...)`, `apply` receives it
typed; between the two the plan holds it as a `Payload`, and `apply_change` checks it is
the kind's own before handing it over.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from types import ModuleType
from typing import Any, ClassVar, Protocol, TypeVar

from mlform.config import kinds as registry
from mlform.config.kinds import Declaring
from mlform.config.specs import Spec
from mlform.context import Context, Outcome
from mlform.errors import ApplyError
from mlform.graph import topological
from mlform.loader import Config
from mlform.plan.model import Action, Change, Desired, Payload
from mlform.secrets.managed import ManagedSecret
from mlform.state.records import Recorded

S = TypeVar("S", bound=Spec)
P = TypeVar("P", bound=Payload)


class Kind(Declaring[S], Protocol[S, P]):
    payload: type[P]  # what `desire` hands `apply`
    # The secrets its resources have that mlform makes and keeps (`signing-key`).
    managed_secrets: ClassVar[Mapping[str, ManagedSecret]] = {}

    def desire(self, spec: S, ctx: Context, upstream: Mapping[str, Desired]) -> Desired:
        """The resource as declared, digested with its files and upstream digests; its
        `payload` a `P`."""
        ...

    def refresh(self, recorded: Recorded, ctx: Context) -> str | None:
        """How the real world differs from the record (the drift reason), or None."""
        return None

    def apply(self, change: Change, payload: P, ctx: Context) -> Outcome:
        """Create, update or replace: make the real world match `change.after`."""
        ...

    def destroy(self, change: Change, ctx: Context) -> Outcome:
        """Remove what `change.before` created; history (versions) is archived, not erased."""
        ...

    def refuse(self, change: Change, ctx: Context) -> str | None:
        """Why a change the planner allows cannot be made (a model still serving a
        deployment the state records), or None."""
        return None


class _Kinds(Mapping[str, "Kind[Any, Any]"]):
    """The registered kinds by name, each imported on first use. The one place kinds are
    not typed each as itself: which payload goes with which kind is checked as a change
    is applied."""

    def __getitem__(self, name: str) -> Kind[Any, Any]:
        if name not in registry.RESOURCES:
            raise KeyError(name)
        return _kind(name)

    def __iter__(self) -> Iterator[str]:
        return iter(registry.RESOURCES)

    def __len__(self) -> int:
        return len(registry.RESOURCES)

    def __contains__(self, name: object) -> bool:
        return name in registry.RESOURCES


def _kind(name: str) -> Kind[Any, Any]:
    """The `KIND` of `<package>.kind`, the module imported on first use (read from the
    module each time, so the module stays the one place that says what it is)."""
    kind: Kind[Any, Any] = _module(f"{registry.BY_NAME[name].package}.kind").KIND
    return kind


@functools.cache  # asked once per change: a dict lookup, not the import machinery
def _module(name: str) -> ModuleType:
    return importlib.import_module(name)


KINDS: Mapping[str, Kind[Any, Any]] = _Kinds()


def desire_all(config: Config, ctx: Context) -> dict[str, Desired]:
    """Every declared resource with its digest, upstream before downstream."""
    desired: dict[str, Desired] = {}
    for address in topological(config.specs, config.deps):
        spec = config.specs[address]
        desired[address] = KINDS[spec.kind].desire(spec, ctx, desired)
    return desired


def apply_change(change: Change, ctx: Context) -> Outcome:
    """Make one change: destroy, apply, or both for a replacement."""
    kind = KINDS[change.kind]
    if change.action is Action.DELETE:
        return kind.destroy(change, ctx)
    if change.action is Action.REPLACE:
        kind.destroy(change, ctx)
    assert change.after is not None
    payload = change.after.payload
    if not isinstance(payload, kind.payload):
        raise ApplyError(
            f"{change.address}: the plan holds a {type(payload).__name__} for a "
            f"{change.kind}, which applies a {kind.payload.__name__}; run `mlform plan` again"
        )
    return kind.apply(change, payload, ctx)


def refusals(changes: Sequence[Change], ctx: Context) -> list[str]:
    """Why changes the planner allows cannot be made: a kind that knows of users the
    state records elsewhere (a model serving a deployment) says so with `refuse`."""
    found = []
    for change in changes:
        why = KINDS[change.kind].refuse(change, ctx) if change.kind in KINDS else None
        if why:
            found.append(why)
    return found


def refresh_all(recorded: dict[str, Recorded], ctx: Context) -> dict[str, Recorded]:
    """The records with what each kind finds changed in the real world (drift)."""
    out = {}
    for address, record in recorded.items():
        drift = None
        if record.status == "applied" and record.kind in KINDS:
            drift = KINDS[record.kind].refresh(record, ctx)
        out[address] = replace(record, drift=drift) if drift else record
    return out


def managed_secrets() -> dict[str, ManagedSecret]:
    """The secrets the kinds' resources have that mlform makes and keeps itself."""
    found: dict[str, ManagedSecret] = {}
    for name in KINDS:
        found.update(KINDS[name].managed_secrets)
    return found
