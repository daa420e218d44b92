"""What a resource kind is: how it is digested, refreshed, applied and destroyed."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mlform.config.specs import METADATA_KEYS, Spec
from mlform.config.workspace import Config
from mlform.hashing import Hasher, sha256_text
from mlform.plan import keys
from mlform.plan.model import Change, Desired
from mlform.secrets import fingerprint, references
from mlform.state.records import Record, Recorded
from mlform.storage import Storage, open_storage


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def digest_of(components: Mapping[str, str]) -> str:
    """The digest of what a resource is made of. Secret fingerprints are left out: the
    plan compares them itself (`mlform.secrets.fingerprint.compare`), since one made under
    another key says nothing of a change."""
    return sha256_text(
        *(f"{k}={v}" for k, v in sorted(components.items()) if not fingerprint.excluded(k))
    )


def secret_components(ctx: Context, spec: Spec) -> dict[str, str]:
    """A fingerprint per secret the resource's processes get (none: no components)."""
    return ctx.config.vault.components(references.uses(spec))


def content_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec without the keys that only describe it (description, tags, …)."""
    return {k: v for k, v in spec.items() if k not in METADATA_KEYS}


def cache_dir() -> Path:
    """Where built environments live, shared by every workspace of this user."""
    explicit = os.environ.get("MLFORM_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlform"


class Emit(Protocol):
    def __call__(self, records: Sequence[Record], wait: bool = False) -> None: ...


@dataclass
class Context:
    """What kinds need from the outside world, in one place."""

    config: Config
    hasher: Hasher
    cache: Path = field(default_factory=cache_dir)
    log: Callable[[str, str], None] = lambda address, message: None
    # Records a change writes before it ends (a run's status as it goes), each batch in a
    # transaction of its own, written by the thread that owns the state.
    # `wait=True` returns once they are committed (a run's row before its process starts).
    emit: Emit = lambda records, wait=False: None
    # Reads the state from any thread (a cursor of its own per call).
    read: Callable[[str, Sequence[Any]], list[tuple[Any, ...]]] = lambda sql, params: []
    cancelled: threading.Event = field(default_factory=threading.Event)  # set on Ctrl-C
    # A status line per running change on a terminal (None clears it); None off a terminal.
    progress: Callable[[str, str | None], None] | None = None
    _storages: dict[str, Storage] = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        return self.config.state_path.parent

    def storage(self, datastore: str) -> Storage:
        if datastore not in self._storages:
            spec = self.config.datastore(datastore)
            self._storages[datastore] = open_storage(spec, self.config.storage_options(spec))
        return self._storages[datastore]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What applying a change produced, recorded in the change's own transaction."""

    outputs: Mapping[str, Any]
    records: Sequence[Record] = ()
    message: str = ""
    # What was really applied, when the apply resolved something the plan could not know
    # yet (the model version a run registered in the same apply); None: `change.after`.
    applied: Desired | None = None


class Kind(Protocol):
    def desire(self, spec: Spec, ctx: Context, upstream: Mapping[str, Desired]) -> Desired:
        """The resource as declared, digested with its files and upstream digests."""

    def refresh(self, recorded: Recorded, ctx: Context) -> str | None:
        """How the real world differs from the record (the drift reason), or None."""

    def apply(self, change: Change, ctx: Context) -> Outcome:
        """Create, update or replace: make the real world match `change.after`."""

    def destroy(self, change: Change, ctx: Context) -> Outcome:
        """Remove what `change.before` created; history (versions) is archived, not erased."""


def base_components(
    spec: Spec, upstream: Mapping[str, Desired], deps: Sequence[str]
) -> dict[str, str]:
    components = {str(keys.Spec()): sha256_text(canonical(spec.body))}
    for dep in deps:
        if dep in upstream:
            components[str(keys.Dep(dep))] = upstream[dep].digest
    return components


def latest_version(previous: Any, version: str) -> str:
    """The highest numbered version so far, so automatic numbering never reuses one."""
    try:
        return str(max(int(str(previous or 0)), int(version)))
    except ValueError:
        return str(previous or version)


def declared(
    spec: Spec,
    ctx: Context,
    components: Mapping[str, str],
    *,
    body: Mapping[str, Any] | None = None,
    **extra: Any,
) -> Desired:
    """The `Desired` for `spec`: the fields every kind fills the same way, plus `extra`."""
    return Desired(
        address=spec.address,
        kind=spec.kind,
        name=spec.name,
        digest=digest_of(components),
        components=components,
        spec=dict(spec.body if body is None else body),
        deps=ctx.config.deps.get(spec.address, ()),
        source=str(spec.source),
        protect=spec.protect,
        **extra,
    )


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"
