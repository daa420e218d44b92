"""A run's model output becomes a version when the run completes and its metrics pass
`register_model.when`: the seeds' "validate" step, decided the same way on every apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlform.config import conditions
from mlform.config.specs import RegisterModel
from mlform.context import Context
from mlform.errors import ApplyError, NotFound
from mlform.kinds.runconfig.spec import RunconfigSpec
from mlform.registry import content, gate, models
from mlform.tracking.protocol import OUTPUTS


@dataclass(frozen=True, slots=True)
class Outcome:
    records: list[Any]
    message: str  # which way it went, and why
    outputs: Mapping[str, Any]


def register_output(
    ctx: Context,
    spec: RunconfigSpec,
    run_id: str,
    run_dir: Path,
    values: Mapping[str, str] | None = None,
) -> Outcome:
    register = spec.register_model
    assert register is not None
    path = output_path(run_dir, register, values or {})
    if not path.exists():
        raise ApplyError(
            f"{spec.address}: run {run_id} completed, but its outputs have no {register.path} "
            f"to register as model {register.name} (register_model.path, {spec.source}); "
            "write the model there, e.g. under ${{outputs.model}}, or correct the path"
        )
    # start-up: plan imports this module; metric ingestion (and MLflow's store) only here
    from mlform.tracking.ingest import final_metrics

    metrics = final_metrics(run_id, run_dir)
    current = models.latest(ctx.read, register.name)
    verdict = gate.evaluate(
        conditions.parse(register.when),
        metrics,
        current.metrics if current else None,
        current.ref if current else "",
    )
    why = f" ({verdict})" if verdict.reasons else ""
    if not verdict.passed:
        return Outcome(
            [],
            f"model {register.name} not registered{why}",
            {"model": None, "gate": f"not registered: {verdict}"},
        )
    storage = ctx.storage(ctx.config.default_datastore)
    storage.ensure()
    try:
        files = content.files_under(path)
        entries = content.store_files(storage, files, link=True)
        stored = content.describe(entries, register.type, path if path.is_dir() else path.parent)
    except NotFound as err:
        raise ApplyError(f"{spec.address}: run {run_id}: {err} ({spec.source})") from err
    done = models.register(
        ctx.read,
        stored,
        name=register.name,
        datastore=ctx.config.default_datastore,
        source=f"run {run_id}",
        tags=register.tags,
        description=register.description,
        run_id=run_id,
        metrics=metrics,
        folder=content.folder_name(path),
    )
    return Outcome(
        done.records, f"{done.message}{why}", {"model": done.model.ref, "gate": str(verdict)}
    )


def output_path(
    run_dir: Path, register: RegisterModel, values: Mapping[str, str] | None = None
) -> Path:
    """`model`, `model/model.pkl` or `${{outputs.model}}/model.pkl`, inside the outputs;
    `${{inputs.model}}` for a model the run was given (a pipeline's gating step)."""
    relative = register.path
    for prefix in ("${{inputs.", "${{ inputs."):
        if relative.startswith(prefix) and values is not None:
            name, _, rest = relative[len(prefix) :].partition("}}")
            given = values.get(f"inputs.{name.strip()}")
            if given is not None:
                return Path(given + rest)
    for prefix in ("${{outputs.", "${{ outputs."):
        if relative.startswith(prefix):
            name, _, rest = relative[len(prefix) :].partition("}}")
            relative = f"{name.strip()}{rest}"
    return run_dir / OUTPUTS / relative.lstrip("/")


def plan_note(ctx: Context, spec: RunconfigSpec) -> str:
    """What the plan says a run will do with its model: where the gate stands now."""
    register = spec.register_model
    assert register is not None
    current = models.latest(ctx.read, register.name)
    when = " and ".join(str(c) for c in conditions.parse(register.when))
    note = f"{spec.address} registers model {register.name}"
    if when:
        note += f" if {when}"
    if current is None:
        return note + " (no version yet)"
    shown = ", ".join(
        f"{c.metric} {current.metrics[c.metric]:.4g}"
        for c in conditions.parse(register.when)
        if c.value is None and c.metric in current.metrics
    )
    return note + f" (latest: {current.ref}" + (f", {shown})" if shown else ")")
