"""A compute target as `compute/*.yml` declares it (Azure ML's compute YAML)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mlform.compute import RemoteHost
from mlform.config.specs import Source, Spec, common

BUILT_IN = ("local",)  # targets a job may name without declaring them
# a compute file's type: → the target that runs its jobs
TYPES = ("local", "docker", "virtualmachine")
# the types whose runs see only what they are given, in their environment built there
ELSEWHERE = ("docker", "virtualmachine")


@dataclass(frozen=True, slots=True)
class ComputeSpec(Spec):
    """A named compute target, for jobs to name in compute:."""

    kind: ClassVar[str] = "compute"
    type: str = "local"
    cpus: float | None = None  # docker: `resources.cpus`, the CPUs a run may use
    memory: str | None = None  # docker: `resources.memory`, as Docker writes it (2g)
    host: RemoteHost | None = None  # virtualmachine: `host` and Azure's `ssh_settings`


def parse(body: Mapping[str, Any], source: Source) -> ComputeSpec:
    resources = body.get("resources") or {}
    cpus = resources.get("cpus")
    memory = resources.get("memory")
    ssh = body.get("ssh_settings") or {}
    host = None
    if body.get("type") == "virtualmachine" and body.get("host"):
        key = Path(str(ssh.get("ssh_private_key_file", "~/.ssh/id_rsa"))).expanduser()
        host = RemoteHost(
            host=str(body["host"]),
            port=int(ssh.get("ssh_port", 22)),
            user=str(ssh.get("admin_username", "azureuser")),
            key_file=key if key.is_absolute() else source.doc.path.parent / key,
        )
    return ComputeSpec(
        **common(body),
        source=source,
        type=str(body.get("type", "local")),
        cpus=float(cpus) if cpus is not None else None,
        memory=str(memory) if memory is not None else None,
        host=host,
    )


def where_it_runs(specs: Mapping[str, Spec], address: str, computes: Iterable[str]) -> str:
    """What the plan says of where `address`'s runs execute, when any of `computes` (the
    names its job or steps give) is a declared target that is not this machine's process:
    `runconfig/train runs on compute box (docker)`; else nothing."""
    shown = []
    for name in dict.fromkeys(computes):
        declared = specs.get(f"compute/{name}")
        if isinstance(declared, ComputeSpec) and declared.type != "local":
            shown.append(f"compute {name} ({declared.type})")
    return f"{address} runs on {' and '.join(shown)}" if shown else ""
