"""What the kinds share: the components every spec has, and the `Desired` they fill alike."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlform.components import canonical, digest_of
from mlform.config import kinds
from mlform.config.specs import METADATA_KEYS, Spec
from mlform.context import Context
from mlform.hashing import sha256_text
from mlform.plan import keys
from mlform.plan.model import Desired


def secret_components(ctx: Context, spec: Spec) -> dict[str, str]:
    """A fingerprint per secret the resource's processes get (none: no components)."""
    return ctx.config.vault.components(kinds.of(spec).secret_uses(spec))


def content_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec without the keys that only describe it (description, tags, …)."""
    return {k: v for k, v in spec.items() if k not in METADATA_KEYS}


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
