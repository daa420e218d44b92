"""A job as `runconfigs/*.yml` declares it: Azure ML's command job YAML, its sweep job's
(`type: sweep`), whose `trial:` holds the command job each trial runs, or its AutoML
job's (`type: automl`), which runs mlform's AutoML driver on the job's data."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mlform.automl import job as automls
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
    # A sweep job's search and limits; what is wrong in a sweep or AutoML job's keys (said
    # by `check`).
    sweep: sweeps.Sweep | None = None
    problem: Invalid | None = field(default=None, compare=False)
    # An AutoML job's: what it searches and within which limits.
    automl: automls.Automl | None = None

    @property
    def is_automl(self) -> bool:
        return self.body.get("type") == "automl"

    def data_at(self, name: str) -> tuple[str, ...]:
        """Where input `name` is written: under `inputs:`, or (an AutoML job's
        training_data and validation_data) at the top."""
        return (name,) if self.is_automl else ("inputs", name)

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
    sweep, problem, job, automl = None, None, body, None
    if body.get("type") == "automl":
        try:
            automl = automls.parse(body)
        except Invalid as err:
            problem = err
        inputs = parse_inputs({"inputs": {k: body[k] for k in automls.DATA if k in body}}, base)
        outputs = {"best_model": "mlflow_model"}
    elif body.get("type") == "sweep":
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
    command = str(job.get("command", ""))
    if automl is not None:
        timeout, command = automl.timeout, _driver(automl, inputs)
    return RunconfigSpec(
        **fields,
        source=source,
        command=command,
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
        problem=problem,
        automl=automl,
    )


def _driver(automl: automls.Automl, inputs: Mapping[str, object]) -> str:
    """The command an AutoML job runs: mlform's driver, on the job's data."""
    settings = json.dumps(automl.settings(), sort_keys=True, separators=(",", ":"))
    parts = [
        "python -m mlform.automl.driver",
        f"--settings {shlex.quote(settings)}",
        "--training-data ${{inputs.training_data}}",
    ]
    if "validation_data" in inputs:
        parts.append("--validation-data ${{inputs.validation_data}}")
    parts.append("--best-model ${{outputs.best_model}}")
    return " ".join(parts)
