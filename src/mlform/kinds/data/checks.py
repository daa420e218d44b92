"""A data asset's path: it exists, and is what its type says."""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

from mlform.config.checks import missing, url_problems
from mlform.config.refs import DatastorePath, LocalPath, Url
from mlform.errors import Problem
from mlform.kinds.data.spec import DataSpec


def check(spec: DataSpec, root: Path, skip: Collection[str]) -> list[Problem]:
    location = spec.location
    if isinstance(location, Url):
        return url_problems(spec.source, location)
    if isinstance(location, DatastorePath):
        return []  # a reference: checked once every datastore is known
    assert isinstance(location, LocalPath)
    path = location.path
    written = str(spec.body["path"])
    if not os.path.exists(path):
        return [spec.source.problem(["path"], missing(spec.source, "path", written, path, root))]
    if "type" in skip:
        return []
    if spec.type == "uri_file" and not os.path.isfile(path):
        message = f"'{written}' is a folder but type is uri_file; use type: uri_folder"
    elif spec.type in ("uri_folder", "mltable") and not os.path.isdir(path):
        # The body has the schema's default type filled in; the text says what was written.
        if spec.source.doc.text([*spec.source.where, "type"]) is not None:
            message = f"'{written}' is a file but type is {spec.type}; use type: uri_file"
        else:
            message = (
                f"'{written}' is a file, but data without a type is a folder; add type: uri_file"
            )
    elif spec.type == "mltable" and not os.path.isfile(path / "MLTable"):
        message = f"'{written}' has no MLTable file; add one or use type: uri_folder"
    else:
        return []
    return [spec.source.problem(["path"], message)]
