"""Where a deployment's instances run, by the compute it names (`local`, `docker`)."""

from __future__ import annotations

from mlform.kinds.endpoint.docker import DockerTarget
from mlform.kinds.endpoint.instances import Target
from mlform.kinds.endpoint.local import LocalTarget


def targets() -> dict[str, Target]:
    return {"local": LocalTarget(), "docker": DockerTarget()}
