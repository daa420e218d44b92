"""Pipelines: a job made of steps. The plan says, per step, `reuse` or why it must run:
    > pipeline/retrain  (prepare: reuse; train: code changed (src/train.py);
                         evaluate: after train; register: after evaluate)

A pipeline is applied when its last run's step digests are what the files declare now;
so editing nothing plans nothing, and editing the training script reruns training and
what depends on it, reusing data preparation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from mlform import snapshot as snapshots
from mlform.components import digest_of
from mlform.context import Context, Outcome
from mlform.errors import ApplyError
from mlform.graph import topological
from mlform.kind import Kind
from mlform.kinds.base import declared
from mlform.kinds.compute.spec import where_it_runs
from mlform.kinds.environment.kind import ensure_built
from mlform.kinds.pipeline import steps as stepdb
from mlform.kinds.pipeline.declaring import PipelineDeclaring
from mlform.kinds.pipeline.spec import PipelineSpec
from mlform.plan import keys
from mlform.plan import reasons as why
from mlform.plan.model import Change, Desired, Payload
from mlform.plan.reasons import Reason, ReasonCode
from mlform.secrets import references
from mlform.state.records import Recorded


@dataclass(frozen=True, slots=True)
class PipelinePayload(Payload):
    spec: PipelineSpec
    snaps: Mapping[str, snapshots.Snapshot | None]  # step → its code, as planned
    statics: Mapping[str, Mapping[str, str]]  # step → what its digest is made of, as planned


class PipelineKind(PipelineDeclaring, Kind[PipelineSpec, PipelinePayload]):
    payload = PipelinePayload

    def desire(self, spec: PipelineSpec, ctx: Context, upstream: Mapping[str, Desired]) -> Desired:
        scans: dict[str, snapshots.Snapshot] = {}  # steps often share their code folder
        snaps: dict[str, snapshots.Snapshot | None] = {}
        statics: dict[str, dict[str, str]] = {}
        for step in spec.steps:
            snap = None
            if step.code is not None:
                key = str(step.code)
                if key not in scans:
                    scans[key] = snapshots.scan(step.code, ctx.hasher)
                snap = scans[key]
            snaps[step.name] = snap
            secrets = ctx.config.vault.components(references.names_in(dict(step.variables)))
            statics[step.name] = stepdb.static_components(
                step, spec, snap, upstream, ctx.hasher, ctx.config.root, secrets
            )
        past = stepdb.history(ctx.read, spec.name)
        graph = {s.name: tuple(s.upstream) for s in spec.steps}
        by_name = {s.name: s for s in spec.steps}
        produced: dict[str, dict[str, str]] = {}
        digests: dict[str, str] = {}
        said: list[Reason] = []
        for name in topological(graph, graph):
            step = by_name[name]
            full = stepdb.with_upstream(step, statics[name], produced)
            if full is None:
                waiting = [u for u in step.upstream if u not in produced]
                said.append(why.step(name, f"after {', '.join(waiting)}"))
                continue
            digest = stepdb.step_digest(full)
            digests[name] = digest
            earlier = stepdb.reusable(past, name, digest, full)
            if spec.force_rerun:
                said.append(why.step(name, "force_rerun"))
            elif not step.deterministic:
                said.append(why.step(name, "not deterministic"))
            elif earlier is None:
                said.append(why.step(name, stepdb.reasons(full, past.last.get(name))))
            else:
                said.append(why.step(name, "reuse"))
                produced[name] = {o: v["digest"] for o, v in earlier.outputs.items()}
        reused = all(r.code is ReasonCode.STEP_REUSED for r in said)
        settled = reused and not spec.force_rerun
        components = {str(keys.Step(s.name)): digests.get(s.name, "to run") for s in spec.steps}
        if not settled:
            components[str(keys.Setting("run"))] = "needed"
        files = sum(len(s.files) for s in scans.values())
        return declared(
            spec,
            ctx,
            components,
            trigger=spec.trigger,
            explain=tuple(said),
            summary=f"{len(spec.steps)} steps, {files} code files",
            note=where_it_runs(ctx.config.specs, spec.address, [s.compute for s in spec.steps]),
            payload=PipelinePayload(spec, snaps, statics),
        )

    def refresh(self, recorded: Recorded, ctx: Context) -> str | None:
        return None

    def apply(self, change: Change, payload: PipelinePayload, ctx: Context) -> Outcome:
        assert change.after is not None
        # start-up: plan imports this kind; running the steps' modules only when it applies
        from mlform.kinds.pipeline import execute

        spec, snaps, statics = payload.spec, payload.snaps, payload.statics
        run = execute.PipelineRun(change.address, spec, snaps, statics, ctx, ensure_built)
        results, parent = run.execute()
        outputs = execute.outputs_of(results, parent, run.outputs)
        failed = {n: r for n, r in results.items() if r.status in ("failed", "skipped")}
        if failed:
            lines = [f"{name}: {r.error}" for name, r in failed.items()]
            raise ApplyError(f"{change.address}: run {parent.id} failed; " + "\n".join(lines))
        before = dict(change.before.outputs) if change.before else {}
        latest = int(before.get("version", 0) or 0)
        same = change.before is not None and change.before.spec == change.after.spec
        outputs["version"] = str(latest if same and latest else latest + 1)
        outputs["default_version"] = outputs["version"]
        components = {str(keys.Step(n)): r.digest or "" for n, r in results.items()}
        applied = replace(change.after, components=components, digest=digest_of(components))
        reused = sorted(n for n, r in results.items() if r.status == "reused")
        ran = sorted(n for n, r in results.items() if r.status == "completed")
        message = f"run {parent.id} completed: ran {', '.join(ran) or 'nothing'}"
        if reused:
            message += f"; reused {', '.join(reused)}"
        return Outcome(outputs, message=message, applied=applied)

    def destroy(self, change: Change, ctx: Context) -> Outcome:
        assert change.before is not None
        return Outcome(change.before.outputs, message="its runs stay in the history")


KIND = PipelineKind()
