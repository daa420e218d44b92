"""Images declared in images/*.yml: a model version, a scoring script and an environment,
built into a Docker image that serves them (the image registry of the seeds).

An image's digest covers everything that goes into it: the model version's content, the
environment's packages, every file of the code folder, the base image, the serving
runtime and the Dockerfile template. The same inputs never build twice. A model named
`@latest` that a runconfig in the same apply registers is resolved when the image is
built, after the run: if the run registered nothing, nothing is rebuilt.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import mlform
from mlform import buildlog
from mlform import snapshot as snapshots
from mlform._resources import resource_dir
from mlform.components import canonical, digest_of
from mlform.config.refs import AssetRef
from mlform.context import Context, Outcome
from mlform.errors import ApplyError, MlformError, PlanError
from mlform.hashing import sha256_file, sha256_text
from mlform.kind import Kind
from mlform.kinds.base import content_spec, declared, latest_version
from mlform.kinds.image.declaring import ImageDeclaring
from mlform.kinds.image.spec import ImageSpec
from mlform.plan import keys
from mlform.plan.model import Change, Desired, Payload
from mlform.registry import models
from mlform.registry.images import ImageBuild
from mlform.registry.models import ModelVersion
from mlform.registry.mount import mount
from mlform.serving import runtime
from mlform.serving.runtime import DEFAULT_BASE
from mlform.shownpath import shown
from mlform.state.records import Recorded

PORT = 5001
_IN_IMAGE = "/opt/mlform"  # where the build puts each folder (templates/image/Dockerfile.j2)
_RUNTIME_PACKAGES = ("starlette", "uvicorn")
# mlform's own packages a deployment runs: the server, and the masking of its output
_BASE = str(keys.Setting("base"))  # component: the base image a build starts from
_MODEL = str(keys.Setting("model"))  # component: the model version an image serves


@dataclass(frozen=True, slots=True)
class ImagePayload(Payload):
    spec: ImageSpec
    snap: snapshots.Snapshot  # its scoring code, as planned


class ImageKind(ImageDeclaring, Kind[ImageSpec, ImagePayload]):
    payload = ImagePayload

    def desire(self, spec: ImageSpec, ctx: Context, upstream: Mapping[str, Desired]) -> Desired:
        assert spec.model and spec.environment  # else the workspace does not load
        snap = snapshots.scan(spec.code, ctx.hasher)
        env = upstream.get(f"environment/{spec.environment.name}")
        components = {
            str(keys.Spec()): sha256_text(canonical(content_spec(spec.body))),
            str(keys.Environment()): _environment_key(spec, env),
            str(keys.Code()): snap.digest,
            _BASE: base_image(spec, env),
            str(keys.Setting("runtime")): runtime_digest(),
        }
        producers = [
            d
            for d in ctx.config.deps.get(spec.address, ())
            if d.startswith(("model/", "runconfig/"))
        ]
        model = _model(ctx, spec)
        if model is None and not producers:
            raise PlanError(
                f"{spec.address} ({spec.source}): model {spec.model} has no registered version; "
                "register one (mlform models register, models/*.yml, or a runconfig's "
                "register_model) or correct model:"
            )
        components[_MODEL] = _model_key(model)
        for dep in producers:
            components[str(keys.Dep(dep))] = "named"  # orders the build after what registers it
        return declared(
            spec,
            ctx,
            components,
            summary=f"model {model.ref if model else spec.model}, {len(snap.files)} code files",
            payload=ImagePayload(spec, snap),
        )

    def refresh(self, recorded: Recorded, ctx: Context) -> str | None:
        # A local Docker engine's images are a cache, not state: a fresh CI runner has
        # none, and what needs one (a docker deployment) builds its image when it starts.
        return None

    def apply(self, change: Change, payload: ImagePayload, ctx: Context) -> Outcome:
        assert change.after is not None
        spec, snap = payload.spec, payload.snap
        model = _model(ctx, spec)
        if model is None:
            raise ApplyError(
                f"{change.address}: model {spec.model} has no registered version (did the run "
                "that registers it pass its gate?); register one and apply again"
            )
        after = _resolved(change.after, model)
        before = change.before
        if (
            before is not None
            and before.status == "applied"
            and before.digest == after.digest
            and not before.drift
        ):
            return Outcome(
                before.outputs,
                message=f"{model.ref} is what it was built with: nothing to rebuild",
                applied=after,
            )
        # start-up: containers.build loads jinja2, only when an image is built
        from mlform.containers import build, engine

        try:
            client = engine.connect()
            try:
                return self._build(change, ctx, spec, snap, model, after, client, build)
            finally:
                client.close()
        except MlformError as err:
            if str(err).startswith(change.address):
                raise
            raise type(err)(f"{change.address}: {err}") from err

    def _build(
        self,
        change: Change,
        ctx: Context,
        spec: ImageSpec,
        snap: snapshots.Snapshot,
        model: ModelVersion,
        after: Desired,
        client: Any,
        build: Any,
    ) -> Outcome:
        before = dict(change.before.outputs) if change.before else {}
        version = str(int(before.get("latest_version", 0)) + 1)
        repository = f"{ctx.config.name}/{spec.name}".lower()
        registry = ctx.config.container_registry
        reference = (
            f"{registry.rstrip('/')}/{repository}:{version}"
            if registry
            else f"{repository}:{version}"
        )
        env_ref, requirements = _environment(ctx, spec)
        work = ctx.cache / "images" / after.digest[:20]
        storage = ctx.storage(model.datastore)
        model_dir = models.materialize(storage, model, ctx.cache / "models" / model.digest[:20])
        # Laid out as a deployment's instance sees it, so one scoring script serves both.
        mounted = mount(model_dir, model.folder, work / "model")
        code_dir = copy_code(snap, work / "code")
        runtime = runtime_folder(ctx.cache)
        script = spec.scoring_script
        request = build.BuildRequest(
            tag=reference,
            base_image=after.components[_BASE],
            requirements=(*requirements, *runtime_requirements()),
            folders={
                "runtime": runtime,
                "code": code_dir,
                "model": mounted.azureml,
            },
            env={
                **spec.variables,
                "MLFORM_SCORING_SCRIPT": f"{_IN_IMAGE}/code/{script}",
                **mounted.variables(f"{_IN_IMAGE}/model"),
                "MLFORM_DEPLOYMENT": spec.name,
                "MLFORM_HOST": "0.0.0.0",
                "MLFORM_PORT": str(PORT),
            },
            labels={
                "mlform.image": spec.name,
                "mlform.version": version,
                "mlform.model": model.ref,
                "mlform.model.digest": model.digest,
                "mlform.environment": env_ref,
                "mlform.digest": after.digest,
            },
            command=("python", "-m", "mlform.serving"),
            port=PORT,
        )
        log = ctx.config.home / "logs" / f"{change.address.replace('/', '-')}.log"
        log_name = shown(log, ctx.config.root)
        ctx.log(change.address, f"building {reference}; Docker's output: {log_name}")
        progress = ctx.progress

        def tick(seconds: float) -> None:
            if progress is not None:  # a terminal: one status line, redrawn in place
                progress(change.address, f"building {reference}… {seconds:.0f}s")

        pushed = None
        with buildlog.LineLog(log, tick) as write:
            try:
                built = build.build(
                    request,
                    cache=ctx.cache / "wheels",
                    log=write,
                    cancelled=ctx.cancelled,
                    client=client,
                )
                if registry:
                    digest = build.push(client, reference, write)
                    pushed = f"{reference.rsplit(':', 1)[0]}@{digest}"
            except MlformError as err:
                raise type(err)(f"{err}\n  (the whole output: {log_name})") from err
            finally:
                if progress is not None:
                    progress(change.address, None)
        shutil.rmtree(work, ignore_errors=True)
        row = ImageBuild(
            spec.name,
            version,
            reference,
            built.image_id,
            after.digest,
            model.ref,
            env_ref,
            after.components[str(keys.Environment())],
            sha256_file(spec.code / script),
            after.components[_BASE],
            built.size,
            pushed,
            built.seconds,
        )
        outputs = {
            "version": version,
            "latest_version": latest_version(before.get("latest_version"), version),
            "reference": reference,
            "image_id": built.image_id,
            "model": model.ref,
            "environment": env_ref,
            "pushed": pushed,
        }
        where = f"; pushed {pushed}" if pushed else ""
        message = f"built {reference} ({model.ref}, {built.seconds:.0f}s){where}"
        return Outcome(outputs, [row], message, applied=after)

    def destroy(self, change: Change, ctx: Context) -> Outcome:
        assert change.before is not None
        return Outcome(
            change.before.outputs,
            message="its builds stay in the image registry and the Docker engine",
        )


def base_image(spec: ImageSpec, env: Desired | None) -> str:
    if spec.base_image:
        return spec.base_image
    declared_image = env.spec.get("image") if env is not None else None
    return str(declared_image or DEFAULT_BASE)


def runtime_requirements() -> tuple[str, ...]:
    """The serving runtime's own packages, pinned to what this mlform runs with."""
    return tuple(f"{name}=={importlib.metadata.version(name)}" for name in _RUNTIME_PACKAGES)


def runtime_digest() -> str:
    """Of the serving runtime's files, the Dockerfile template and the runtime's pins:
    a new mlform that serves differently rebuilds the images."""
    files = runtime.source_files()
    template = resource_dir("templates") / "image" / "Dockerfile.j2"
    return sha256_text(*(sha256_file(path) for path in [*files, template]), *runtime_requirements())


def _model(ctx: Context, spec: ImageSpec) -> ModelVersion | None:
    assert spec.model is not None
    return resolve_model(ctx, spec.model)


def resolve_model(ctx: Context, ref: AssetRef) -> ModelVersion | None:
    """The version `ref` names now (`@latest`: the highest not archived), or None."""
    if ref.version is None:
        return models.latest(ctx.read, ref.name)
    try:
        return models.resolve(ctx.read, str(ref))
    except MlformError:
        return None


def _model_key(model: ModelVersion | None) -> str:
    return f"{model.ref}@{model.digest}" if model else "none yet"


def _resolved(after: Desired, model: ModelVersion) -> Desired:
    """The desired image with the model version the apply found (a run may just have
    registered a new one), so the state records what was really built."""
    components = {**after.components, _MODEL: _model_key(model)}
    return replace(after, components=components, digest=digest_of(components))


def _environment_key(spec: ImageSpec, env: Desired | None) -> str:
    assert spec.environment is not None
    if spec.environment.version is not None:
        return str(spec.environment)
    return str(env.version_key) if env is not None else "none"


def _environment(ctx: Context, spec: ImageSpec) -> tuple[str, list[str]]:
    assert spec.environment is not None
    ref, lines, _ = environment_build(ctx, spec.environment, spec.address)
    return ref, lines


def environment_build(ctx: Context, env: AssetRef, owner: str) -> tuple[str, list[str], Path]:
    """The environment version `env` names: name:version, its pip lines, its venv."""
    name = env.name
    version = env.version
    if version is None:
        rows = ctx.read("select outputs from resources where address = ?", [f"environment/{name}"])
        version = json.loads(rows[0][0]).get("version") if rows else None
    rows = ctx.read(
        "select manifest, location from asset_versions where kind = 'environment' "
        "and name = ? and version = ?",
        [name, str(version)],
    )
    if not rows:
        raise ApplyError(f"{owner}: environment {name}:{version} does not exist")
    lines = [str(item["requirement"]) for item in json.loads(rows[0][0]) if "requirement" in item]
    return f"{name}:{version}", lines, Path(rows[0][1])


def copy_code(snap: snapshots.Snapshot, target: Path) -> Path:
    """The code folder as the snapshot sees it (ignore files applied)."""
    return _linked(((snap.root / e.relpath, e.relpath) for e in snap.files), target)


def _linked(files: Iterable[tuple[Path, str]], target: Path) -> Path:
    """A fresh folder `target` holding each (source, relpath): hard-linked, else copied."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for source, relpath in files:
        path = target / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, path)
        except OSError:
            shutil.copy2(source, path)
    return target


def runtime_folder(cache: Path) -> Path:
    """A folder holding just the serving runtime (`mlform/__init__.py` and the
    `runtime.FOLDERS`): it needs nothing but starlette and uvicorn."""
    target = cache / "runtime" / runtime_digest()[:20]
    if (target / "mlform" / "serving").is_dir():
        return target
    # An image and a local deployment may both ask at once (apply runs changes side by
    # side): one builds, the other waits and finds it built.
    with runtime.locked(target):
        if (target / "mlform" / "serving").is_dir():
            return target
        package = Path(mlform.__file__).parent
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        (partial / "mlform").mkdir(parents=True)
        shutil.copy2(package / "__init__.py", partial / "mlform" / "__init__.py")
        for name in runtime.FOLDERS:
            shutil.copytree(
                package / name,
                partial / "mlform" / name,
                ignore=shutil.ignore_patterns("__pycache__"),
            )
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    return target


KIND = ImageKind()
