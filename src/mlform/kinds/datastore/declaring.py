"""How datastore files are read: parsed, checked, resolved (`Declaring`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from mlform.config import specs
from mlform.config.checks import url_problems
from mlform.config.kinds import Declaring
from mlform.config.refs import Url
from mlform.config.specs import DatastoreSpec, Source, Spec
from mlform.errors import Problem
from mlform.secrets import references


class DatastoreDeclaring(Declaring[DatastoreSpec]):
    """Declared under datastores: in workspace.yml; the loader reads them with the
    workspace, which every other kind's paths resolve against."""

    name = "datastore"

    def parse(self, body: Mapping[str, Any], source: Source) -> DatastoreSpec:
        return specs.datastore(body, source, source.doc.path.parent)

    def check(self, spec: DatastoreSpec, root: Path, skip: Collection[str]) -> list[Problem]:
        if isinstance(spec.location, Url):
            return url_problems(spec.source, spec.location)
        return []

    def secret_uses(self, spec: Spec) -> tuple[str, ...]:
        if isinstance(spec, DatastoreSpec):
            return tuple(references.names_in(dict(spec.storage_options)))
        return ()


DECLARING = DatastoreDeclaring()
