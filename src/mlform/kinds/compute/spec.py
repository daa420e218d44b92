"""A compute target as `compute/*.yml` declares it (Azure ML's compute YAML)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mlform.compute import RayCluster, RemoteHost
from mlform.config.specs import Source, Spec, common

BUILT_IN = ("local",)  # targets a job may name without declaring them
# a compute file's type: → the target that runs its jobs
TYPES = ("local", "docker", "virtualmachine", "ray")
# the types whose runs see only what they are given, never this machine's environment
ELSEWHERE = ("docker", "virtualmachine", "ray")
# the types that run a job only in its environment, built there (Ray has a Python of its own)
BUILT_THERE = ("docker", "virtualmachine")
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


@dataclass(frozen=True, slots=True)
class ComputeSpec(Spec):
    """A named compute target, for jobs to name in compute:."""

    kind: ClassVar[str] = "compute"
    type: str = "local"
    cpus: float | None = None  # docker: `resources.cpus`, the CPUs a run may use
    memory: str | None = None  # docker: `resources.memory`, as Docker writes it (2g)
    host: RemoteHost | None = None  # virtualmachine: `host` and Azure's `ssh_settings`
    cluster: RayCluster | None = None  # ray: `address`, `runtime_env` and `resources`


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
    cluster = None
    if body.get("type") == "ray" and body.get("address"):
        cluster = RayCluster(
            address=str(body["address"]),
            runtime_env=dict(body.get("runtime_env") or {}),
            num_cpus=_number(resources.get("num_cpus")),
            num_gpus=_number(resources.get("num_gpus")),
            memory=memory_bytes(memory) if memory is not None else None,
        )
    return ComputeSpec(
        **common(body),
        source=source,
        type=str(body.get("type", "local")),
        cpus=float(cpus) if cpus is not None else None,
        memory=str(memory) if memory is not None else None,
        host=host,
        cluster=cluster,
    )


def memory_bytes(written: object) -> int:
    """`2g`, `512m` or a number of bytes, as bytes (Ray counts memory in bytes)."""
    text = str(written).strip().lower()
    unit = text[-1] if text and text[-1] in _UNITS else ""
    return int(float(text.removesuffix(unit) or 0) * _UNITS[unit])


def _number(written: object) -> float | None:
    return float(str(written)) if written is not None else None


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
