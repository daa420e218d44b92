"""A step's digest and the step runs on record.

A step's digest covers its command, every file of its code, its environment, its
parameters, the component it runs (its file's content, metadata aside) and the content
of its inputs — for an input bound to another step's output,
the digest of what that step produced. So a step is reused exactly when it would compute
the same thing, and one whose upstream produced the same output as before is reused too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlform.components import canonical, digest_of
from mlform.config.refs import LocalPath
from mlform.config.specs import DataInput
from mlform.hashing import Hasher, sha256_text, tree_digest
from mlform.kinds.pipeline.spec import Binding, PipelineSpec, StepSpec
from mlform.plan import fingerprints, keys
from mlform.plan.model import Desired
from mlform.state.records import dumps

if TYPE_CHECKING:
    import duckdb

    from mlform import snapshot as snapshots

Reader = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
_LISTED_FILES = 200
_COMMAND, _COMPUTE, _OUTPUTS, _VARIABLES, _COMPONENT = (
    str(keys.Setting(name)) for name in ("command", "compute", "outputs", "variables", "component")
)
_ENVIRONMENT = str(keys.Environment())
# What a step's reasons name, in this order, when it changed.
_SETTINGS: tuple[keys.Key, ...] = (
    keys.Setting("component"),
    keys.Setting("command"),
    keys.Environment(),
    keys.Setting("compute"),
    keys.Setting("outputs"),
    keys.Setting("variables"),
)


@dataclass(frozen=True, slots=True)
class StepRun:
    """A step's run on record: run, or reused, under one digest."""

    pipeline: str
    step: str
    digest: str
    run_id: str
    status: str  # completed | failed | reused
    outputs: Mapping[str, Mapping[str, str]]  # name → {path, digest}
    components: Mapping[str, str] = field(default_factory=dict)
    reused_from: str | None = None

    def write(self, con: duckdb.DuckDBPyConnection, apply_id: str) -> None:
        con.execute(
            "insert into step_runs values (?, ?, ?, ?, ?, ?, ?, ?, now())",
            [
                self.pipeline,
                self.step,
                self.digest,
                self.run_id,
                self.status,
                dumps(dict(self.outputs)),
                dumps(dict(self.components)),
                self.reused_from,
            ],
        )


@dataclass
class History:
    """A pipeline's step runs: the reusable one per (step, digest), the last per step."""

    reusable: dict[tuple[str, str], StepRun] = field(default_factory=dict)
    last: dict[str, StepRun] = field(default_factory=dict)


def history(read: Reader, pipeline: str) -> History:
    rows = read(
        "select step, digest, run_id, status, outputs, components, reused_from from step_runs "
        "where pipeline = ? order by created_at",
        [pipeline],
    )
    found = History()
    for step, digest, run_id, status, outputs, components, reused_from in rows:
        run = StepRun(
            pipeline,
            step,
            digest,
            run_id,
            status,
            json.loads(outputs),
            json.loads(components),
            reused_from,
        )
        found.last[step] = run
        if status in ("completed", "reused") and _outputs_exist(run):
            found.reusable[(step, digest)] = run
    return found


def reusable(
    found: History, step: str, digest: str, components: Mapping[str, str]
) -> StepRun | None:
    """The step run on record that computed exactly this: the same digest, and the
    same value of every secret it got (as far as fingerprints under one key tell)."""
    earlier = found.reusable.get((step, digest))
    if earlier is not None and fingerprints.compare(earlier.components, components).changed:
        return None
    return earlier


def _outputs_exist(run: StepRun) -> bool:
    return all(Path(o["path"]).exists() for o in run.outputs.values())


def static_components(
    step: StepSpec,
    pipeline: PipelineSpec,
    snap: snapshots.Snapshot | None,
    upstream: Mapping[str, Desired],
    hasher: Hasher,
    root: Path,
    secrets: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Everything in the digest but what other steps produce; `secrets`: the
    fingerprints of the secrets the step gets (compared beside the digest)."""
    components = {
        _COMMAND: sha256_text(step.command),
        _COMPUTE: step.compute,
        _OUTPUTS: canonical(dict(step.outputs)),
        _VARIABLES: sha256_text(canonical(dict(step.variables))),
    }
    components.update(secrets or {})
    if step.component_digest is not None:
        components[_COMPONENT] = step.component_digest
    if snap is not None:
        if len(snap.files) <= _LISTED_FILES:
            prefix = _relative(snap.root, root)
            components.update(
                {str(keys.CodeFile(prefix + f.relpath)): f.sha256 for f in snap.files}
            )
        else:
            components[str(keys.Code())] = snap.digest
    if step.environment is not None:
        if step.environment.version is not None:
            components[_ENVIRONMENT] = str(step.environment)
        else:
            env = upstream.get(f"environment/{step.environment.name}")
            components[_ENVIRONMENT] = str(env.version_key) if env else "unknown"
    for name, value in step.inputs.items():
        if isinstance(value, Binding) and value.step is None:
            bound = pipeline.inputs.get(value.name)
            if bound is not None:
                components[str(keys.Input(name))] = _input_digest(bound, upstream, hasher)
        elif not isinstance(value, Binding):
            components[str(keys.Input(name))] = _input_digest(value, upstream, hasher)
    return components


def _input_digest(value: DataInput | str, upstream: Mapping[str, Desired], hasher: Hasher) -> str:
    if isinstance(value, str):
        return value
    if value.asset is not None:
        if value.asset.version is not None:
            return f"{value.asset.name}:{value.asset.version}"
        data = upstream.get(f"data/{value.asset.name}")
        return f"data:{data.version_key}" if data else "unknown"
    if isinstance(value.location, LocalPath):
        path = value.location.path
        if path.is_file():
            return hasher.file(path)
        if path.is_dir():
            return tree_digest(hasher.folder(path))
        return "missing"
    return str(value.location)


def with_upstream(
    step: StepSpec, components: Mapping[str, str], produced: Mapping[str, Mapping[str, str]]
) -> dict[str, str] | None:
    """The whole components once the digests of the upstream outputs are known (None
    while an upstream step still has to run)."""
    full = dict(components)
    for name, value in step.inputs.items():
        if isinstance(value, Binding) and value.step is not None:
            outputs = produced.get(value.step)
            if outputs is None or value.name not in outputs:
                return None
            full[str(keys.Input(name))] = outputs[value.name]
    return full


def step_digest(components: Mapping[str, str]) -> str:
    return digest_of(components)


def output_digest(path: Path, hasher: Hasher) -> str:
    if path.is_file():
        return hasher.file(path)
    if path.is_dir():
        return tree_digest(hasher.folder(path))
    return "missing"


def reasons(components: Mapping[str, str], last: StepRun | None) -> str:
    """Why a step must run, from what changed since its last run."""
    if last is None:
        return "no run yet"
    if last.status == "failed":
        return "failed last time"
    old, new = keys.typed(last.components), keys.typed(components)
    files = sorted(k.path for k in new if isinstance(k, keys.CodeFile) and old.get(k) != new[k])
    gone = sorted(k.path for k in old if isinstance(k, keys.CodeFile) and k not in new)
    said = []
    if files or gone:
        said.append("code changed (" + ", ".join([*files, *gone][:3]) + ")")
    elif old.get(keys.Code()) != new.get(keys.Code()):
        said.append("code changed")
    for key in _SETTINGS:
        if old.get(key) != new.get(key):
            said.append(f"{key} changed")
    said.extend(fingerprints.compare(last.components, components).reasons())
    inputs = sorted((k for k in new if isinstance(k, keys.Input)), key=lambda k: k.name)
    for key in inputs:
        if old.get(key) != new[key]:
            value = new[key]
            before = old.get(key)
            if before is not None and len(before) + len(value) <= 30:
                said.append(f"input {key.name}: {before} → {value}")
            else:
                said.append(f"input {key.name} changed")
    return ", ".join(said) or "changed"


def _relative(folder: Path, root: Path) -> str:
    relative = os.path.relpath(folder, root)
    if relative == ".":
        return ""
    return (relative if not relative.startswith("..") else str(folder)) + "/"
