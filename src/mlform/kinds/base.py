"""What a resource kind is: how it is digested, refreshed, applied and destroyed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from mlform.components import canonical, digest_of
from mlform.config.specs import METADATA_KEYS, Spec
from mlform.context import Context, Outcome
from mlform.hashing import sha256_text
from mlform.plan import keys
from mlform.plan.model import Change, Desired
from mlform.secrets import references
from mlform.state.records import Recorded


def secret_components(ctx: Context, spec: Spec) -> dict[str, str]:
    """A fingerprint per secret the resource's processes get (none: no components)."""
    return ctx.config.vault.components(references.uses(spec))


def content_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec without the keys that only describe it (description, tags, …)."""
    return {k: v for k, v in spec.items() if k not in METADATA_KEYS}


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
