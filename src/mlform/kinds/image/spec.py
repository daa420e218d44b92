"""An image as `images/*.yml` declares it: a model, its scoring code and environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mlform.config.refs import AssetRef, local_path, parse_asset_ref
from mlform.config.specs import Source, Spec, common, env_text


@dataclass(frozen=True, slots=True)
class ImageSpec(Spec):
    kind: ClassVar[str] = "image"
    model: AssetRef | None = None  # None: not a reference (the check says so)
    environment: AssetRef | None = None
    code: Path = Path()
    scoring_script: str = ""
    base_image: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)


def parse(body: Mapping[str, Any], source: Source) -> ImageSpec:
    base = source.doc.path.parent
    code = body.get("code_configuration") or {}
    return ImageSpec(
        **common(body),
        source=source,
        model=parse_asset_ref(str(body["model"])),
        environment=parse_asset_ref(str(body["environment"])),
        code=local_path(base, str(code.get("code", "."))),
        scoring_script=str(code.get("scoring_script", "")),
        base_image=body.get("base_image"),
        variables={
            str(k): env_text(v) for k, v in (body.get("environment_variables") or {}).items()
        },
    )
