"""Instances as containers: the deployment's image (built as images/*.yml images are,
from host-side wheels) run on the host network, bound to 127.0.0.1 and its own port."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

from mlform import private
from mlform.cachedir import cache_dir
from mlform.errors import EngineUnavailable, MlformError
from mlform.kinds.endpoint.instances import Instance, Launch
from mlform.masking import variables
from mlform.registry.mount import Mounted
from mlform.serving import runtime, secretenv

_IN_IMAGE = "/opt/mlform"
_TOKEN_KEYS = "/run/secrets/mlform-token-keys"
_SECRET_VARIABLES = "/run/secrets/mlform-variables"


class DockerTarget:
    def start(self, launch: Launch, port: int, log: Callable[[str], None]) -> Instance:
        # start-up: plan imports this module; the engine's (and jinja2's for builds) only here
        from mlform.containers import build, engine
        from mlform.containers import run as containers

        assert launch.runtime is not None
        cache = cache_dir()
        # The image holds the files as Azure mounts them (see `mount`): the model folder
        # is AZUREML_MODEL_DIR, and MLFORM_MODEL_DIR the registered folder inside it.
        mounted = Mounted(launch.azureml_model_dir or launch.model_dir, launch.model_dir)
        capture = launch.variables.get("MLFORM_CAPTURE_DIR")
        requirements = (*launch.requirements, *runtime.pins(capture=capture is not None))
        tag = f"mlform-deployment/{launch.endpoint}-{launch.deployment}:{launch.digest[:12]}"
        request = build.BuildRequest(
            tag=tag,
            base_image=launch.base_image or runtime.DEFAULT_BASE,
            requirements=requirements,
            folders={
                "runtime": launch.runtime,
                "code": launch.code,
                "model": mounted.azureml,
            },
            env={
                "MLFORM_SCORING_SCRIPT": f"{_IN_IMAGE}/code/{launch.script}",
                **mounted.variables(f"{_IN_IMAGE}/model"),
                "MLFORM_DEPLOYMENT": launch.deployment,
            },
            labels={
                "mlform.endpoint": launch.endpoint,
                "mlform.deployment": launch.deployment,
                "mlform.model": launch.model,
                "mlform.environment": launch.environment,
            },
            command=("python", "-m", "mlform.serving"),
        )
        client = engine.connect()
        try:
            built = build.build(request, cache=cache / "wheels", log=log, client=client)
            env = {
                **launch.server_environment(),
                "MLFORM_INSTANCE": launch.instance,
                "MLFORM_HOST": "127.0.0.1",
                "MLFORM_PORT": str(port),
                "MLFORM_WORKERS": str(launch.workers),
            }
            volumes = {capture: capture} if capture else {}
            read_only = {}
            hidden = _secret_variables(env)
            if hidden:  # mounted, not in the environment, which `docker inspect` shows
                held = launch.folder / "secret-variables"
                private.folder(held)
                private.write(held / "variables.json", json.dumps(hidden).encode())
                read_only[str(held)] = _SECRET_VARIABLES
                env = {k: v for k, v in env.items() if k not in hidden}
                env[secretenv.FILE] = f"{_SECRET_VARIABLES}/variables.json"
            token_keys = launch.variables.get("MLFORM_TOKEN_KEY_FILE")
            if token_keys:  # mounted, not in the environment, which `docker inspect` shows
                # Its folder, not the file: a file mounted alone stays the one the container
                # started with, and a rotation replaces it.
                ring = Path(token_keys)
                read_only[str(ring.parent)] = _TOKEN_KEYS
                env["MLFORM_TOKEN_KEY_FILE"] = f"{_TOKEN_KEYS}/{ring.name}"
            name = f"mlform-{launch.endpoint}-{launch.deployment}-{launch.instance}"
            container = containers.start(
                client,
                built.image_id,
                name=name,
                env=env,
                labels={"mlform.endpoint": launch.endpoint, "mlform.instance": launch.instance},
                volumes=volumes or None,
                read_only=read_only or None,
            )
        finally:
            client.close()
        log(f"deployment {launch.deployment}: started container {name} on port {port}")
        return Instance(
            launch.endpoint,
            launch.deployment,
            launch.instance,
            "docker",
            launch.digest,
            launch.model,
            port,
            str(container.id),
            name,
            image=tag,
        )

    def alive(self, instance: Instance) -> bool:
        # start-up: plan imports this module; the engine's only for a container
        from mlform.containers import engine

        try:
            client = engine.connect()
        except EngineUnavailable:
            return False
        try:
            # start-up: the Docker SDK, only when a container is asked
            import docker.errors

            try:
                container = client.containers.get(instance.handle)
            except docker.errors.NotFound:
                return False
            return bool(container.status == "running")
        finally:
            client.close()

    def stop(self, instance: Instance) -> None:
        # start-up: plan imports this module; the engine's only for a container
        from mlform.containers import engine
        from mlform.containers import run as containers

        client = engine.connect()
        try:
            containers.stop(client, instance.handle)
        finally:
            client.close()

    def kill(self, instance: Instance) -> None:
        # start-up: plan imports this module; the engine's only for a container
        from mlform.containers import engine
        from mlform.containers import run as containers

        client = engine.connect()
        try:
            containers.stop(client, instance.handle, timeout=0)
        finally:
            client.close()

    def tail(self, instance: Instance, lines: int) -> str:
        # start-up: plan imports this module; the engine's only for a container
        from mlform.containers import engine
        from mlform.containers import run as containers

        try:
            client = engine.connect()
            try:
                return containers.logs(client, instance.handle, lines)
            finally:
                client.close()
        except MlformError:
            return ""


def _secret_variables(env: Mapping[str, str]) -> dict[str, str]:
    """The variables of `env` that hold a secret (where `variables.VARIABLES` says)."""
    names = {place.partition("[")[0] for place in env.get(variables.VARIABLES, "").split(",")}
    return {name: env[name] for name in sorted(names) if name in env}
