"""How data files are read: parsed, checked, resolved (`Declaring`)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from mlform.config.containment import Found, found
from mlform.config.kinds import Declaring, Resolver
from mlform.config.refs import LocalPath
from mlform.config.specs import Source, Spec
from mlform.errors import Problem
from mlform.kinds.data import checks
from mlform.kinds.data.spec import DataSpec, parse


class DataDeclaring(Declaring[DataSpec]):
    name = "data"

    def parse(self, body: Mapping[str, Any], source: Source) -> DataSpec:
        return parse(body, source)

    def check(self, spec: DataSpec, root: Path, skip: Collection[str]) -> list[Problem]:
        return checks.check(spec, root, skip)

    def paths(self, spec: Spec) -> Iterable[Found]:
        if isinstance(spec, DataSpec) and isinstance(spec.location, LocalPath):
            yield found(spec.source, spec.body, ("path",), "path", spec.location.path, True)

    def references(self, spec: DataSpec, refs: Resolver) -> list[str]:
        """The datastore its path is on (the default one for a local path)."""
        return [refs.datastore(spec.location, spec.source, ["path"])]


DECLARING = DataDeclaring()
