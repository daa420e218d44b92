"""A compute target as `compute/*.yml` declares it (Azure ML's compute YAML)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from mlform.config.specs import Source, Spec, common

BUILT_IN = ("local",)  # targets a job may name without declaring them
TYPES = ("local",)  # a compute file's type: → the target that runs its jobs


@dataclass(frozen=True, slots=True)
class ComputeSpec(Spec):
    """A named compute target, for jobs to name in compute:."""

    kind: ClassVar[str] = "compute"
    type: str = "local"


def parse(body: Mapping[str, Any], source: Source) -> ComputeSpec:
    return ComputeSpec(**common(body), source=source, type=str(body.get("type", "local")))
