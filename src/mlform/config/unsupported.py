"""Azure ML files that are valid for Azure but that mlform does not run yet.

Such a file is one problem, at the key that says what it is (`type: spark`, `$schema`),
naming what it is and what to do, instead of a list of keys the schema of
the folder it sits in does not know.
"""

from __future__ import annotations

import re
from typing import Any

from mlform.config.yamlfile import Document
from mlform.errors import Problem

TODO = "not supported yet"  # how a problem says mlform does not do something yet
# Azure ML's schema file names (…/latest/<name>.schema.json) of files mlform does not run.
_SCHEMAS = {
    "sparkJob": "Spark jobs",
    "parallelJob": "parallel jobs",
    "dataImport": "data imports",
    "batchEndpoint": "batch endpoints",
    "batchDeployment": "batch deployments",
    "modelBatchDeployment": "batch deployments",
    "pipelineComponentBatchDeployment": "batch deployments",
    "featureSet": "feature sets",
    "featureStore": "feature stores",
    "featureStoreEntity": "feature store entities",
    "registry": "registries",
    "connection": "workspace connections",
}
# A job's `type:` → what it is (Azure ML's job types other than command, sweep, automl
# and pipeline).
_JOB_TYPES = {
    "spark": "Spark jobs",
    "parallel": "parallel jobs",
    "import": "data import jobs",
}
_SCHEMA_NAME = re.compile(r"(?:^|/)(?P<name>[A-Za-z]+)\.(?:schema\.)?json$")
_WHAT_TO_DO = {
    "data imports": "export the data to a file and declare it with path:",
}


def unsupported(doc: Document, kind: str, default: str | None = None) -> Problem | None:
    """The one problem of a file of a kind mlform does not run yet (`default`, when its
    keys do not tell); None for the others."""
    data: dict[str, Any] = doc.data if isinstance(doc.data, dict) else {}
    found = _what(data) or (([], default) if default else None)
    if found is None:
        return None
    where, what = found
    todo = _WHAT_TO_DO.get(what, "remove the file or keep it outside this workspace")
    return doc.problem(
        where,
        f"{TODO}: {what}; mlform does not read {doc.display} ({todo})",
        key=False,
    )


def _what(data: dict[str, Any]) -> tuple[list[str], str] | None:
    declared = data.get("$schema")
    match = _SCHEMA_NAME.search(declared) if isinstance(declared, str) else None
    if match:
        name = match["name"]
        for known, what in _SCHEMAS.items():
            if known.lower() == name.lower():
                return ["$schema"], what
    kind = data.get("type")
    if isinstance(kind, str) and kind.lower() in _JOB_TYPES:
        what = _JOB_TYPES[kind.lower()]
        return ["type"], "data imports" if kind.lower() == "import" else what
    if isinstance(data.get("source"), dict) and data["source"].get("type") in (
        "database",
        "file_system",
    ):
        return ["source"], "data imports"
    return None
