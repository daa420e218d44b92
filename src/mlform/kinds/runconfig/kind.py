"""Runconfigs: a command run on a compute target and recorded as a run.

A runconfig is applied when a completed run exists for its digest: the spec, every file
of its code snapshot, and the content of the environment and data it names. So a
commit that changes training code, data or environment plans a run, and one that
changes none of them plans nothing. Description and tags are not part of the digest:
editing them never retrains.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from mlform import snapshot as snapshots
from mlform.components import canonical, digest_of
from mlform.config.refs import LocalPath
from mlform.config.specs import DataInput
from mlform.context import Context, Outcome
from mlform.errors import ApplyError
from mlform.hashing import sha256_text, tree_digest
from mlform.kind import Kind
from mlform.kinds.base import content_spec, declared, secret_components
from mlform.kinds.compute.spec import where_it_runs
from mlform.kinds.environment.kind import ensure_built
from mlform.kinds.runconfig import gated
from mlform.kinds.runconfig.declaring import RunconfigDeclaring
from mlform.kinds.runconfig.payload import RunPayload
from mlform.kinds.runconfig.spec import RunconfigSpec
from mlform.plan import keys
from mlform.plan import reasons as why
from mlform.plan.model import Change, Desired
from mlform.plan.reasons import Reason
from mlform.state.records import Recorded
from mlform.sweeps.job import STEERING

_LISTED_FILES = 1000
# How a run is triggered, and what is done with its model afterwards, is not what it
# computes: editing either never retrains (a new gate applies from the next run on).
_NOT_DIGESTED = frozenset({"trigger", "register_model"})


class RunconfigKind(RunconfigDeclaring, Kind[RunconfigSpec, RunPayload]):
    payload = RunPayload

    def desire(self, spec: RunconfigSpec, ctx: Context, upstream: Mapping[str, Desired]) -> Desired:
        body = {k: v for k, v in content_spec(spec.body).items() if k not in _NOT_DIGESTED}
        steering = {k: body.pop(k) for k in STEERING if k in body} if spec.is_sweep else {}
        components = {str(keys.Spec()): sha256_text(canonical(body))}
        refs: dict[str, str] = {}
        snap = None
        if spec.code is not None:
            # explaining costs nothing extra, and `runs snapshot --explain` reads it later
            snap = snapshots.scan(spec.code, ctx.hasher, explain=True)
            if len(snap.files) <= _LISTED_FILES:
                # named from the workspace root, as the user sees them: code: src/train.py
                prefix = _relative(spec.code, ctx.config.root)
                components.update(
                    {str(keys.CodeFile(prefix + f.relpath)): f.sha256 for f in snap.files}
                )
            else:
                components[str(keys.Code())] = snap.digest
        if spec.environment is not None:
            address = f"environment/{spec.environment.name}"
            _reference(
                components, refs, keys.Environment(), address, spec.environment.version, upstream
            )
        for name, value in spec.inputs.items():
            if not isinstance(value, DataInput):
                continue
            key = keys.Input(name)
            if value.asset is not None:
                address = f"data/{value.asset.name}"
                _reference(components, refs, key, address, value.asset.version, upstream)
            elif isinstance(value.location, LocalPath):
                components[str(key)] = _local_digest(value.location.path, ctx)
        explain: tuple[Reason, ...] = ()
        trial_job = None
        if spec.sweep is not None:
            # A trial computes the same whatever picked it: its job's digest leaves out
            # what steers the search, which the sweep's own digest holds.
            trial_job = digest_of(components)
            limits = dict(steering.get("limits") or {})
            limits.pop("max_total_trials", None)
            components[str(keys.Setting("sweep"))] = sha256_text(
                canonical({**steering, "limits": limits})
            )
            components[str(_TOTAL)] = str(spec.sweep.total)
        components.update(secret_components(ctx, spec))
        if spec.sweep is not None:
            explain = _limit_only(ctx, spec.address, components)
        files = len(snap.files) if snap else 0
        notes = [where_it_runs(ctx.config.specs, spec.address, [spec.compute])]
        if spec.register_model is not None:
            notes.append(gated.plan_note(ctx, spec))
        note = "; ".join(n for n in notes if n)
        return declared(
            spec,
            ctx,
            components,
            trigger=spec.trigger,
            refs=refs,
            summary=f"{files} code files" if snap else "",
            note=note,
            explain=explain,
            payload=RunPayload(spec, snap, trial_job),
        )

    def refresh(self, recorded: Recorded, ctx: Context) -> str | None:
        return None

    def apply(self, change: Change, payload: RunPayload, ctx: Context) -> Outcome:
        # start-up: plan loads this kind; the runner (tracking, MLflow store) only for apply
        from mlform.kinds.runconfig import runner

        if payload.spec.sweep is not None:
            try:
                from mlform.kinds.runconfig import sweep
            except ImportError as err:
                raise ApplyError(
                    f"{change.address}: a sweep job needs Optuna on this machine: "
                    f"pip install 'mlform[sweep]' ({err})"
                ) from None
            return sweep.SweepRun(change, payload, ctx, ensure_built).execute()
        return runner.run(change, payload, ctx, ensure_built)

    def destroy(self, change: Change, ctx: Context) -> Outcome:
        assert change.before is not None
        return Outcome(change.before.outputs, message="its runs stay in the history")


def _reference(
    components: dict[str, str],
    refs: dict[str, str],
    key: keys.Environment | keys.Input,
    address: str,
    version: str | None,
    upstream: Mapping[str, Desired],
) -> None:
    """A pinned version is immutable: the reference itself is its digest. `@latest` is
    the content the upstream resource declares now."""
    name = address.partition("/")[2]
    components[str(keys.Dep(address))] = "named"  # orders deletes; the digest ignores its content
    if version is not None:
        components[str(key)] = f"{name}:{version}"
    elif address in upstream:
        components[str(key)] = str(upstream[address].version_key)
        refs[str(key)] = address


_TOTAL = keys.Setting("max_total_trials")


def _limit_only(ctx: Context, address: str, components: Mapping[str, str]) -> tuple[Reason, ...]:
    """A sweep that changed nothing but how many trials it runs: that, as its reason."""
    rows = ctx.read("select components from resources where address = ?", [address])
    if not rows:
        return ()
    before = json.loads(rows[0][0])
    key = str(_TOTAL)
    if key not in before or before[key] == components[key]:
        return ()
    if {k: v for k, v in before.items() if k != key} != {
        k: v for k, v in components.items() if k != key
    }:
        return ()
    return (why.trials_limit(int(before[key]), int(components[key])),)


def _relative(folder: Path, root: Path) -> str:
    relative = os.path.relpath(folder, root)
    if relative == ".":
        return ""
    return (relative if not relative.startswith("..") else str(folder)) + "/"


def _local_digest(path: Path, ctx: Context) -> str:
    if path.is_file():
        return ctx.hasher.file(path)
    return tree_digest(ctx.hasher.folder(path))


KIND = RunconfigKind()
