"""How model files are read: parsed, checked, resolved (`Declaring`)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from mlform.config.containment import Found, found
from mlform.config.kinds import Declaring, Resolver
from mlform.config.refs import LocalPath
from mlform.config.specs import Source, Spec
from mlform.config.yamlfile import JsonPath
from mlform.errors import Problem
from mlform.kinds.model import checks
from mlform.kinds.model.spec import ModelSpec, parse


class ModelDeclaring(Declaring[ModelSpec]):
    name = "model"

    def parse(self, body: Mapping[str, Any], source: Source) -> ModelSpec:
        return parse(body, source)

    def check(self, spec: ModelSpec, root: Path, skip: Collection[str]) -> list[Problem]:
        return checks.check(spec, root)

    def paths(self, spec: Spec) -> Iterable[Found]:
        if isinstance(spec, ModelSpec) and isinstance(spec.location, LocalPath):
            path = spec.location.path
            yield found(spec.source, spec.body, ("path",), "model path", path, True)

    def references(self, spec: ModelSpec, refs: Resolver) -> list[str]:
        """The datastore its path is on (the default one for a local path)."""
        return [refs.datastore(spec.location, spec.source, ["path"])]

    def produces(self, spec: ModelSpec) -> list[tuple[str, str, JsonPath]]:
        return [("model", spec.name, ["name"])]


DECLARING = ModelDeclaring()
