"""Typed, immutable specs built from validated YAML, one class per kind.

A spec knows what the user declared and where; it does no I/O beyond resolving paths.
What a spec costs to digest and how it is applied lives in `mlform.kinds`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mlform.config.anonymous import anonymous_name
from mlform.config.refs import (
    AssetRef,
    DatastorePath,
    LocalPath,
    Location,
    Url,
    local_path,
    parse_asset_ref,
    parse_location,
)
from mlform.config.yamlfile import Document, JsonPath
from mlform.errors import Problem

# Keys that describe a resource without changing what it is: editing them updates the
# record in place and never registers a new version.
METADATA_KEYS = frozenset({"description", "tags", "display_name", "protect", "depends_on"})


_HERE = LocalPath(Path())


@dataclass(frozen=True, slots=True)
class Source:
    """Where a spec was declared: a document and the path of the spec inside it."""

    doc: Document
    where: tuple[str | int, ...] = ()

    def problem(
        self, sub: JsonPath = (), message: str = "", *, key: bool = False, severity: str = "error"
    ) -> Problem:
        return self.doc.problem([*self.where, *sub], message, key=key, severity=severity)

    @property
    def file(self) -> str:
        return self.doc.display

    def __str__(self) -> str:
        line, _ = self.doc.locate(self.where)
        return f"{self.doc.display}:{line}"


@dataclass(frozen=True, slots=True)
class Spec:
    kind: ClassVar[str]
    part_of: ClassVar[str | None] = None  # the kind whose resources it is part of
    name: str
    source: Source = field(compare=False)
    body: Mapping[str, Any]  # the mapping as written, without $schema
    protect: bool = False
    depends_on: tuple[str, ...] = ()

    @property
    def address(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True, slots=True)
class DatastoreSpec(Spec):
    kind: ClassVar[str] = "datastore"
    location: LocalPath | Url = _HERE
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    default: bool = False


@dataclass(frozen=True, slots=True)
class DataSpec(Spec):
    kind: ClassVar[str] = "data"
    type: str = "uri_folder"
    location: Location = _HERE
    version: str | None = None


@dataclass(frozen=True, slots=True)
class EnvironmentSpec(Spec):
    kind: ClassVar[str] = "environment"
    version: str | None = None
    pip: tuple[str, ...] = ()
    requirements: Path | None = None
    conda_file: Path | Mapping[str, Any] | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    image: str | None = None


@dataclass(frozen=True, slots=True)
class DataInput:
    """A runconfig input that is data: a registered asset or a path."""

    type: str
    asset: AssetRef | None = None  # azureml:iris:2, iris@latest
    location: Location | None = None  # a path, resolved like a data asset's
    mode: str = "ro_mount"  # Azure ML's input modes; `direct` hands the run the URL itself


@dataclass(frozen=True, slots=True)
class RegisterModel:
    """A runconfig's `register_model:`: which output becomes a model version, and when."""

    name: str
    path: str  # inside the run's outputs folder
    type: str | None = None  # None: detected from the files
    description: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    when: tuple[str, ...] = ()  # conditions, all of which must hold


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
    inline: tuple[Spec, ...] = field(default=(), compare=False)  # defined in place


@dataclass(frozen=True, slots=True)
class ModelSpec(Spec):
    kind: ClassVar[str] = "model"
    location: Location = _HERE
    type: str = "custom_model"
    version: str | None = None


@dataclass(frozen=True, slots=True)
class ImageSpec(Spec):
    kind: ClassVar[str] = "image"
    model: AssetRef | None = None  # None: not a reference (the check says so)
    environment: AssetRef | None = None
    code: Path = Path()
    scoring_script: str = ""
    base_image: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Binding:
    """A step input bound to the pipeline's input or to another step's output."""

    step: str | None  # None: the pipeline's own input
    name: str  # the input's or output's name

    def __str__(self) -> str:
        if self.step is None:
            return f"${{{{parent.inputs.{self.name}}}}}"
        return f"${{{{parent.jobs.{self.step}.outputs.{self.name}}}}}"


@dataclass(frozen=True, slots=True)
class StepSpec:
    name: str
    source: Source = field(compare=False)
    body: Mapping[str, Any]
    command: str = ""
    code: Path | None = None
    environment: AssetRef | None = None
    compute: str = "local"
    inputs: Mapping[str, Binding | DataInput | str] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)
    variables: Mapping[str, str] = field(default_factory=dict)
    deterministic: bool = True
    timeout: float | None = None
    register_model: RegisterModel | None = None
    component: Path | AssetRef | None = None  # a runconfig or component file, or a name
    origin: Source | None = field(default=None, compare=False)  # its component's file
    component_digest: str | None = None  # the component's content, when it runs one
    parent_outputs: Mapping[str, str] = field(default_factory=dict)  # output → pipeline's
    inline: tuple[Spec, ...] = field(default=(), compare=False)  # defined in place

    @property
    def upstream(self) -> tuple[str, ...]:
        return tuple(
            dict.fromkeys(b.step for b in self.inputs.values() if isinstance(b, Binding) and b.step)
        )


@dataclass(frozen=True, slots=True)
class PipelineSpec(Spec):
    kind: ClassVar[str] = "pipeline"
    experiment: str = ""
    inputs: Mapping[str, DataInput | str] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)  # name → type
    steps: tuple[StepSpec, ...] = ()
    continue_on_failure: bool = False
    force_rerun: bool = False
    max_concurrency: int | None = None
    trigger: str = "on_change"


@dataclass(frozen=True, slots=True)
class Probe:
    """Azure ML's probe settings, in seconds."""

    initial_delay: float = 0.0
    period: float = 1.0
    timeout: float = 2.0
    failure_threshold: int = 30
    success_threshold: int = 1


@dataclass(frozen=True, slots=True)
class DeploymentSpec(Spec):
    kind: ClassVar[str] = "deployment"
    part_of: ClassVar[str | None] = "endpoint"
    endpoint: str = ""
    model: AssetRef | None = None
    environment: AssetRef | None = None
    code: Path = Path()
    scoring_script: str = ""
    compute: str = "local"
    base_image: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    instance_count: int = 1
    request_timeout: float | None = None  # seconds
    max_concurrent: int | None = None
    max_queue_wait: float | None = None  # seconds; None: Azure's default
    liveness: Probe = field(default_factory=Probe)
    readiness: Probe = field(default_factory=Probe)
    sampling_rate: float | None = None  # data capture; None: off
    inline: tuple[Spec, ...] = field(default=(), compare=False)  # defined in place

    @property
    def address(self) -> str:
        return f"deployment/{self.endpoint}/{self.name}"


@dataclass(frozen=True, slots=True)
class EndpointSpec(Spec):
    kind: ClassVar[str] = "endpoint"
    auth_mode: str = "key"
    port: int | None = None
    traffic: Mapping[str, int] = field(default_factory=dict)
    deployments: tuple[DeploymentSpec, ...] = ()


IMPLICIT_DATASTORE = "workspaceblobstore"  # Azure ML's name, so azureml:// paths keep working
IMPLICIT_DATASTORE_PATH = ".mlform/datastore"


def common(body: Mapping[str, Any]) -> dict[str, Any]:
    """The fields every spec has, read from its validated document."""
    return {
        "name": str(body["name"]),
        "body": {k: v for k, v in body.items() if k != "$schema"},
        "protect": bool(body.get("protect", False)),
        "depends_on": tuple(body.get("depends_on", ())),
    }


def version_of(body: Mapping[str, Any]) -> str | None:
    """A version fixed in the file, as text (Azure ML's YAML may write it as a number)."""
    value = body.get("version")
    return None if value is None else str(value)


def datastore(body: Mapping[str, Any], source: Source, root: Path) -> DatastoreSpec:
    options = dict(body.get("storage_options") or {})
    if body.get("type") == "azure_blob":
        location: LocalPath | Url = Url(f"az://{body.get('container_name', '')}", "az")
        options.setdefault("account_name", body.get("account_name"))
    else:
        parsed = parse_location(str(body.get("path", IMPLICIT_DATASTORE_PATH)), root)
        location = parsed if isinstance(parsed, LocalPath | Url) else LocalPath(root)
    return DatastoreSpec(
        **common(body),
        source=source,
        location=location,
        storage_options=options,
        default=bool(body.get("default", False)),
    )


def data(body: Mapping[str, Any], source: Source) -> DataSpec:
    return DataSpec(
        **common(body),
        source=source,
        type=str(body.get("type", "uri_folder")),
        location=parse_location(str(body["path"]), source.doc.path.parent),
        version=version_of(body),
    )


def environment(body: Mapping[str, Any], source: Source) -> EnvironmentSpec:
    base = source.doc.path.parent
    conda = body.get("conda_file")
    requirements = body.get("requirements")
    return EnvironmentSpec(
        **common(body),
        source=source,
        version=version_of(body),
        pip=tuple(str(line) for line in body.get("pip", ())),
        requirements=local_path(base, requirements) if requirements else None,
        conda_file=local_path(base, conda) if isinstance(conda, str) else conda,
        variables={
            str(k): env_text(v) for k, v in (body.get("environment_variables") or {}).items()
        },
        image=body.get("image"),
    )


def runconfig(body: Mapping[str, Any], source: Source) -> RunconfigSpec:
    base = source.doc.path.parent
    fields = common(body)
    inputs = _inputs(body, base)
    outputs = {
        str(k): str((v or {}).get("type", "uri_folder"))
        for k, v in (body.get("outputs") or {}).items()
    }
    env, inline = _environment_ref(body.get("environment"), source)
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
        register_model=_register(body.get("register_model")),
        inline=inline,
    )


def _environment_ref(
    value: Any, source: Source, at: tuple[str, ...] = ("environment",)
) -> tuple[AssetRef | None, tuple[Spec, ...]]:
    """A reference, or an environment defined in place (at `at` in `source`) and the
    reference to it."""
    if isinstance(value, str):
        return parse_asset_ref(value), ()
    if not isinstance(value, Mapping):
        return None, ()
    name = anonymous_name(value, source.doc.display)
    where = Source(source.doc, (*source.where, *at))
    defined = environment(_anonymous(value, name), where)
    return AssetRef(name), (defined,)


def _anonymous(definition: Mapping[str, Any], name: str) -> dict[str, Any]:
    """An inline definition under its anonymous name: a name or version written in it is
    ignored, as Azure ML ignores it."""
    return {**{k: v for k, v in definition.items() if k != "version"}, "name": name}


def _model_ref(value: Any, source: Source) -> tuple[AssetRef | None, tuple[Spec, ...]]:
    """A reference, or a model defined in place (`path:` to its files) and the reference."""
    if isinstance(value, Mapping) and "path" in value:
        name = anonymous_name(value, source.doc.display)
        where = Source(source.doc, (*source.where, "model"))
        defined = model(_anonymous(value, name), where)
        return AssetRef(name), (defined,)
    return parse_asset_ref(str(value)), ()


_BINDING = re.compile(
    r"^\$\{\{\s*parent\.(?:inputs\.(?P<input>[A-Za-z0-9_.-]+)|"
    r"jobs\.(?P<step>[A-Za-z0-9_]+)\.outputs\.(?P<output>[A-Za-z0-9_.-]+))\s*\}\}$"
)


_PARENT_OUTPUT = re.compile(r"^\$\{\{\s*parent\.outputs\.(?P<output>[A-Za-z0-9_.-]+)\s*\}\}$")


def binding(value: Any) -> Binding | None:
    match = _BINDING.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        return None
    if match["input"]:
        return Binding(None, match["input"])
    return Binding(match["step"], match["output"])


def pipeline(body: Mapping[str, Any], source: Source) -> PipelineSpec:
    base = source.doc.path.parent
    fields = common(body)
    settings = body.get("settings") or {}
    default_compute = str(settings.get("default_compute", "local")).removeprefix("azureml:")
    default_env = settings.get("default_environment")
    steps = []
    for name, step in (body.get("jobs") or {}).items():
        if isinstance(step, Mapping):
            where = Source(source.doc, (*source.where, "jobs", str(name)))
            steps.append(_step(str(name), step, where, default_compute, default_env))
    return PipelineSpec(
        **fields,
        source=source,
        experiment=str(body.get("experiment_name") or fields["name"]),
        inputs=_inputs(body, base),
        outputs={
            str(k): str((v or {}).get("type", "uri_folder"))
            for k, v in (body.get("outputs") or {}).items()
        },
        steps=tuple(steps),
        continue_on_failure=bool(settings.get("continue_on_step_failure", False)),
        force_rerun=bool(settings.get("force_rerun", False)),
        max_concurrency=settings.get("max_concurrency"),
        trigger=str(body.get("trigger", "on_change")),
    )


def _step(
    name: str, body: Mapping[str, Any], source: Source, compute: str, environment: Any
) -> StepSpec:
    base = source.doc.path.parent
    inputs: dict[str, Binding | DataInput | str] = {}
    raw = dict(body.get("inputs") or {})
    bound = {k: binding(v) for k, v in raw.items()}
    literal = {k: v for k, v in raw.items() if bound[k] is None}
    inputs.update(_inputs({"inputs": literal}, base))
    inputs.update({k: b for k, b in bound.items() if b is not None})
    if "environment" in body:
        env, inline = _environment_ref(body["environment"], source)
    else:  # the pipeline's settings.default_environment
        pipeline = Source(source.doc, source.where[:-2])
        env, inline = _environment_ref(environment, pipeline, ("settings", "default_environment"))
    code = body.get("code")
    limits = body.get("limits") or {}
    outputs = dict(body.get("outputs") or {})
    published = {
        k: _PARENT_OUTPUT.match(v.strip()) for k, v in outputs.items() if isinstance(v, str)
    }
    return StepSpec(
        name=name,
        source=source,
        body=dict(body),
        command=str(body.get("command", "")),
        code=local_path(base, code) if code else None,
        environment=env,
        compute=str(body.get("compute", compute)).removeprefix("azureml:"),
        inputs=inputs,
        outputs={
            str(k): str(v.get("type", "uri_folder")) if isinstance(v, Mapping) else "uri_folder"
            for k, v in outputs.items()
        },
        variables={
            str(k): env_text(v) for k, v in (body.get("environment_variables") or {}).items()
        },
        deterministic=bool(body.get("is_deterministic", True)),
        timeout=float(limits["timeout"]) if limits.get("timeout") else None,
        register_model=_register(body.get("register_model")),
        component=_component_ref(body.get("component"), base),
        parent_outputs={str(k): m["output"] for k, m in published.items() if m is not None},
        inline=inline,
    )


def _component_ref(value: Any, base: Path) -> Path | AssetRef | None:
    """`azureml:train:1`, `train@latest` or an Azure ML URI names a component; anything
    else is a file."""
    if not isinstance(value, str):
        return None
    if value.startswith("azureml:"):
        return parse_asset_ref(value)
    if "@" in value and "/" not in value:
        return parse_asset_ref(value)
    return local_path(base, value.removeprefix("file:"))


def _inputs(body: Mapping[str, Any], base: Path) -> dict[str, DataInput | str]:
    inputs: dict[str, DataInput | str] = {}
    for key, value in (body.get("inputs") or {}).items():
        if isinstance(value, dict) and "path" in value:
            path = str(value["path"])
            kind = str(value.get("type", "uri_folder"))
            ref = _data_ref(path)
            mode = str(value.get("mode", "ro_mount"))
            inputs[str(key)] = (
                DataInput(kind, asset=ref, mode=mode)
                if ref
                else DataInput(kind, location=parse_location(path, base), mode=mode)
            )
        elif isinstance(value, dict):
            inputs[str(key)] = env_text(value.get("value"))
        elif isinstance(value, str) and value.startswith("azureml:") and _data_ref(value):
            inputs[str(key)] = DataInput("uri_folder", asset=_data_ref(value))
        else:
            inputs[str(key)] = env_text(value)
    return inputs


def _register(body: Any) -> RegisterModel | None:
    if not isinstance(body, Mapping) or "name" not in body or "path" not in body:
        return None
    when = body.get("when") or ()
    return RegisterModel(
        name=str(body["name"]),
        path=str(body["path"]),
        type=body.get("type"),
        description=body.get("description"),
        tags={str(k): env_text(v) for k, v in (body.get("tags") or {}).items()},
        when=(when,) if isinstance(when, str) else tuple(str(w) for w in when),
    )


def model(body: Mapping[str, Any], source: Source) -> ModelSpec:
    return ModelSpec(
        **common(body),
        source=source,
        location=parse_location(str(body["path"]), source.doc.path.parent),
        type=str(body.get("type", "custom_model")),
        version=version_of(body),
    )


def image(body: Mapping[str, Any], source: Source) -> ImageSpec:
    base = source.doc.path.parent
    code = body.get("code_configuration") or {}
    return ImageSpec(
        **common(body),
        source=source,
        model=parse_asset_ref(str(body["model"])),
        environment=parse_asset_ref(str(body["environment"])),
        code=local_path(base, str(code.get("code", "."))),
        scoring_script=str(code.get("scoring_script", "")),
        base_image=body.get("base_image"),
        variables={
            str(k): env_text(v) for k, v in (body.get("environment_variables") or {}).items()
        },
    )


def deployment(body: Mapping[str, Any], source: Source, endpoint: str = "") -> DeploymentSpec:
    base = source.doc.path.parent
    code = body.get("code_configuration") or {}
    settings = body.get("request_settings") or {}
    collector = body.get("data_collector")
    timeout = settings.get("request_timeout_ms")
    queue_wait = settings.get("max_queue_wait_ms")
    rate = None
    if isinstance(collector, Mapping):
        rate = float(collector.get("sampling_rate", 1.0))
    model_ref, model_inline = _model_ref(body["model"], source)
    env_ref, env_inline = _environment_ref(body["environment"], source)
    return DeploymentSpec(
        **common(body),
        source=source,
        endpoint=str(body.get("endpoint_name") or endpoint),
        model=model_ref,
        environment=env_ref,
        code=local_path(base, str(code.get("code", "."))),
        scoring_script=str(code.get("scoring_script", "")),
        compute=str(body.get("compute", "local")),
        base_image=body.get("base_image"),
        variables={
            str(k): env_text(v) for k, v in (body.get("environment_variables") or {}).items()
        },
        instance_count=int(body.get("instance_count", 1)),
        request_timeout=float(timeout) / 1000 if timeout else None,
        max_concurrent=settings.get("max_concurrent_requests_per_instance"),
        max_queue_wait=None if queue_wait is None else float(queue_wait) / 1000,
        liveness=_probe(body.get("liveness_probe")),
        readiness=_probe(body.get("readiness_probe")),
        sampling_rate=rate,
        inline=model_inline + env_inline,
    )


def _probe(body: Any) -> Probe:
    if not isinstance(body, Mapping):
        return Probe()
    known = {k: body[k] for k in Probe.__dataclass_fields__ if k in body}
    return Probe(**known)


def endpoint(body: Mapping[str, Any], source: Source) -> EndpointSpec:
    name = str(body["name"])
    inline = tuple(
        deployment(item, Source(source.doc, (*source.where, "deployments", index)), name)
        for index, item in enumerate(body.get("deployments") or [])
        if isinstance(item, Mapping) and all(k in item for k in ("name", "model", "environment"))
    )
    return EndpointSpec(
        **common(body),
        source=source,
        auth_mode=str(body.get("auth_mode", "key")),
        port=body.get("port"),
        traffic={str(k): int(v) for k, v in (body.get("traffic") or {}).items()},
        deployments=inline,
    )


def _data_ref(path: str) -> AssetRef | None:
    """`azureml:iris:2`, `iris@latest` or `iris:2` in an input's path; a path without a
    prefix or version (`data/iris.csv`, `./x`) stays a path."""
    if "/" in path:
        return None
    if path.startswith("azureml:") or "@" in path or ":" in path:
        return parse_asset_ref(path)
    return None


def env_text(value: Any) -> str:
    """An environment variable's value as the process sees it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


__all__ = [
    "DataSpec",
    "DatastorePath",
    "DatastoreSpec",
    "DeploymentSpec",
    "EndpointSpec",
    "EnvironmentSpec",
    "ImageSpec",
    "LocalPath",
    "ModelSpec",
    "PipelineSpec",
    "RegisterModel",
    "RunconfigSpec",
    "Source",
    "Spec",
    "StepSpec",
    "Url",
]
