"""Runconfigs: a command run on a compute target and recorded as a run.

A runconfig is applied when a completed run exists for its digest: the spec, every file
of its code snapshot, and the content of the environment and data it names. So a
commit that changes training code, data or environment plans a run, and one that
changes none of them plans nothing. Description and tags are not part of the digest:
editing them never retrains.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlform import snapshot as snapshots
from mlform.components import canonical
from mlform.config.containment import Found, code_path, input_paths
from mlform.config.kinds import Resolver
from mlform.config.refs import AssetRef, LocalPath
from mlform.config.specs import DataInput, Source, Spec
from mlform.config.yamlfile import JsonPath
from mlform.context import Context, Outcome
from mlform.errors import Problem
from mlform.hashing import sha256_text, tree_digest
from mlform.kind import Kind
from mlform.kinds.base import content_spec, declared, secret_components
from mlform.kinds.environment.kind import ensure_built
from mlform.kinds.environment.references import environment_reference
from mlform.kinds.runconfig import checks, gated
from mlform.kinds.runconfig.payload import RunPayload
from mlform.kinds.runconfig.spec import RunconfigSpec, parse
from mlform.plan import keys
from mlform.plan.model import Change, Desired
from mlform.secrets import references as secret_references
from mlform.secrets.references import ANY
from mlform.state.records import Recorded

_LISTED_FILES = 1000
# How a run is triggered, and what is done with its model afterwards, is not what it
# computes: editing either never retrains (a new gate applies from the next run on).
_NOT_DIGESTED = frozenset({"trigger", "register_model"})


class RunconfigKind(Kind[RunconfigSpec, RunPayload]):
    name = "runconfig"
    payload = RunPayload
    name_from_file = True  # Azure ML job files may leave name: out

    def parse(self, body: Mapping[str, Any], source: Source) -> RunconfigSpec:
        return parse(body, source)

    def secret_places(self, kind: str) -> tuple[tuple[str, ...], ...]:
        return (("environment_variables", ANY),)

    def defines(self, spec: Spec) -> Sequence[Spec]:
        return spec.inline if isinstance(spec, RunconfigSpec) else ()

    def paths(self, spec: Spec) -> Iterable[Found]:
        if isinstance(spec, RunconfigSpec):
            yield from code_path(spec.source, spec.body, ("code",), spec.code)
            yield from input_paths(spec.source, spec.body, (), spec.inputs)

    def secret_uses(self, spec: Spec) -> tuple[str, ...]:
        if isinstance(spec, RunconfigSpec):
            return tuple(secret_references.names_in(dict(spec.variables)))
        return ()

    def check(self, spec: RunconfigSpec, root: Path, skip: Collection[str]) -> list[Problem]:
        return checks.check(spec, root) + checks.register_model(spec)

    def references(self, spec: RunconfigSpec, refs: Resolver) -> list[str]:
        """The environment, data and compute a runconfig names, each declared here."""
        named: list[tuple[str, AssetRef, JsonPath]] = []
        found = [environment_reference(refs, spec.environment, spec.source, spec.body)]
        for key, value in spec.inputs.items():
            if isinstance(value, DataInput) and value.asset is not None:
                named.append(("data", value.asset, ["inputs", key, "path"]))
        found.extend(refs.asset(kind, ref, spec.source, where) for kind, ref, where in named)
        found.append(refs.named("compute", spec.compute, spec.source, ["compute"], "runs"))
        return [address for address in found if address]

    def produces(self, spec: RunconfigSpec) -> list[tuple[str, str, JsonPath]]:
        model = spec.register_model
        return [] if model is None else [("model", model.name, ["register_model", "name"])]

    def desire(self, spec: RunconfigSpec, ctx: Context, upstream: Mapping[str, Desired]) -> Desired:
        body = {k: v for k, v in content_spec(spec.body).items() if k not in _NOT_DIGESTED}
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
        components.update(secret_components(ctx, spec))
        files = len(snap.files) if snap else 0
        note = ""
        if spec.register_model is not None:
            note = gated.plan_note(ctx, spec)
        return declared(
            spec,
            ctx,
            components,
            trigger=spec.trigger,
            refs=refs,
            summary=f"{files} code files" if snap else "",
            note=note,
            payload=RunPayload(spec, snap),
        )

    def refresh(self, recorded: Recorded, ctx: Context) -> str | None:
        return None

    def apply(self, change: Change, payload: RunPayload, ctx: Context) -> Outcome:
        # start-up: plan loads this kind; the runner (tracking, MLflow store) only for apply
        from mlform.kinds.runconfig import runner

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


def _relative(folder: Path, root: Path) -> str:
    relative = os.path.relpath(folder, root)
    if relative == ".":
        return ""
    return (relative if not relative.startswith("..") else str(folder)) + "/"


def _local_digest(path: Path, ctx: Context) -> str:
    if path.is_file():
        return ctx.hasher.file(path)
    return tree_digest(ctx.hasher.folder(path))
