"""How image files are read: parsed, checked, resolved (`Declaring`)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from mlform.config.containment import Found, code_path
from mlform.config.kinds import Declaring, Resolver
from mlform.config.specs import Source, Spec
from mlform.errors import Problem
from mlform.kinds.image import checks
from mlform.kinds.image.spec import ImageSpec, parse


class ImageDeclaring(Declaring[ImageSpec]):
    name = "image"

    def parse(self, body: Mapping[str, Any], source: Source) -> ImageSpec:
        return parse(body, source)

    def paths(self, spec: Spec) -> Iterable[Found]:
        if isinstance(spec, ImageSpec):
            where = ("code_configuration", "code")
            yield from code_path(spec.source, spec.body, where, spec.code)

    def check(self, spec: ImageSpec, root: Path, skip: Collection[str]) -> list[Problem]:
        return checks.check(spec, root)

    def references(self, spec: ImageSpec, refs: Resolver) -> list[str]:
        """The environment an image installs, and what registers its model: a models/
        file or a runconfig's register_model. A model registered only by hand
        (`mlform models register`) has no producer here; the plan checks it exists."""
        found: list[str] = []
        if spec.environment is not None:
            env = refs.asset("environment", spec.environment, spec.source, ["environment"])
            found.extend([env] if env else [])
        if spec.model is not None:
            found.extend(refs.producers("model", spec.model.name))
        return found


DECLARING = ImageDeclaring()
