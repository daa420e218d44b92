"""Building an image: environment, runtime, code and model, without network.

`build` resolves the base image's Python, downloads the environment's wheels on this
machine, assembles a build context (hard links into the wheel cache where it can), renders
`templates/image/Dockerfile.j2` and runs the engine's build with networking off. The
Dockerfile's layer order is what makes rebuilds cheap: the environment is its own stage,
so a new model version reuses it from Docker's cache and only the last layers change.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

import mlform
from mlform._resources import resource_dir
from mlform.containers import wheels
from mlform.containers.engine import connect, engine_errors
from mlform.errors import ApplyError, BuildFailed

if TYPE_CHECKING:
    import docker

_BUILD_TAIL = 30
_FOLDER_NAME = re.compile(r"[a-z][a-z0-9_.-]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED = {"wheels", "dockerfile"}
# Folders are copied in this order whatever order the caller gives: least changing first.
_FIRST, _LAST = ("runtime",), ("code", "model")
# The legacy builder interleaves bookkeeping with the output of each step.
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # it colours a step's stderr red
_NOISE = re.compile(r"^ ---> (Running in |[0-9a-f]{12}$)|^Removing intermediate container ")


@dataclass(frozen=True, slots=True)
class BuildRequest:
    tag: str  # "mlform-iris/scorer:3"
    base_image: str
    requirements: tuple[str, ...]  # pip requirement lines, the runtime's own included
    folders: Mapping[str, Path]  # name in the image (/opt/mlform/<name>) → local folder
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    command: tuple[str, ...] = ()
    port: int | None = None


@dataclass(frozen=True, slots=True)
class BuiltImage:
    image_id: str  # "sha256:…"
    tag: str
    size: int  # bytes, as the engine reports it
    seconds: float


def build(
    request: BuildRequest,
    *,
    cache: Path,
    log: Callable[[str], None],
    cancelled: threading.Event | None = None,
    client: docker.DockerClient | None = None,
) -> BuiltImage:
    """Build `request.tag`; `cache` keeps base-image probes, wheels and build contexts."""
    started = time.monotonic()
    _check(request)
    own = client is None
    engine = connect() if client is None else client
    try:
        _ensure_base(engine, request.base_image, log)
        target = wheels.probe(engine, request.base_image, cache=cache)
        found = wheels.download(request.requirements, target, cache, log, cancelled=cancelled)
        _stop_if(cancelled, request.tag)
        (cache / "contexts").mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="build-", dir=cache / "contexts") as tmp:
            context = Path(tmp)
            _assemble(context, request, found, target)
            with engine_errors(f"building image {request.tag}"):
                _run_build(engine, context, request.tag, log, cancelled, _advice(found, target))
        with engine_errors(f"inspecting image {request.tag}"):
            image = engine.images.get(request.tag)
        return BuiltImage(
            str(image.id), request.tag, int(image.attrs["Size"]), time.monotonic() - started
        )
    finally:
        if own:
            engine.close()


def render(request: BuildRequest, target: wheels.PythonTarget) -> str:
    """The Dockerfile for `request` (also what `build` writes into the context)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(resource_dir("templates") / "image"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        autoescape=False,
    )
    env.filters["dq"] = _quoted
    env.filters["json"] = json.dumps
    return env.get_template("Dockerfile.j2").render(
        version=mlform.__version__,
        tag=request.tag,
        target=target.describe(),
        base_image=request.base_image,
        folders=_ordered(request.folders),
        env=request.env,
        labels=request.labels,
        port=request.port,
        command=list(request.command),
    )


def push(client: docker.DockerClient, tag: str, log: Callable[[str], None]) -> str:
    """Push `tag` to the registry it names; return the digest the registry gave it."""
    # start-up: the Docker SDK, only when a build runs
    from docker.utils import parse_repository_tag

    repository, reference = parse_repository_tag(tag)
    registry = _registry(repository)
    digest: str | None = None
    said: set[tuple[str, str]] = set()
    with engine_errors(f"pushing image {tag}"):
        for entry in client.images.push(repository, tag=reference, stream=True, decode=True):
            problem = _error_of(entry)
            if problem is not None:
                raise ApplyError(
                    f"pushing image {tag} to {registry} failed: {problem}; check that the "
                    f"registry is running and reachable from the Docker engine, and "
                    f"`docker login {registry}` if it needs credentials"
                )
            aux = entry.get("aux")
            if isinstance(aux, dict) and aux.get("Digest"):
                digest = str(aux["Digest"])
            status, layer = str(entry.get("status", "")), str(entry.get("id", ""))
            if status and status not in {"Pushing", "Waiting"} and (layer, status) not in said:
                said.add((layer, status))  # one line per layer state, not per progress tick
                log(f"{layer}: {status}" if layer else status)
    if digest is None:
        raise ApplyError(f"pushing image {tag} to {registry}: the engine reported no digest")
    return digest


def exists(client: docker.DockerClient, image_id: str) -> bool:
    # start-up: the Docker SDK, only when a build runs
    import docker.errors

    with engine_errors(f"looking up image {image_id}"):
        try:
            client.images.get(image_id)
        except docker.errors.ImageNotFound:
            return False
    return True


def _check(request: BuildRequest) -> None:
    for name, folder in request.folders.items():
        if not _FOLDER_NAME.fullmatch(name) or name.lower() in _RESERVED:
            raise ApplyError(
                f"image {request.tag}: {name!r} cannot name a folder in the image (use "
                "lowercase letters, digits, `_.-`; not `wheels`)"
            )
        if not folder.is_dir():
            raise ApplyError(f"image {request.tag}: folder {folder} (for {name}) does not exist")
    for key, value in request.env.items():
        if not _ENV_NAME.fullmatch(key):
            raise ApplyError(f"image {request.tag}: {key!r} is not an environment variable name")
        _single_line(request.tag, f"environment variable {key}", value)
    for key, value in request.labels.items():
        _single_line(request.tag, f"label {key!r}", key + value)


def _single_line(tag: str, what: str, value: str) -> None:
    # A Dockerfile instruction is one line; a line break cannot be written into it.
    if "\n" in value or "\r" in value:
        raise ApplyError(f"image {tag}: {what} has a line break, which an image cannot carry")


def _ensure_base(client: docker.DockerClient, image: str, log: Callable[[str], None]) -> None:
    # start-up: the Docker SDK, only when a build runs
    import docker.errors

    with engine_errors(f"looking up base image {image}"):
        try:
            client.images.get(image)
            return
        except docker.errors.ImageNotFound:
            pass
        log(f"pulling base image {image}")
        try:
            client.images.pull(image)
        except docker.errors.APIError as err:
            raise BuildFailed(
                f"base image {image} is not on the Docker engine, and pulling it failed: "
                f"{err.explanation or err}; pull or build it first"
            ) from err


def _assemble(
    context: Path, request: BuildRequest, found: Path, target: wheels.PythonTarget
) -> None:
    (context / "wheels").mkdir()
    for path in sorted(found.iterdir()):
        if path.suffix == ".whl" or path.name == wheels.REQUIREMENTS:
            _link_or_copy(path, context / "wheels" / path.name)
    for name, folder in request.folders.items():
        shutil.copytree(folder, context / name, copy_function=_link_or_copy)
    (context / "Dockerfile").write_text(render(request, target), encoding="utf-8")


def _link_or_copy(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Hard-link when on one filesystem (a large model then costs nothing to stage)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _run_build(
    client: docker.DockerClient,
    context: Path,
    tag: str,
    log: Callable[[str], None],
    cancelled: threading.Event | None,
    advice: str,
) -> None:
    stream = client.api.build(
        path=str(context),
        tag=tag,
        decode=True,
        rm=True,
        forcerm=True,
        network_mode="none",
        use_config_proxy=False,  # the build never reaches the network; no proxy to pass
    )
    tail: deque[str] = deque(maxlen=_BUILD_TAIL)
    step = ""
    try:
        for line, problem in _lines(stream):
            # Checked between lines: dropping the stream disconnects, and the engine then
            # stops the build's container; pip and the build steps print often.
            _stop_if(cancelled, tag)
            if problem is not None:
                raise _failure(tag, step, problem, tail, advice)
            if _NOISE.match(line):
                continue
            log(line)
            if line.startswith("Step "):
                step = line
                tail.clear()  # a failure quotes the output of its own step only
            else:
                tail.append(line)
    finally:
        stream.close()


def _lines(stream: Iterable[dict[str, Any]]) -> Iterator[tuple[str, str | None]]:
    """(line, None) for each line of build output, then ("", error) if the build failed."""
    pending = ""
    for entry in stream:
        problem = _error_of(entry)
        if problem is not None:
            if pending:
                yield pending, None
            yield "", problem
            return
        pending += _ANSI.sub("", str(entry.get("stream", "")))
        *complete, pending = pending.split("\n")
        for line in complete:
            if line.strip():
                yield line.rstrip(), None
    if pending.strip():
        yield pending.rstrip(), None


def _error_of(entry: dict[str, Any]) -> str | None:
    if "error" not in entry and "errorDetail" not in entry:
        return None
    detail = entry.get("errorDetail") or {}
    return str(entry.get("error") or detail.get("message") or entry)


def _failure(tag: str, step: str, problem: str, tail: Iterable[str], advice: str) -> BuildFailed:
    quoted = "".join(f"\n  | {line}" for line in tail)
    where = step.split(" : ", 1)[0].lower() if step else "the start"
    if "pip install" in step:
        return BuildFailed(
            f"building image {tag}: pip could not install the packages inside the image "
            f"({where}):{quoted}\n{advice}"
        )
    return BuildFailed(f"building image {tag} failed at {where}: {problem}{quoted}")


def _advice(found: Path, target: wheels.PythonTarget) -> str:
    advice = (
        f"pip's lines above name the package. The wheels in {found} were downloaded on this "
        f"machine for {target.describe()}; if one is damaged, delete that folder and build "
        "again."
    )
    host = f"{sys.version_info.major}.{sys.version_info.minor}"
    if host != target.python:
        advice += (
            f" This machine runs Python {host}: a dependency behind an environment marker "
            f"(`; python_version < ...`) is decided for {host}, not {target.python}."
        )
    return advice


def _stop_if(cancelled: threading.Event | None, tag: str) -> None:
    if cancelled is not None and cancelled.is_set():
        raise ApplyError(f"building image {tag}: cancelled")


def _ordered(folders: Mapping[str, Path]) -> list[str]:
    first = [name for name in _FIRST if name in folders]
    last = [name for name in _LAST if name in folders]
    middle = [name for name in folders if name not in first and name not in last]
    return first + middle + last


def _registry(repository: str) -> str:
    head, _, rest = repository.partition("/")
    if rest and ("." in head or ":" in head or head == "localhost"):
        return head
    return "docker.io"


def _quoted(value: str) -> str:
    """A Dockerfile double-quoted word: `$` stays literal (no variable substitution)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'
