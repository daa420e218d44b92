"""A job as `runconfigs/*.yml` declares it: Azure ML's command job YAML, or its sweep
job's (`type: sweep`), whose `trial:` holds the command job each trial runs."""

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
from mlform.sweeps import Invalid
from mlform.sweeps import job as sweeps


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
    # A sweep job's: its search and limits, or what is wrong with them (said by `check`).
    sweep: sweeps.Sweep | None = None
    sweep_problem: Invalid | None = field(default=None, compare=False)

    @property
    def is_sweep(self) -> bool:
        return self.body.get("type") == "sweep"

    @property
    def job(self) -> tuple[Source, Mapping[str, Any]]:
        """Where the command job a run runs is written, and its keys: the file's own, or
        a sweep's `trial:`."""
        if self.is_sweep:
            trial = self.body.get("trial")
            return Source(self.source.doc, (*self.source.where, "trial")), (
                trial if isinstance(trial, Mapping) else {}
            )
        return self.source, self.body


def parse(body: Mapping[str, Any], source: Source) -> RunconfigSpec:
    base = source.doc.path.parent
    fields = common(body)
    inputs = parse_inputs(body, base)
    outputs = {
        str(k): str((v or {}).get("type", "uri_folder"))
        for k, v in (body.get("outputs") or {}).items()
    }
    sweep, problem, job = None, None, body
    if body.get("type") == "sweep":
        trial = body.get("trial")
        job = trial if isinstance(trial, Mapping) else {}
        try:
            sweep = sweeps.parse(body)
        except Invalid as err:
            problem = err
    at = ("trial", "environment") if body.get("type") == "sweep" else ("environment",)
    env, inline = environment_ref(job.get("environment"), source, at)
    code = job.get("code")
    limits = body.get("limits") or {}
    timeout = limits.get("trial_timeout") if sweep is not None else limits.get("timeout")
    return RunconfigSpec(
        **fields,
        source=source,
        command=str(job.get("command", "")),
        code=local_path(base, code) if code else None,
        environment=env,
        compute=str(body.get("compute", "local")).removeprefix("azureml:"),
        inputs=inputs,
        outputs=outputs,
        experiment=str(body.get("experiment_name") or fields["name"]),
        display_name=body.get("display_name"),
        variables={
            str(k): env_text(v) for k, v in (job.get("environment_variables") or {}).items()
        },
        timeout=float(timeout) if timeout else None,
        trigger=str(body.get("trigger", "on_change")),
        register_model=parse_register(body.get("register_model")),
        instance_count=int((job.get("resources") or {}).get("instance_count") or 1),
        distribution=(job.get("distribution") or {}).get("type"),
        inline=inline,
        sweep=sweep,
        sweep_problem=problem,
    )
