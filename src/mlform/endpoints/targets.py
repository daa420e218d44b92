"""Where a deployment's instances run, by the compute it names (`local`, `docker`)."""

from __future__ import annotations

from mlform.endpoints.docker import DockerTarget
from mlform.endpoints.instances import Target
from mlform.endpoints.local import LocalTarget


def targets() -> dict[str, Target]:
    return {"local": LocalTarget(), "docker": DockerTarget()}
