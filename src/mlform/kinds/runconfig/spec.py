"""A job as `runconfigs/*.yml` declares it (Azure ML's command job YAML)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mlform.config.refs import AssetRef, local_path
from mlform.config.specs import (
    DataInput,
    RegisterModel,
    Source,
    Spec,
    common,
    env_text,
    parse_inputs,
    parse_register,
)
from mlform.kinds.environment.spec import environment_ref


@dataclass(frozen=True, slots=True)
class RunconfigSpec(Spec):
    kind: ClassVar[str] = "runconfig"
    command: str = ""
    code: Path | None = None
    environment: AssetRef | None = None
    compute: str = "local"
    inputs: Mapping[str, DataInput | str] = field(default_factory=dict)  # literals as text
    outputs: Mapping[str, str] = field(default_factory=dict)  # name → type
    experiment: str = ""
    display_name: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None
    trigger: str = "on_change"
    register_model: RegisterModel | None = None
    instance_count: int = 1  # `resources.instance_count`: a distributed run's processes
    distribution: str | None = None  # `distribution.type`: pytorch, as Azure ML's
    inline: tuple[Spec, ...] = field(default=(), compare=False)  # defined in place


def parse(body: Mapping[str, Any], source: Source) -> RunconfigSpec:
    base = source.doc.path.parent
    fields = common(body)
    inputs = parse_inputs(body, base)
    outputs = {
        str(k): str((v or {}).get("type", "uri_folder"))
        for k, v in (body.get("outputs") or {}).items()
    }
    env, inline = environment_ref(body.get("environment"), source)
    code = body.get("code")
    limits = body.get("limits") or {}
    return RunconfigSpec(
        **fields,
        source=source,
        command=str(body["command"]),
        code=local_path(base, code) if code else None,
        environment=env,
        compute=str(body.get("compute", "local")).removeprefix("azureml:"),
        inputs=inputs,
        outputs=outputs,
        experiment=str(body.get("experiment_name") or fields["name"]),
        display_name=body.get("display_name"),
        variables={
            str(k): env_text(v) for k, v in (body.get("environment_variables") or {}).items()
        },
        timeout=float(limits["timeout"]) if limits.get("timeout") else None,
        trigger=str(body.get("trigger", "on_change")),
        register_model=parse_register(body.get("register_model")),
        instance_count=int((body.get("resources") or {}).get("instance_count") or 1),
        distribution=(body.get("distribution") or {}).get("type"),
        inline=inline,
    )
