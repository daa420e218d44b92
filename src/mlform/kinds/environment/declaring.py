"""How environment files are read: parsed, checked, resolved (`Declaring`)."""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from mlform.config.containment import Found, found
from mlform.config.kinds import Declaring
from mlform.config.specs import Source, Spec
from mlform.config.yamlfile import Document
from mlform.errors import Problem
from mlform.kinds.environment import checks
from mlform.kinds.environment.spec import EnvironmentSpec, parse

_CONDA_KEYS = {"name", "channels", "dependencies", "prefix", "variables"}  # a conda file's


class EnvironmentDeclaring(Declaring[EnvironmentSpec]):
    name = "environment"

    def parse(self, body: Mapping[str, Any], source: Source) -> EnvironmentSpec:
        return parse(body, source)

    def misfiled(self, doc: Document) -> Problem | None:
        data = doc.data if isinstance(doc.data, dict) else {}
        if "dependencies" in data and data.keys() <= _CONDA_KEYS:
            return doc.problem(
                [],
                "this looks like a conda file (it has dependencies:), but no environment "
                f"names it; point one at it with conda_file: {doc.path.name}, or move it "
                "out of environments/",
            )
        return None

    def paths(self, spec: Spec) -> Iterable[Found]:
        if not isinstance(spec, EnvironmentSpec):
            return
        for key, value in (("requirements", spec.requirements), ("conda_file", spec.conda_file)):
            if isinstance(value, Path):
                yield found(spec.source, spec.body, (key,), key, value, False)
        build = spec.body.get("build")
        if isinstance(build, Mapping) and isinstance(build.get("path"), str):
            context = Path(os.path.normpath(spec.source.doc.path.parent / build["path"]))
            yield found(spec.source, spec.body, ("build", "path"), "build path", context, False)

    def check(self, spec: EnvironmentSpec, root: Path, skip: Collection[str]) -> list[Problem]:
        return checks.check(spec, root)


DECLARING = EnvironmentDeclaring()
