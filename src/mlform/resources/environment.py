"""Environments: Python packages, variables and a base image, versioned by content.

Applying one builds a virtual environment in the user's cache, keyed by the digest of
what gets installed (interpreter and package lines), so every environment that names
the same packages shares one build, whatever its name or variables. A build is made in
place and marked complete last; anything unmarked is removed before building, so a
failed or killed build never leaves an environment that looks usable.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlform import buildlog
from mlform.config.specs import EnvironmentSpec, Spec
from mlform.errors import ApplyError, BuildFailed, PlanError
from mlform.hashing import sha256_text
from mlform.plan.model import Change, Desired
from mlform.resources.base import (
    Context,
    Outcome,
    base_components,
    canonical,
    content_spec,
    declared,
    latest_version,
    plural,
)
from mlform.shownpath import shown
from mlform.state.records import AssetMetadata, AssetVersion, EnvironmentBuild, Recorded

COMPLETE = ".mlform-complete"
PYTHON = f"{sys.implementation.name}-{sys.version_info.major}.{sys.version_info.minor}"
_THIS_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
_PIP_TAIL = 40


@dataclass(frozen=True, slots=True)
class Packages:
    lines: tuple[str, ...]  # pip requirement lines, in order
    notes: tuple[str, ...]  # what was translated or ignored from a conda file
    by_file: Mapping[str, tuple[str, ...]]  # what each named file contributed


def build_digest(packages: Packages) -> str:
    return sha256_text(PYTHON, *packages.lines)


def env_path(cache: Path, digest: str) -> Path:
    return cache / "envs" / digest[:20]


class EnvironmentKind:
    def desire(self, spec: Spec, ctx: Context, upstream: Mapping[str, Desired]) -> Desired:
        assert isinstance(spec, EnvironmentSpec)
        packages = resolve_packages(spec)
        deps = ctx.config.deps.get(spec.address, ())
        components = base_components(spec, upstream, deps)
        # a file counts by what it installs, so editing a comment in it changes nothing
        for name, lines in packages.by_file.items():
            components[f"file:{name}"] = sha256_text(*lines)
        build = build_digest(packages)
        components["build"] = build
        key = sha256_text(build, canonical(content_spec(spec.body)))
        return declared(
            spec,
            ctx,
            components,
            version_key=key,
            version=spec.version,
            summary="; ".join(
                [f"{plural(len(packages.lines), 'package')}, {PYTHON}", *packages.notes]
            ),
            payload=(spec, packages, build),
        )

    def refresh(self, recorded: Recorded, ctx: Context) -> str | None:
        path = recorded.outputs.get("path")
        if path and not (Path(path) / COMPLETE).is_file():
            # Named by its build digest, not where this machine keeps its cache.
            return f"virtual environment {Path(path).name} missing from the cache"
        return None

    def apply(self, change: Change, ctx: Context) -> Outcome:
        assert change.after is not None
        spec, packages, build = change.after.payload
        path = env_path(ctx.cache, build)
        records: list[Any] = []
        built = _build(change.address, path, packages, build, ctx, change.after.summary)
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
                    [{"requirement": line} for line in packages.lines],
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
        return Outcome(outputs, records, message)

    def destroy(self, change: Change, ctx: Context) -> Outcome:
        from mlform.state.records import Archive

        assert change.before is not None
        return Outcome(
            change.before.outputs,
            [Archive("environment", change.before.name)],
            "versions archived; the build stays cached for other environments",
        )


def resolve_packages(spec: EnvironmentSpec) -> Packages:
    lines: list[str] = list(spec.pip)
    notes: list[str] = []
    by_file: dict[str, tuple[str, ...]] = {}
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
            elif isinstance(item, str):
                name = item.split("::")[-1].strip()
                base = name.split("=")[0].split(">")[0].split("<")[0].strip()
                if base in ("python", "pip"):
                    wanted = name[len(base) :].lstrip("=<>! ")
                    same = not wanted or f"{_THIS_PYTHON}.".startswith(f"{wanted.rstrip('.*')}.")
                    if base == "python" and not same:
                        notes.append(f"conda asks for {name}; mlform uses {PYTHON}")
                    continue
                translated = _conda_to_pip(name)
                notes.append(f"conda package {name} installed with pip as {translated}")
                lines.append(translated)
        if isinstance(spec.conda_file, Path):
            by_file[spec.conda_file.name] = tuple(lines[start:])
    return Packages(tuple(dict.fromkeys(lines)), tuple(notes), by_file)


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


def _conda_to_pip(spec: str) -> str:
    """`numpy=1.26` (conda: 1.26.*) → `numpy==1.26.*`; `numpy>=1.2` stays as it is."""
    if "=" in spec and not any(op in spec for op in ("==", ">=", "<=", "!=")):
        name, _, version = spec.partition("=")
        version = version.split("=")[0]  # drop a build string
        return (
            f"{name}=={version}"
            if "*" in version or version.count(".") >= 2
            else f"{name}=={version}.*"
        )
    return spec


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
        log = ctx.config.state_path.parent / "logs" / f"{address.replace('/', '-')}.log"
        log_name = shown(log, ctx.config.root)
        ctx.log(address, f"building virtual environment ({summary}); pip's output: {log_name}")
        if path.exists():
            shutil.rmtree(path)  # the remains of a failed or killed build
        log.unlink(missing_ok=True)
        progress = ctx.progress
        installing = f"installing {plural(len(packages.lines), 'package')}…"

        def waiting(seconds: float) -> None:
            if progress is not None:  # a terminal: one status line, redrawn in place
                progress(address, f"{installing} {seconds:.0f}s")

        try:
            _create(address, path, packages, log, waiting, log_name)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        finally:
            if progress is not None:
                progress(address, None)
        (path / COMPLETE).write_text(json.dumps({"build": build, "packages": packages.lines}))
    return _describe(path, build, started)


def _create(
    address: str,
    path: Path,
    packages: Packages,
    log: Path,
    waiting: Callable[[float], None],
    log_name: str,
) -> None:
    host_pip = importlib.util.find_spec("pip") is not None
    venv = [sys.executable, "-m", "venv", str(path)]
    if host_pip:
        venv.insert(3, "--without-pip")  # install with this interpreter's pip: much faster
    _run(address, venv, "could not create the virtual environment")
    if not packages.lines:
        return
    requirements = path / "mlform-requirements.txt"
    requirements.write_text("\n".join(packages.lines) + "\n", encoding="utf-8")
    python = str(path / "bin" / "python")
    pip = [sys.executable, "-m", "pip", "--python", python] if host_pip else [python, "-m", "pip"]
    install = ["install", "--disable-pip-version-check", "--no-input", "-r", str(requirements)]
    done = buildlog.run_logged([*pip, *install], log, waiting=waiting)
    what = "pip could not install the packages"
    _check(address, done.returncode, done.tail(_PIP_TAIL), what, log_name)


def _run(address: str, command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    output = (result.stderr.strip() or result.stdout.strip()).splitlines()
    _check(address, result.returncode, output[-_PIP_TAIL:], what)


def _check(address: str, code: int, tail: list[str], what: str, log: str | None = None) -> None:
    if code in (-signal.SIGINT, -signal.SIGTERM):
        raise ApplyError(f"{address}: interrupted while building; the partial build is removed")
    if code != 0:
        quoted = "\n".join(f"  | {line}" for line in tail)
        where = f"\n  (the whole output: {log})" if log else ""
        raise BuildFailed(f"{address}: {what} (exit {code}):\n{quoted}{where}")


def _describe(path: Path, build: str, started: float) -> EnvironmentBuild:
    probe = (
        "import importlib.metadata as m, json; print(json.dumps(sorted("
        "f'{d.metadata[\"Name\"]}=={d.version}' for d in m.distributions())))"
    )
    result = subprocess.run(
        [str(path / "bin" / "python"), "-c", probe], capture_output=True, text=True, check=False
    )
    frozen = json.loads(result.stdout) if result.returncode == 0 else []
    return EnvironmentBuild(build, str(path), PYTHON, frozen, time.monotonic() - started)
