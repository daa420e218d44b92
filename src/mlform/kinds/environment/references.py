"""How jobs, steps, images and deployments name the environment they run in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlform.config.kinds import Resolver
from mlform.config.refs import AssetRef
from mlform.config.specs import Source


def environment_reference(
    refs: Resolver, ref: AssetRef | None, source: Source, body: Mapping[str, Any]
) -> str | None:
    """The environment a job or step runs in; a problem if what it names is not one
    (never a silent run in mlform's own Python)."""
    if ref is not None:
        return refs.asset("environment", ref, source, ["environment"])
    written = source.doc.text([*source.where, "environment"])
    if written is not None and "environment" in body:
        refs.problem(
            source.problem(
                ["environment"],
                f"'{written}' is not an environment reference; write NAME, NAME:VERSION "
                "or NAME@latest (azureml: prefix allowed), or "
                "azureml://registries/<registry>/environments/NAME/versions/N",
            )
        )
    return None
