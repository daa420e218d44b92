"""A data asset as `data/*.yml` declares it (Azure ML's data YAML)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from mlform.config.refs import Location, parse_location
from mlform.config.specs import HERE, Source, Spec, common, version_of


@dataclass(frozen=True, slots=True)
class DataSpec(Spec):
    kind: ClassVar[str] = "data"
    type: str = "uri_folder"
    location: Location = HERE
    version: str | None = None


def parse(body: Mapping[str, Any], source: Source) -> DataSpec:
    return DataSpec(
        **common(body),
        source=source,
        type=str(body.get("type", "uri_folder")),
        location=parse_location(str(body["path"]), source.doc.path.parent),
        version=version_of(body),
    )
