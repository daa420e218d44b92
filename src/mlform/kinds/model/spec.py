"""A model as `models/*.yml` declares it, or a deployment defines in place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from mlform.config.anonymous import anonymous_name
from mlform.config.refs import AssetRef, Location, parse_asset_ref, parse_location
from mlform.config.specs import HERE, Source, Spec, common, in_place, version_of


@dataclass(frozen=True, slots=True)
class ModelSpec(Spec):
    kind: ClassVar[str] = "model"
    location: Location = HERE
    type: str = "custom_model"
    version: str | None = None


def parse(body: Mapping[str, Any], source: Source) -> ModelSpec:
    return ModelSpec(
        **common(body),
        source=source,
        location=parse_location(str(body["path"]), source.doc.path.parent),
        type=str(body.get("type", "custom_model")),
        version=version_of(body),
    )


def model_ref(value: Any, source: Source) -> tuple[AssetRef | None, tuple[Spec, ...]]:
    """A reference, or a model defined in place (`path:` to its files) and the reference."""
    if isinstance(value, Mapping) and "path" in value:
        name = anonymous_name(value, source.doc.display)
        where = Source(source.doc, (*source.where, "model"))
        defined = parse(in_place(value, name), where)
        return AssetRef(name), (defined,)
    return parse_asset_ref(str(value)), ()
