"""An image's (or a deployment's) references and scoring code."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from mlform.config.checks import missing
from mlform.config.refs import AssetRef
from mlform.config.specs import Source
from mlform.errors import Problem


class Scored(Protocol):
    """What serves a model with scoring code: an image, or an endpoint's deployment."""

    @property
    def source(self) -> Source: ...
    @property
    def body(self) -> Mapping[str, Any]: ...
    @property
    def model(self) -> AssetRef | None: ...
    @property
    def environment(self) -> AssetRef | None: ...
    @property
    def code(self) -> Path: ...
    @property
    def scoring_script(self) -> str: ...


def check(spec: Scored, root: Path) -> list[Problem]:
    problems = []
    for key, ref in (("model", spec.model), ("environment", spec.environment)):
        if ref is None:
            problems.append(
                spec.source.problem(
                    [key],
                    f"'{spec.body[key]}' is not a {key} reference; write NAME:VERSION or "
                    "NAME@latest",
                )
            )
    written = str(spec.body["code_configuration"].get("code", "."))
    if not os.path.isdir(spec.code):
        problems.append(
            spec.source.problem(
                ["code_configuration", "code"],
                missing(spec.source, "code folder", written, spec.code, root),
            )
        )
    elif not os.path.isfile(spec.code / spec.scoring_script):
        problems.append(
            spec.source.problem(
                ["code_configuration", "scoring_script"],
                f"scoring script '{spec.scoring_script}' is not in {written}; it is looked "
                "for relative to code:",
            )
        )
    return problems
