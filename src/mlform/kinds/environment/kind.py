"""Environments: Python packages, variables and a base image, versioned by content.

Applying one builds a virtual environment in the user's cache, keyed by the digest of
what gets installed (interpreter and package lines), so every environment that names
the same packages shares one build, whatever its name or variables.

Each attempt builds in a fresh folder of its own (`envs/.<name>.<random>`), never moved
since a virtual environment's scripts name their folder; when it is complete, a symlink
`envs/<name>` to it is renamed into place, atomically. So a failed or killed build never
leaves an environment that looks usable, and a `pip` a killed apply left running (the
next apply stops it: `compute.groups`) writes into its own attempt, never into the one
being built or used. An attempt holds a lock that `pip` inherits; a leftover attempt is
removed only once nothing holds that lock, so never under a live writer.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlform import buildlog
from mlform.components import canonical
from mlform.compute import groups, interpreters
from mlform.context import Context, Outcome
from mlform.errors import ApplyError, BuildFailed, PlanError
from mlform.hashing import sha256_text
from mlform.kind import Kind
from mlform.kinds.base import base_components, content_spec, declared, latest_version, plural
from mlform.kinds.environment.conda import CondaSpecError, to_pip
from mlform.kinds.environment.declaring import EnvironmentDeclaring
from mlform.kinds.environment.spec import EnvironmentSpec
from mlform.plan import keys
from mlform.plan.model import Change, Desired, Payload
from mlform.shownpath import shown
from mlform.state.records import Archive, AssetMetadata, AssetVersion, EnvironmentBuild, Recorded

COMPLETE = ".mlform-complete"
IMAGE_ONLY = "image only: runs need compute of type docker"
PYTHON = f"{sys.implementation.name}-{sys.version_info.major}.{sys.version_info.minor}"
_PIP_TAIL = 40
_INTERRUPTED = "interrupted while building; the partial build is removed"


@dataclass(frozen=True, slots=True)
class Packages:
    lines: tuple[str, ...]  # pip requirement lines, in order
    notes: tuple[str, ...]  # what was translated or ignored from a conda file
    by_file: Mapping[str, tuple[str, ...]]  # what each named file contributed
    python: str | None = None  # the feature version a conda file pins (`3.10`), if any


def build_digest(packages: Packages) -> str:
    return sha256_text(python_tag(packages.python), *packages.lines)


def env_path(cache: Path, digest: str) -> Path:
    return cache / "envs" / digest[:20]


@dataclass(frozen=True, slots=True)
class EnvironmentPayload(Payload):
    spec: EnvironmentSpec
    packages: Packages
    build: str  # the digest of what gets installed


class EnvironmentKind(EnvironmentDeclaring, Kind[EnvironmentSpec, EnvironmentPayload]):
    payload = EnvironmentPayload

    def desire(
        self, spec: EnvironmentSpec, ctx: Context, upstream: Mapping[str, Desired]
    ) -> Desired:
        packages = resolve_packages(spec)
        deps = ctx.config.deps.get(spec.address, ())
        components = base_components(spec, upstream, deps)
        # a file counts by what it installs, so editing a comment in it changes nothing
        for name, lines in packages.by_file.items():
            components[str(keys.File(name))] = sha256_text(*lines)
        build = build_digest(packages)
        components[str(keys.Setting("build"))] = build
        key = sha256_text(build, canonical(content_spec(spec.body)))
        if image_only(spec, packages):
            summary = IMAGE_ONLY
        else:
            interpreter(spec.address, spec.source, packages.python)
            summary = "; ".join(
                [
                    f"{plural(len(packages.lines), 'package')}, {python_tag(packages.python)}",
                    *packages.notes,
                ]
            )
        return declared(
            spec,
            ctx,
            components,
            version_key=key,
            version=spec.version,
            summary=summary,
            payload=EnvironmentPayload(spec, packages, build),
        )

    def refresh(self, recorded: Recorded, ctx: Context) -> str | None:
        # The virtual environment is a cache of what the state records, not state: a
        # machine without it (a fresh CI runner) builds it when a run needs it.
        return None

    def apply(self, change: Change, payload: EnvironmentPayload, ctx: Context) -> Outcome:
        assert change.after is not None
        spec, packages, build = payload.spec, payload.packages, payload.build
        path = env_path(ctx.cache, build)
        records: list[Any] = []
        only_image = image_only(spec, packages)
        built = (
            None
            if only_image
            else _build(change.address, path, packages, build, ctx, change.after.summary)
        )
        reused = built is None
        if built is not None:
            records.append(built)
        before = dict(change.before.outputs) if change.before else {}
        version = change.version or str(before.get("version", "1"))
        if change.version is None:
            records.append(AssetMetadata("environment", spec.name, version, change.after.spec))
        else:
            records.append(
                AssetVersion(
                    "environment",
                    spec.name,
                    version,
                    build,
                    change.after.spec,
                    _manifest(packages, only_image),
                    str(path),
                    0,
                )
            )
        outputs = {
            "version": version,
            "latest_version": latest_version(before.get("latest_version"), version),
            "version_key": change.after.version_key,
            "build_digest": build,
            "path": str(path),
            "python": str(path / "bin" / "python"),
            "variables": dict(spec.variables),
            "image": spec.image,
        }
        message = "reused an existing build" if reused else "built"
        if only_image:
            message = f"recorded ({IMAGE_ONLY})"
        return Outcome(outputs, records, message)

    def destroy(self, change: Change, ctx: Context) -> Outcome:
        assert change.before is not None
        return Outcome(
            change.before.outputs,
            [Archive("environment", change.before.name)],
            "versions archived; the build stays cached for other environments",
        )


def image_only(spec: EnvironmentSpec, packages: Packages) -> bool:
    """An Azure ML environment that is a Docker image (`image:` or `build:`) and nothing
    else: what it holds is inside the image, so a virtual environment cannot stand in."""
    has_image = spec.image is not None or "build" in spec.body
    return has_image and not packages.lines and spec.conda_file is None


def _manifest(packages: Packages, only_image: bool) -> list[dict[str, Any]]:
    """What the state keeps to rebuild the environment on another machine."""
    build: dict[str, Any] = {"python": packages.python, "image_only": only_image}
    return [build, *({"requirement": line} for line in packages.lines)]


def ensure_built(ctx: Context, owner: str, name: str, version: str) -> Path:
    """The virtual environment of environment `name:version`, built first when this
    machine has none: a cache missing is not a change to plan, so whatever needs the
    environment (a run, a local deployment) builds it then, saying so."""
    rows = ctx.read(
        "select content_digest, manifest from asset_versions "
        "where kind = 'environment' and name = ? and version = ?",
        [name, version],
    )
    if not rows:
        raise ApplyError(f"{owner}: environment {name}:{version} does not exist")
    build, manifest = str(rows[0][0]), json.loads(rows[0][1])
    facts: dict[str, Any] = next((item for item in manifest if "requirement" not in item), {})
    if facts.get("image_only"):
        raise ApplyError(
            f"{owner}: environment {name}:{version} is only a Docker image ({IMAGE_ONLY}); "
            "add its packages (conda_file or pip) to run it locally"
        )
    path = env_path(ctx.cache, build)
    if (path / COMPLETE).is_file():
        return path
    python = facts.get("python")
    lines = tuple(str(item["requirement"]) for item in manifest if "requirement" in item)
    packages = Packages(lines, (), {}, python)
    try:
        interpreter(f"environment/{name}", f"version {version}", python)
    except PlanError as err:
        raise ApplyError(f"{owner}: {err}") from None
    ctx.log(owner, f"environment {name}:{version} is not built on this machine yet")
    summary = f"{plural(len(lines), 'package')}, {python_tag(python)}"
    built = _build(owner, path, packages, build, ctx, summary)
    if built is not None:
        ctx.emit([built])
    return path


def resolve_packages(spec: EnvironmentSpec) -> Packages:
    lines: list[str] = list(spec.pip)
    notes: list[str] = []
    by_file: dict[str, tuple[str, ...]] = {}
    python: str | None = None
    if spec.requirements is not None and spec.requirements.is_file():
        found = _requirement_lines(spec.requirements.read_text(encoding="utf-8"))
        by_file[spec.requirements.name] = tuple(found)
        lines.extend(found)
    if spec.conda_file is not None:
        start = len(lines)
        conda = _read_conda(spec)
        for item in conda.get("dependencies") or []:
            if isinstance(item, dict):
                lines.extend(str(line) for line in item.get("pip") or [])
                continue
            try:
                translated = to_pip(str(item))
            except CondaSpecError as err:
                raise PlanError(f"{spec.address} ({spec.source}): conda_file: {err}") from None
            if translated.name == "python":
                python = _python_pin(spec, str(item), translated.version)
            elif translated.line is None:
                if translated.name != "pip":  # the pip section says what it is for
                    notes.append(f"conda-only package {translated.name} left out")
            else:
                lines.append(translated.line)
        if isinstance(spec.conda_file, Path):
            by_file[spec.conda_file.name] = tuple(lines[start:])
    return Packages(tuple(dict.fromkeys(lines)), tuple(notes), by_file, python)


def _python_pin(spec: EnvironmentSpec, item: str, version: str | None) -> str | None:
    """The feature version (`3.10`) a conda `python` spec pins, if it pins one."""
    if version is None:
        return None
    wanted = interpreters.feature_version(version)
    if wanted is None:
        raise PlanError(
            f"{spec.address} ({spec.source}): conda_file asks for {item}; name one Python "
            f"version (python={interpreters.current()}) so mlform knows which interpreter to use"
        )
    return wanted


def python_tag(python: str | None) -> str:
    """The interpreter a build uses, as its digest and summary name it."""
    return PYTHON if python is None else f"{sys.implementation.name}-{python}"


def interpreter(address: str, source: object, python: str | None) -> Path:
    """The interpreter to build with; a PlanError naming the missing one when absent."""
    if python is None:
        return Path(sys.executable)
    found = interpreters.find(python)
    if found is None:
        raise PlanError(
            f"{address} ({source}): conda_file asks for python={python}, and no Python "
            f"{python} is on this machine (looked for python{python} on PATH and in pyenv); "
            f"{interpreters.how_to_get(python)}, or change the pin"
        )
    return found


def _read_conda(spec: EnvironmentSpec) -> Mapping[str, Any]:
    if isinstance(spec.conda_file, Mapping):
        return spec.conda_file
    assert isinstance(spec.conda_file, Path)
    try:
        data = _load_yaml(spec.conda_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise PlanError(f"{spec.address} ({spec.source}): cannot read conda_file: {err}") from err
    if not isinstance(data, dict):
        raise PlanError(
            f"{spec.address} ({spec.source}): conda_file {spec.conda_file} is not a mapping "
            "with a dependencies: list"
        )
    return data


def _load_yaml(text: str) -> Any:
    """`yaml.safe_load`, through libyaml when it is there: planning reads every conda
    file each time, and the pure-Python parser is ten times slower."""
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            return yaml.load(text, Loader=fast)
        except yaml.YAMLError:
            pass  # say what is wrong as before: pure Python's message quotes the line
    return yaml.safe_load(text)


def _requirement_lines(text: str) -> list[str]:
    out = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


@contextlib.contextmanager
def _build_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with (path.parent / f".{path.name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # another workspace may be building the same one
        yield


def _build(
    address: str, path: Path, packages: Packages, build: str, ctx: Context, summary: str
) -> EnvironmentBuild | None:
    """Build the environment at `path`, or None when a complete one is already there.

    The check happens under the build lock, so environments with the same packages
    applied in parallel (or from two workspaces) build once and share the result.
    """
    if (path / COMPLETE).is_file():
        return None
    started = time.monotonic()
    with _build_lock(path):
        if (path / COMPLETE).is_file():
            return None
        log = ctx.config.home / "logs" / f"{address.replace('/', '-')}.log"
        log_name = shown(log, ctx.config.root)
        ctx.log(address, f"building virtual environment ({summary}); pip's output: {log_name}")
        _remove_leftovers(path)
        log.unlink(missing_ok=True)
        progress = ctx.progress
        installing = f"installing {plural(len(packages.lines), 'package')}…"

        def waiting(seconds: float) -> None:
            if progress is not None:  # a terminal: one status line, redrawn in place
                progress(address, f"{installing} {seconds:.0f}s")

        attempt = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        with _attempt_lock(attempt) as held:
            try:
                python_exe = interpreter(address, address, packages.python)
                _create(
                    address,
                    attempt,
                    packages,
                    python_exe,
                    log,
                    waiting,
                    log_name,
                    held,
                    ctx.cancelled,
                )
                if ctx.cancelled.is_set():
                    raise ApplyError(f"{address}: {_INTERRUPTED}")
                (attempt / COMPLETE).write_text(
                    json.dumps({"build": build, "packages": packages.lines})
                )
                _link(attempt, path)
            except BaseException:
                shutil.rmtree(attempt, ignore_errors=True)
                raise
            finally:
                if progress is not None:
                    progress(address, None)
    return _describe(path, build, started, python_tag(packages.python))


@contextlib.contextmanager
def _attempt_lock(attempt: Path) -> Iterator[int]:
    """The attempt's lock, held while it builds, by this process and what it starts."""
    with _lock_file(attempt).open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield handle.fileno()
        finally:
            _lock_file(attempt).unlink(missing_ok=True)


def _lock_file(attempt: Path) -> Path:
    return attempt.with_name(f"{attempt.name}.attempt")


def _link(attempt: Path, path: Path) -> None:
    """Name the finished attempt `path`: a symlink made aside, renamed over the name."""
    staged = path.with_name(f".{path.name}.link")
    staged.unlink(missing_ok=True)
    staged.symlink_to(attempt.name, target_is_directory=True)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)  # an unfinished build of an older mlform, made in place
    os.replace(staged, path)


def _remove_leftovers(path: Path) -> None:
    """Remove the attempts of `path` that nothing builds any more (their lock is free)
    and that it does not name. Called under the build lock of `path`."""
    used = os.readlink(path) if path.is_symlink() else None
    for attempt in path.parent.glob(f".{path.name}.*"):
        if not attempt.is_dir() or attempt.is_symlink() or attempt.name == used:
            continue
        lock = _lock_file(attempt)
        with contextlib.suppress(FileNotFoundError), lock.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a pip a killed apply started still writes there
        shutil.rmtree(attempt, ignore_errors=True)
        lock.unlink(missing_ok=True)
    if path.exists() and not (path / COMPLETE).is_file():
        if path.is_symlink():
            path.unlink()
        else:  # the remains of a build an older mlform made in place
            shutil.rmtree(path, ignore_errors=True)


def _create(
    address: str,
    path: Path,
    packages: Packages,
    python_exe: Path,
    log: Path,
    waiting: Callable[[float], None],
    log_name: str,
    held: int,
    cancelled: threading.Event | None = None,
) -> None:
    host_pip = importlib.util.find_spec("pip") is not None
    venv = [str(python_exe), "-m", "venv", str(path)]
    if host_pip:
        venv.insert(3, "--without-pip")  # install with this interpreter's pip: much faster
    _run(address, venv, "could not create the virtual environment", held)
    if not packages.lines:
        return
    requirements = path / "mlform-requirements.txt"
    requirements.write_text("\n".join(packages.lines) + "\n", encoding="utf-8")
    python = str(path / "bin" / "python")
    pip = [sys.executable, "-m", "pip", "--python", python] if host_pip else [python, "-m", "pip"]
    install = ["install", "--disable-pip-version-check", "--no-input", "-r", str(requirements)]
    done = buildlog.run_logged(
        [*pip, *install],
        log,
        waiting=waiting,
        what=f"pip for {address}",
        pass_fds=(held,),
        cancelled=cancelled,
    )
    what = "pip could not install the packages"
    _check(address, done.returncode, done.tail(_PIP_TAIL), what, log_name)


def _run(address: str, command: list[str], what: str, held: int) -> None:
    code, output = groups.output(command, what=f"venv for {address}", pass_fds=(held,))
    _check(address, code, output.strip().splitlines()[-_PIP_TAIL:], what)


def _check(address: str, code: int, tail: list[str], what: str, log: str | None = None) -> None:
    if code in (-signal.SIGINT, -signal.SIGTERM):
        raise ApplyError(f"{address}: {_INTERRUPTED}")
    if code != 0:
        quoted = "\n".join(f"  | {line}" for line in tail)
        where = f"\n  (the whole output: {log})" if log else ""
        raise BuildFailed(f"{address}: {what} (exit {code}):\n{quoted}{where}")


def _describe(path: Path, build: str, started: float, python: str) -> EnvironmentBuild:
    probe = (
        "import importlib.metadata as m, json; print(json.dumps(sorted("
        "f'{d.metadata[\"Name\"]}=={d.version}' for d in m.distributions())))"
    )
    result = subprocess.run(
        [str(path / "bin" / "python"), "-c", probe], capture_output=True, text=True, check=False
    )
    frozen = json.loads(result.stdout) if result.returncode == 0 else []
    return EnvironmentBuild(build, str(path), python, frozen, time.monotonic() - started)


KIND = EnvironmentKind()
