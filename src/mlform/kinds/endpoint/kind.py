"""Online endpoints: deployments of registered models, behind one address that routes by
traffic weight (blue/green), with keys, probes and data capture.

One apply creates or updates an endpoint, idempotently. A deployment whose model, code,
environment or settings changed starts beside the one serving now; it takes traffic only
once its readiness probe passes, and only then is the old one stopped. One that fails
leaves the old one serving, and the apply fails with the new one's log; when nothing is
left serving (a first deployment that fails), the router is stopped too, so no process
outlives what the state records. Traffic set in
the file is applied in the same apply; a traffic-only change restarts nothing. `plan`
looks at what really runs: a deployment that died is drift, and apply starts it again.
"""

from __future__ import annotations

import json
import secrets
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from mlform import snapshot as snapshots
from mlform.components import canonical, digest_of
from mlform.config.specs import env_text
from mlform.context import Context, Outcome
from mlform.errors import ApplyError, MlformError, PlanError
from mlform.hashing import sha256_text
from mlform.kind import Kind
from mlform.kinds.base import content_spec, declared, secret_components
from mlform.kinds.endpoint import instances, keys, local, probes, routing, signing
from mlform.kinds.endpoint.declaring import EndpointDeclaring
from mlform.kinds.endpoint.instances import Instance, Launch, Target
from mlform.kinds.endpoint.managed import MANAGED
from mlform.kinds.endpoint.spec import DeploymentSpec, EndpointSpec, Probe
from mlform.kinds.endpoint.targets import targets
from mlform.kinds.environment.kind import ensure_built
from mlform.kinds.image.kind import (
    copy_code,
    environment_build,
    resolve_model,
    runtime_digest,
    runtime_folder,
)
from mlform.plan import keys as component_keys
from mlform.plan.model import Change, Desired, Payload
from mlform.registry import models
from mlform.registry.mount import mount
from mlform.secrets import references
from mlform.secrets.managed import ManagedSecret
from mlform.state.records import Recorded
from mlform.storage import captures

_SWITCH = 0.6  # seconds for the router to pick up new routes and finish what is in flight
_LOG_TAIL = 25


@dataclass(frozen=True, slots=True)
class EndpointPayload(Payload):
    spec: EndpointSpec
    snaps: Mapping[str, snapshots.Snapshot]  # deployment → its scoring code, as planned


class EndpointKind(EndpointDeclaring, Kind[EndpointSpec, EndpointPayload]):
    payload = EndpointPayload
    managed_secrets: ClassVar[Mapping[str, ManagedSecret]] = MANAGED

    def desire(self, spec: EndpointSpec, ctx: Context, upstream: Mapping[str, Desired]) -> Desired:
        body = {k: v for k, v in content_spec(spec.body).items() if k != "deployments"}
        components = {
            str(component_keys.Spec()): sha256_text(
                canonical({k: v for k, v in body.items() if k != "traffic"})
            ),
            str(component_keys.Setting("traffic")): canonical(weights(spec)),
            str(component_keys.Part("keys")): _keys_digest(ctx, spec),
        }
        snaps = {}
        producers = ctx.config.deps.get(spec.address, ())
        for dep in spec.deployments:
            snap = snapshots.scan(dep.code, ctx.hasher)
            snaps[dep.name] = snap
            assert dep.model is not None and dep.environment is not None
            model = resolve_model(ctx, dep.model)
            if model is None and not any(p.startswith(("model/", "runconfig/")) for p in producers):
                raise PlanError(
                    f"{spec.address} ({dep.source}): deployment {dep.name}: model {dep.model} "
                    "has no registered version; register one or correct model:"
                )
            env = upstream.get(f"environment/{dep.environment.name}")
            parts = {
                "model": model.ref if model else f"{dep.model} (none yet)",
                "code": snap.digest,
                "environment": str(dep.environment)
                if dep.environment.version
                else str(env.version_key if env else "none"),
                "settings": sha256_text(canonical(content_spec(dep.body)), runtime_digest()),
            }
            for part, value in parts.items():
                components[str(component_keys.Part(f"deployment {dep.name} {part}"))] = value
        for dep_address in producers:
            components[str(component_keys.Dep(dep_address))] = "named"
        components.update(secret_components(ctx, spec))
        shown = ", ".join(f"{d.name} ({d.compute})" for d in spec.deployments) or "none"
        return declared(
            spec,
            ctx,
            components,
            body=body,
            replace_keys=frozenset({"auth_mode", "port"}),
            summary=f"deployments: {shown}",
            payload=EndpointPayload(spec, snaps),
        )

    def refresh(self, recorded: Recorded, ctx: Context) -> str | None:
        """What is not running that the record says should be."""
        problems = []
        running = routing.current(ctx.state_dir, recorded.name)
        if running is None or not running.alive():
            problems.append("its router is not running")
        known = targets()
        serving = instances.serving(ctx.read, recorded.name)
        for inst in serving:
            target = known.get(inst.compute)
            if target is None:
                continue
            if not target.alive(inst):
                problems.append(f"deployment {inst.deployment} not running")
            elif not probes.live(inst.port, _probe_of(recorded, inst.deployment)):
                problems.append(f"deployment {inst.deployment} fails its liveness probe")
        for stray in strays(ctx, recorded.name, serving):
            problems.append(
                f"deployment {stray.deployment} has an instance the state does not know "
                f"running ({stray.compute} {stray.handle})"
            )
        return "; ".join(problems) or None

    def apply(self, change: Change, payload: EndpointPayload, ctx: Context) -> Outcome:
        return _Rollout(change, ctx, payload.spec, payload.snaps).run()

    def destroy(self, change: Change, ctx: Context) -> Outcome:
        assert change.before is not None
        name = change.before.name
        known = targets()
        stopped = []
        for inst in instances.serving(ctx.read, name):
            known[inst.compute].stop(inst)
            instances.forget(inst, ctx.state_dir / "endpoints")
            ctx.emit([replace(inst, status="deleted")])
            stopped.append(inst.deployment)
        routing.stop(ctx.state_dir, name)
        keys.remove(ctx.state_dir, name)
        signing.remove(ctx.state_dir, name)
        shown = ", ".join(stopped) or "none running"
        return Outcome(change.before.outputs, message=f"stopped and deleted ({shown})")


class _Rollout:
    """One apply of an endpoint: start what changed beside what serves, switch traffic
    to what is ready, then stop what was replaced."""

    def __init__(
        self,
        change: Change,
        ctx: Context,
        spec: EndpointSpec,
        snaps: Mapping[str, snapshots.Snapshot],
    ) -> None:
        self.change, self.ctx, self.spec, self.snaps = change, ctx, spec, snaps
        self.address = change.address
        self.home = routing.folder(ctx.state_dir, spec.name)
        self.targets = targets()
        self.token_key: Path | None = None  # the file of the key tokens are signed with

    def log(self, message: str) -> None:
        self.ctx.log(self.address, message)

    def run(self) -> Outcome:
        spec, ctx = self.spec, self.ctx
        before = dict(self.change.before.outputs) if self.change.before else {}
        secret = keys.ensure(ctx.state_dir, spec.name)
        hashes = sorted(keys.hashed(k) for k in secret.values())
        if spec.auth_mode in signing.TOKEN_MODES:
            self.token_key = signing.ensure(ctx.state_dir, spec.name, sha256_text(*hashes))
        port = spec.port or before.get("port") or _free_port()
        routing.ensure(ctx.state_dir, spec.name, int(port))
        serving_now = instances.serving(ctx.read, spec.name)
        for stray in strays(ctx, spec.name, serving_now):
            self.targets[stray.compute].stop(stray)
            instances.forget(stray, ctx.state_dir / "endpoints")
            self.log(
                f"deployment {stray.deployment}: stopped an instance the state does not know "
                f"({stray.compute} {stray.handle}, port {stray.port})"
            )
        current = {i.deployment: i for i in serving_now}
        resolved = dict(self.change.after.components) if self.change.after else {}
        serving: dict[str, Instance] = {}
        replaced: list[Instance] = []
        restarted: dict[str, str] = {}  # deployment → why its instance was taken for hung
        failures: list[str] = []
        for dep in spec.deployments:
            model = resolve_model(ctx, dep.model) if dep.model else None
            have = current.get(dep.name)
            target = self.targets[dep.compute]
            if model is None:
                failures.append(f"deployment {dep.name}: model {dep.model} has no version")
                if have is not None and target.alive(have):
                    serving[dep.name] = have
                continue
            resolved[str(component_keys.Part(f"deployment {dep.name} model"))] = model.ref
            digest = _deployment_digest(resolved, dep, hashes)
            if have is not None and have.digest == digest and target.alive(have):
                hung = probes.hung(have.port, dep.liveness, ctx.cancelled)
                if hung is None:
                    serving[dep.name] = have
                    continue
                self.restart(have, hung, target)
                restarted[dep.name] = hung
            fresh, why, tail = self.start(dep, model, digest, hashes, target)
            if fresh is None:
                if have is not None and target.alive(have):
                    serving[dep.name] = have  # the old one keeps serving
                    why += "; the one serving before keeps its traffic"
                elif have is not None:
                    why += "; the one before is not running either, so it serves nothing"
                else:
                    why += "; it has no earlier instance, so it serves nothing"
                failures.append(f"deployment {dep.name}: {why}{tail}")
                continue
            serving[dep.name] = fresh
            if have is not None and dep.name not in restarted:
                replaced.append(have)
        gone = [i for name, i in current.items() if name not in {d.name for d in spec.deployments}]
        shares = weights(spec)
        routes = {n: (i.url, shares.get(n, 0)) for n, i in serving.items()}
        auth = (spec.auth_mode, hashes)
        routing.write_routes(ctx.state_dir, spec.name, routes, auth, token_key=self.token_key)
        if replaced or gone:
            time.sleep(_SWITCH)  # the router takes the new table; requests in flight end
        for old in (*replaced, *gone):
            self.targets[old.compute].stop(old)
            instances.forget(old, ctx.state_dir / "endpoints")
            ctx.emit([replace(old, status="stopped" if old in replaced else "deleted")])
        ctx.emit(
            [replace(i, status="running", weight=shares.get(n, 0)) for n, i in serving.items()]
        )
        if failures and not serving:
            # A router with nothing behind it would be a process no record shows.
            routing.stop(ctx.state_dir, spec.name)
            failures.append(
                f"nothing serves {self.address}, so its router on port {port} was stopped; "
                "fix the deployment and apply again"
            )
        if failures:
            raise ApplyError(f"{self.address}: " + "\n".join(failures))
        resolved[str(component_keys.Part("keys"))] = sha256_text(*hashes)
        assert self.change.after is not None
        applied = replace(self.change.after, components=resolved, digest=digest_of(resolved))
        outputs = {
            "port": int(port),
            "url": f"http://127.0.0.1:{port}",
            "auth_mode": spec.auth_mode,
            "key_hashes": hashes,
            "traffic": shares,
            "deployments": {
                n: {"instance": i.instance, "port": i.port, "compute": i.compute, "model": i.model}
                for n, i in serving.items()
            },
            "probes": {d.name: {"timeout": d.liveness.timeout} for d in spec.deployments},
        }
        started = sorted(
            n
            for n, i in serving.items()
            if i.instance not in {c.instance for c in current.values()} and n not in restarted
        )
        done = [f"started {', '.join(started)}"] if started else []
        done += [f"restarted {n}, which was hung: {why}" for n, why in restarted.items()]
        what = "; ".join(done) or "nothing restarted"
        traffic = ", ".join(f"{n} {w}%" for n, w in shares.items())
        message = f"{what}; traffic {traffic or 'none'}; http://127.0.0.1:{port}/score"
        return Outcome(outputs, message=message, applied=applied)

    def restart(self, hung: Instance, why: str, target: Target) -> None:
        """Kill an instance that runs but fails its liveness probe (stopped, deadlocked):
        it serves nothing, and would not stop gracefully either. A fresh one follows."""
        self.log(
            f"deployment {hung.deployment}: {why}; killing it ({hung.compute} "
            f"{hung.handle}) to start it afresh"
        )
        target.kill(hung)
        instances.forget(hung, self.ctx.state_dir / "endpoints")
        self.ctx.emit([replace(hung, status="failed", error=f"hung: {why}")])

    def start(
        self,
        dep: DeploymentSpec,
        model: models.ModelVersion,
        digest: str,
        hashes: list[str],
        target: Target,
    ) -> tuple[Instance | None, str, str]:
        """A ready instance; or None, why not, and the last lines of its log."""
        ctx = self.ctx
        instance = secrets.token_hex(6)
        folder = self.home / dep.name / instance
        assert dep.environment is not None
        env_ref, requirements, venv = environment_build(ctx, dep.environment, self.address)
        if dep.compute == "local":  # a container installs the packages itself
            venv = ensure_built(ctx, self.address, *env_ref.split(":", 1))
        storage = ctx.storage(model.datastore)
        cached = models.materialize(storage, model, ctx.cache / "models" / model.digest[:20])
        mounted = mount(
            cached, model.folder, folder / "azureml-models" / model.name / model.version
        )
        code = copy_code(self.snaps[dep.name], folder / "code")
        own, secret_values = ctx.config.vault.resolve(dict(dep.variables))
        variables = {**_env_variables(ctx, env_ref), **own}
        variables["MLFORM_KEY_HASHES"] = ",".join(hashes)
        variables["MLFORM_ENDPOINT"] = self.spec.name
        variables["MLFORM_AUTH_MODE"] = self.spec.auth_mode
        if self.token_key is not None:
            variables["MLFORM_TOKEN_KEY_FILE"] = str(self.token_key)
        if dep.request_timeout is not None:
            variables["MLFORM_REQUEST_TIMEOUT"] = f"{dep.request_timeout:g}"
        if dep.max_concurrent is not None:
            variables["MLFORM_MAX_CONCURRENT"] = str(dep.max_concurrent)
        if dep.max_queue_wait is not None:
            variables["MLFORM_MAX_QUEUE_WAIT"] = f"{dep.max_queue_wait:g}"
        if dep.sampling_rate is not None:
            store = ctx.storage(ctx.config.default_datastore)
            store.ensure()
            root = store.local_path("")
            if root is None:  # a datastore in the cloud: an outbox mlform uploads from
                root = captures.outbox(ctx.config.home)
                root.mkdir(parents=True, exist_ok=True)
            variables["MLFORM_CAPTURE_DIR"] = str(root)
            variables["MLFORM_CAPTURE_RATE"] = f"{dep.sampling_rate:g}"
        launch = Launch(
            endpoint=self.spec.name,
            deployment=dep.name,
            instance=instance,
            digest=digest,
            model=model.ref,
            folder=folder,
            code=code,
            script=dep.scoring_script,
            model_dir=mounted.files,
            azureml_model_dir=mounted.azureml,
            environment=env_ref,
            python=venv / "bin" / "python",
            requirements=requirements,
            base_image=dep.base_image,
            runtime=runtime_folder(ctx.cache),
            variables=variables,
            workers=dep.instance_count,
            secrets=secret_values,
        )
        try:
            started = target.start(launch, _free_port(), self.log)
        except MlformError as err:
            return None, str(err), ""
        instances.record(started, folder)
        ctx.emit([started], wait=True)
        if started.compute == "local":
            local.recorded(local.Process.parse(started.handle).pid)
        why = probes.wait_ready(
            started.port, dep.readiness, lambda: target.alive(started), ctx.cancelled
        )
        if why is None:
            self.log(f"deployment {dep.name}: ready on port {started.port} ({model.ref})")
            return started, "", ""
        tail = ctx.config.vault.scrub(target.tail(started, _LOG_TAIL))
        target.stop(started)
        instances.forget(started, ctx.state_dir / "endpoints")
        ctx.emit([replace(started, status="failed", error=why)])
        shown = "\n".join(f"  | {line}" for line in tail.splitlines())
        return (
            None,
            f"the new instance did not become ready: {why}",
            # the first line says it all (a plan's reason); the log tail follows
            f"\nthe last lines of its log:\n{shown}" if shown else "",
        )


def strays(ctx: Context, endpoint: str, serving: list[Instance]) -> list[Instance]:
    """Instances of the endpoint that run though the state does not say they serve: left
    by an apply killed between starting one and recording it, or by a state restored
    from a backup. Nothing routes to them; each holds a port and memory."""
    known = {i.instance for i in serving}
    found = instances.recorded_in(ctx.state_dir / "endpoints", endpoint)
    every = targets()
    return [
        i
        for i in found
        if i.instance not in known and i.compute in every and every[i.compute].alive(i)
    ]


def weights(spec: EndpointSpec) -> dict[str, int]:
    """The traffic as declared; without `traffic:`, an equal share for each deployment."""
    if spec.traffic:
        return {d.name: spec.traffic.get(d.name, 0) for d in spec.deployments}
    count = len(spec.deployments)
    shares = {d.name: 100 // count for d in spec.deployments} if count else {}
    if count:
        shares[spec.deployments[0].name] += 100 - sum(shares.values())
    return shares


def _deployment_digest(
    components: Mapping[str, str], dep: DeploymentSpec, hashes: list[str]
) -> str:
    """What an instance serves: a new value of a secret it gets starts a new one. (Made
    under another fingerprint key, the digest moves too: the next apply of the endpoint
    rolls its deployments once, as a changed value would.)"""
    mine = f"deployment {dep.name} "
    parts = {
        k: v
        for k, v in components.items()
        if isinstance(key := component_keys.parse(k), component_keys.Part)
        and key.name.startswith(mine)
    }
    for name in references.names_in(dict(dep.variables)):
        parts[f"secret {name}"] = components.get(str(component_keys.Secret(name)), "")
    return digest_of({**parts, "keys": sha256_text(*hashes)})


def _keys_digest(ctx: Context, spec: EndpointSpec) -> str:
    found = keys.load(ctx.state_dir, spec.name)
    if not found:
        return "new"
    return sha256_text(*sorted(keys.hashed(k) for k in found.values()))


def _env_variables(ctx: Context, env_ref: str) -> dict[str, str]:
    name, _, version = env_ref.partition(":")
    rows = ctx.read(
        "select spec from asset_versions where kind = 'environment' and name = ? and version = ?",
        [name, version],
    )
    if not rows:
        return {}
    spec = json.loads(rows[0][0])
    return {str(k): env_text(v) for k, v in (spec.get("environment_variables") or {}).items()}


def _probe_of(recorded: Recorded, deployment: str) -> Any:
    timeout = ((recorded.outputs.get("probes") or {}).get(deployment) or {}).get("timeout")
    return Probe(timeout=float(timeout)) if timeout else Probe()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


KIND = EndpointKind()
