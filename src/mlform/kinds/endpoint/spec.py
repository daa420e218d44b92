"""An online endpoint as `endpoints/*.yml` declares it, with its deployments (in the
endpoint's file, or in files of their own that name it, as Azure ML keeps them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mlform.config.refs import AssetRef, local_path
from mlform.config.specs import Source, Spec, common, env_text
from mlform.config.yamlfile import JsonPath
from mlform.kinds.environment.spec import environment_ref
from mlform.kinds.model.spec import model_ref


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

    @property
    def owner(self) -> tuple[str, JsonPath] | None:
        return self.endpoint, ["endpoint_name"]


@dataclass(frozen=True, slots=True)
class EndpointSpec(Spec):
    kind: ClassVar[str] = "endpoint"
    auth_mode: str = "key"
    port: int | None = None
    traffic: Mapping[str, int] = field(default_factory=dict)
    deployments: tuple[DeploymentSpec, ...] = ()


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
    model, model_inline = model_ref(body["model"], source)
    env_ref, env_inline = environment_ref(body["environment"], source)
    return DeploymentSpec(
        **common(body),
        source=source,
        endpoint=str(body.get("endpoint_name") or endpoint),
        model=model,
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


def parse(body: Mapping[str, Any], source: Source) -> EndpointSpec:
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
