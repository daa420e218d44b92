"""An environment as `environments/*.yml` declares it, or a job defines in place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mlform.config.anonymous import anonymous_name
from mlform.config.refs import AssetRef, local_path, parse_asset_ref
from mlform.config.specs import Source, Spec, common, env_text, in_place, version_of


@dataclass(frozen=True, slots=True)
class EnvironmentSpec(Spec):
    kind: ClassVar[str] = "environment"
    version: str | None = None
    pip: tuple[str, ...] = ()
    requirements: Path | None = None
    conda_file: Path | Mapping[str, Any] | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    image: str | None = None


def parse(body: Mapping[str, Any], source: Source) -> EnvironmentSpec:
    base = source.doc.path.parent
    conda = body.get("conda_file")
    requirements = body.get("requirements")
    return EnvironmentSpec(
        **common(body),
        source=source,
        version=version_of(body),
        pip=tuple(str(line) for line in body.get("pip", ())),
        requirements=local_path(base, requirements) if requirements else None,
        conda_file=local_path(base, conda) if isinstance(conda, str) else conda,
        variables={
            str(k): env_text(v) for k, v in (body.get("environment_variables") or {}).items()
        },
        image=body.get("image"),
    )


def environment_ref(
    value: Any, source: Source, at: tuple[str, ...] = ("environment",)
) -> tuple[AssetRef | None, tuple[Spec, ...]]:
    """A reference, or an environment defined in place (at `at` in `source`) and the
    reference to it."""
    if isinstance(value, str):
        return parse_asset_ref(value), ()
    if not isinstance(value, Mapping):
        return None, ()
    name = anonymous_name(value, source.doc.display)
    where = Source(source.doc, (*source.where, *at))
    defined = parse(in_place(value, name), where)
    return AssetRef(name), (defined,)
