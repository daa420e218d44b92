"""Running a pipeline: a parent run, and a child run per step.

Steps start as soon as the steps they bind to have finished, up to `max_concurrency` at
once (default: the cores). Before a step runs, its digest is completed with what its
upstream steps produced; if a completed step run on record has that digest (and the
step is deterministic, and `force_rerun` is off), the step is reused: its outputs are
the earlier run's, linked by reference, and its child run says which run it reused. A
failed step stops its dependents; with `continue_on_step_failure` the other branches
finish, and without it no new step starts. Re-applying reuses what completed, so only
what failed, and what depends on it, runs again.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mlform import snapshot as snapshots
from mlform.config.refs import LocalPath
from mlform.config.specs import DataInput
from mlform.context import Context, Outcome
from mlform.errors import ApplyError, RunFailed
from mlform.kinds.compute.spec import ComputeSpec
from mlform.kinds.pipeline import steps as stepdb
from mlform.kinds.pipeline.spec import Binding, PipelineSpec, StepSpec
from mlform.kinds.runconfig import runner
from mlform.kinds.runconfig.payload import RunPayload
from mlform.kinds.runconfig.spec import RunconfigSpec
from mlform.plan import keys
from mlform.plan.model import Action, Change, Desired
from mlform.state.runs import Experiment, RunRow
from mlform.tracking.protocol import OUTPUTS


@dataclass(frozen=True, slots=True)
class StepResult:
    status: str  # completed | reused | failed | skipped
    run_id: str | None = None
    outputs: Mapping[str, Mapping[str, str]] | None = None  # name → {path, digest}
    reused_from: str | None = None
    error: str | None = None
    digest: str | None = None


class PipelineRun:
    def __init__(
        self,
        address: str,
        spec: PipelineSpec,
        snaps: Mapping[str, snapshots.Snapshot | None],
        statics: Mapping[str, Mapping[str, str]],
        ctx: Context,
        build: runner.Build,
        overrides: Mapping[str, str] | None = None,
        run_id: str | None = None,
    ) -> None:
        self.address, self.spec, self.snaps, self.statics, self.ctx = (
            address,
            spec,
            snaps,
            statics,
            ctx,
        )
        self.build = build  # a step's environment, made ready (`runner.Build`)
        self.overrides = dict(overrides or {})
        self.id = run_id or f"{spec.name}_{time.strftime('%Y%m%d_%H%M%S')}_{secrets.token_hex(2)}"
        self.status_file = ctx.state_dir / "runs" / self.id / "pipeline.json"
        self.history = stepdb.history(ctx.read, spec.name)
        self.results: dict[str, StepResult] = {}
        self.outputs: dict[str, Mapping[str, str]] = {}  # the pipeline's: name → {path, digest}
        self.lock = threading.Lock()

    def log(self, message: str) -> None:
        self.ctx.log(self.address, message)

    def execute(self) -> tuple[dict[str, StepResult], RunRow]:
        spec, ctx = self.spec, self.ctx
        started = time.time()
        parent = RunRow(
            id=self.id,
            experiment=spec.experiment,
            name=spec.name,
            status="running",
            compute="pipeline",
            run_dir=str(ctx.state_dir / "runs" / self.id),
            runconfig=self.address,
            display_name=spec.body.get("display_name"),
            created_at=started,
            started_at=started,
            inputs={k: v for k, v in self.overrides.items()},
        )
        ctx.emit([Experiment(spec.experiment), parent], wait=True)
        self._report("running")
        order = [s.name for s in spec.steps]
        by_name = {s.name: s for s in spec.steps}
        # Steps on this machine share its CPUs; steps on a cluster wait for room there,
        # so as many start at once as the pipeline has (max_concurrency bounds both).
        workers = spec.max_concurrency or os.cpu_count() or 2
        clustered = {s.name for s in spec.steps if _on_cluster(ctx, s.compute)}
        pool_size = spec.max_concurrency or min(_MOST_AT_ONCE, max(workers, len(spec.steps)))
        running: dict[Future[StepResult], str] = {}
        stopping = False
        with ThreadPoolExecutor(max_workers=pool_size) as pool:
            while True:
                for name in order:
                    if name in self.results or name in running.values():
                        continue
                    step = by_name[name]
                    ups = [u for u in step.upstream if u in by_name]
                    if any(
                        self.results.get(u, StepResult("")).status in ("failed", "skipped")
                        for u in ups
                    ):
                        failed = [u for u in ups if self.results[u].status in ("failed", "skipped")]
                        self.results[name] = StepResult(
                            "skipped", error=f"not run: {', '.join(failed)} did not complete"
                        )
                        self.log(f"step {name}: skipped ({', '.join(failed)} did not complete)")
                        continue
                    if stopping or not all(u in self.results for u in ups):
                        continue
                    here = sum(1 for n in running.values() if n not in clustered)
                    if len(running) < pool_size and (name in clustered or here < workers):
                        running[pool.submit(self.step, step)] = name
                if not running:
                    break
                done, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in done:
                    name = running.pop(future)
                    self.results[name] = future.result()
                    self._report("running")
                    if self.results[name].status == "failed" and not spec.continue_on_failure:
                        stopping = True
                if ctx.cancelled.is_set():
                    stopping = True
        for name in order:
            if name not in self.results:
                self.results[name] = StepResult("skipped", error="not run: the pipeline stopped")
        failed = [n for n, r in self.results.items() if r.status in ("failed", "skipped")]
        self._publish()
        ended = time.time()
        final = replace(
            parent,
            status="failed" if failed else "completed",
            ended_at=ended,
            error="; ".join(f"{n}: {self.results[n].error}" for n in failed) or None,
        )
        ctx.emit([final])
        self._report(final.status)
        return self.results, final

    def _report(self, status: str) -> None:
        """The run's progress in its folder, for readers that cannot wait for the state
        (the pipeline endpoint answering GET …/runs/<id> while the run holds it)."""
        self.status_file.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "run_id": self.id,
            "pipeline": self.spec.name,
            "status": status,
            "inputs": self.overrides,
            "outputs": self.outputs,
            "steps": {
                name: {"status": r.status, "run_id": r.run_id, "reused_from": r.reused_from}
                for name, r in self.results.items()
            },
        }
        partial = self.status_file.with_suffix(".partial")
        partial.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(partial, self.status_file)

    def _publish(self) -> None:
        """The pipeline's outputs: what the steps bound to `${{parent.outputs.x}}` produced,
        linked into the pipeline run's own outputs folder, as Azure ML shows them."""
        folder = self.ctx.state_dir / "runs" / self.id / OUTPUTS
        for step in self.spec.steps:
            produced = self.results[step.name].outputs or {}
            for output, name in step.parent_outputs.items():
                if output not in produced:
                    continue
                self.outputs[name] = {**produced[output], "step": step.name}
                link = folder / name
                folder.mkdir(parents=True, exist_ok=True)
                if link.is_symlink() or link.exists():
                    link.unlink()
                link.symlink_to(produced[output]["path"])

    # -- one step ------------------------------------------------------------------------

    def step(self, step: StepSpec) -> StepResult:
        try:
            return self._step(step)
        except Exception as err:  # recorded as the step's failure, never lost
            message = str(err) if isinstance(err, ApplyError) else f"{type(err).__name__}: {err}"
            self.log(f"step {step.name}: failed: {message.splitlines()[0]}")
            return StepResult("failed", error=message)

    def _step(self, step: StepSpec) -> StepResult:
        produced = {
            name: {o: v["digest"] for o, v in (r.outputs or {}).items()}
            for name, r in self.results.items()
        }
        statics = dict(self.statics[step.name])
        for name, value in self.overrides.items():
            for key, bound in step.inputs.items():
                if isinstance(bound, Binding) and bound.step is None and bound.name == name:
                    statics[str(keys.Input(key))] = value
        components = stepdb.with_upstream(step, statics, produced)
        assert components is not None  # every upstream step has completed
        digest = stepdb.step_digest(components)
        reusable = stepdb.reusable(self.history, step.name, digest, components)
        if reusable is not None and step.deterministic and not self.spec.force_rerun:
            return self._reuse(step, digest, components, reusable)
        return self._run(step, digest, components)

    def _reuse(
        self,
        step: StepSpec,
        digest: str,
        components: Mapping[str, str],
        earlier: stepdb.StepRun,
    ) -> StepResult:
        source = earlier.reused_from or earlier.run_id
        run_id = f"{step.name}_{time.strftime('%Y%m%d_%H%M%S')}_{secrets.token_hex(2)}"
        now = time.time()
        rows = self.ctx.read("select run_dir from runs where id = ?", [source])
        row = RunRow(
            id=run_id,
            experiment=self.spec.experiment,
            name=step.name,
            status="completed",
            compute=step.compute,
            run_dir=str(rows[0][0]) if rows else "",
            runconfig=f"{self.address}/{step.name}",
            parent_id=self.id,
            created_at=now,
            started_at=now,
            ended_at=now,
            digest=digest,
            reused_from=source,
        )
        record = stepdb.StepRun(
            self.spec.name, step.name, digest, run_id, "reused", earlier.outputs, components, source
        )
        self.ctx.emit([row, record])
        self.log(f"step {step.name}: reused run {source}")
        return StepResult("reused", run_id, earlier.outputs, source, digest=digest)

    def _run(self, step: StepSpec, digest: str, components: Mapping[str, str]) -> StepResult:
        spec = self._runconfig(step)
        payload = RunPayload(spec, self.snaps.get(step.name))
        desired = Desired(
            address=f"{self.address}/{step.name}",
            kind="runconfig",
            name=step.name,
            digest=digest,
            components=components,
            spec=dict(step.body),
            deps=(),
            source=str(step.source),
            payload=payload,
        )
        change = Change(Action.RUN, desired.address, "runconfig", step.name, (), None, desired)
        self.log(f"step {step.name}: running")
        try:
            outcome: Outcome = runner.run(change, payload, self.ctx, self.build, parent_id=self.id)
        except ApplyError as err:
            self.log(f"step {step.name}: failed")
            run_id = err.run_id if isinstance(err, RunFailed) else None
            self.ctx.emit(
                [
                    stepdb.StepRun(
                        self.spec.name, step.name, digest, run_id or "", "failed", {}, components
                    )
                ]
            )
            return StepResult("failed", run_id, error=str(err), digest=digest)
        self.ctx.emit(outcome.records)
        run_id = str(outcome.outputs["run_id"])
        run_dir = Path(str(outcome.outputs["run_dir"]))
        outputs = {
            name: {
                "path": str(run_dir / OUTPUTS / name),
                "digest": stepdb.output_digest(run_dir / OUTPUTS / name, self.ctx.hasher),
            }
            for name in step.outputs
        }
        self.ctx.emit(
            [
                stepdb.StepRun(
                    self.spec.name, step.name, digest, run_id, "completed", outputs, components
                )
            ]
        )
        registered = outcome.outputs.get("model")
        said = f"; registered {registered}" if registered else ""
        gate = outcome.outputs.get("gate")
        if gate and not registered and step.register_model is not None:
            said = f"; {step.register_model.name} not registered ({gate})"
        self.log(f"step {step.name}: completed (run {run_id}){said}")
        return StepResult("completed", run_id, outputs, digest=digest)

    def _runconfig(self, step: StepSpec) -> RunconfigSpec:
        """The step as a runconfig the runner knows: bindings become the paths of what
        the upstream steps produced, or the pipeline's inputs (with overrides)."""
        inputs: dict[str, DataInput | str] = {}
        for name, value in step.inputs.items():
            if isinstance(value, Binding) and value.step is not None:
                produced = self.results[value.step].outputs or {}
                path = Path(produced[value.name]["path"])
                kind = "uri_file" if path.is_file() else "uri_folder"
                inputs[name] = DataInput(kind, location=LocalPath(path))
            elif isinstance(value, Binding):
                if value.name in self.overrides:
                    inputs[name] = self.overrides[value.name]
                else:
                    inputs[name] = self.spec.inputs[value.name]
            else:
                inputs[name] = value
        return RunconfigSpec(
            name=step.name,
            source=step.source,
            body=dict(step.body),
            command=step.command,
            code=step.code,
            environment=step.environment,
            compute=step.compute,
            inputs=inputs,
            outputs=dict(step.outputs),
            experiment=self.spec.experiment,
            display_name=step.body.get("display_name"),
            variables=dict(step.variables),
            timeout=step.timeout,
            register_model=step.register_model,
        )


_MOST_AT_ONCE = 32  # steps running at once on clusters, when max_concurrency does not say


def _on_cluster(ctx: Context, compute: str) -> bool:
    """Whether `compute` names a cluster, which runs a step on its own nodes."""
    declared = ctx.config.specs.get(f"compute/{compute}")
    return isinstance(declared, ComputeSpec) and declared.type == "ray"


def outputs_of(
    results: Mapping[str, StepResult],
    parent: RunRow,
    published: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    return {
        "run_id": parent.id,
        "status": parent.status,
        "outputs": {name: dict(value) for name, value in (published or {}).items()},
        "steps": {
            name: {"status": r.status, "run_id": r.run_id, "reused_from": r.reused_from}
            for name, r in results.items()
        },
    }
