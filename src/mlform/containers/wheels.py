"""The environment's wheels, chosen for the image's Python and downloaded on this machine.

Inside a build there is no network (and no index, certificates or credentials), so pip
runs here, told the image's Python version, ABI and platform, and fetches only wheels:
a source package would have to be compiled for the image, which this machine cannot do
for it. The image then installs from the folder with `--no-index`.

The target is probed once per base image ID (a throwaway container runs `python3`); the
download is cached per (requirement lines, target) and marked complete last, under an
flock, so parallel builds share one download and a killed one is redone.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlform import durable
from mlform.compute import groups
from mlform.containers.engine import engine_errors
from mlform.errors import ApplyError, BuildFailed
from mlform.hashing import sha256_text

if TYPE_CHECKING:
    import docker

COMPLETE = ".mlform-complete"
REQUIREMENTS = "requirements.txt"
_PIP_TAIL = 20
_PROBE_TIMEOUT = 120

# Runs in the base image with its own python3: standard library only, any Python 3.
PROBE = """\
import json, os, platform, sys, sysconfig
try:
    libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
except (AttributeError, ValueError, OSError):
    libc = ""
print(json.dumps({
    "python": "%d.%d" % sys.version_info[:2],
    "implementation": sys.implementation.name,
    "debug": hasattr(sys, "gettotalrefcount"),
    "free_threaded": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    "libc": libc,
    "machine": platform.machine(),
}))
"""

# manylinux_2_5 (x86) and manylinux_2_17 (every other architecture) are the oldest glibc
# any wheel may require; the legacy names are aliases of these glibc versions (PEP 600).
_OLDEST_GLIBC_MINOR = {"x86_64": 5, "i686": 5}
_LEGACY = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}


@dataclass(frozen=True, slots=True)
class PythonTarget:
    """The Python a base image runs, as far as choosing wheels for it goes."""

    python: str  # "3.11"
    implementation: str  # "cp"
    abi: str  # "cp311"
    glibc: tuple[int, int]  # (2, 36)
    machine: str  # "x86_64", "aarch64"

    def describe(self) -> str:
        major, minor = self.glibc
        return f"CPython {self.python} ({self.abi}), glibc {major}.{minor}, {self.machine}"

    def platforms(self) -> tuple[str, ...]:
        """Every manylinux tag this glibc runs, newest first, as pip itself lists them.

        pip expands only the legacy names (manylinux2014 → 2010 → 1) given on its command
        line, not `manylinux_2_N`, so each glibc minor is named here.
        """
        tags: list[str] = []
        for minor in range(self.glibc[1], _OLDEST_GLIBC_MINOR.get(self.machine, 17) - 1, -1):
            tags.append(f"manylinux_2_{minor}_{self.machine}")
            if minor in _LEGACY:
                tags.append(f"{_LEGACY[minor]}_{self.machine}")
        return tuple(tags)

    def pip_args(self) -> list[str]:
        args = [
            "--python-version",
            self.python,
            "--implementation",
            self.implementation,
            "--abi",
            self.abi,
        ]
        for platform in self.platforms():
            args += ["--platform", platform]
        return args

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PythonTarget:
        major, minor = data["glibc"]
        return cls(
            python=str(data["python"]),
            implementation=str(data["implementation"]),
            abi=str(data["abi"]),
            glibc=(int(major), int(minor)),
            machine=str(data["machine"]),
        )


def probe(client: docker.DockerClient, image: str, *, cache: Path | None = None) -> PythonTarget:
    """What Python `image` (present on the engine) runs; remembered per image ID in `cache`."""
    # start-up: the Docker SDK, only when wheels are built in a container
    import docker.errors

    with engine_errors(f"inspecting base image {image}"):
        try:
            image_id = str(client.images.get(image).id)
        except docker.errors.ImageNotFound as err:
            raise BuildFailed(
                f"base image {image} is not on the Docker engine; pull or build it first"
            ) from err
    remembered = cache / "targets" / f"{image_id.removeprefix('sha256:')}.json" if cache else None
    if remembered is not None and remembered.is_file():
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            return PythonTarget.from_json(json.loads(remembered.read_text(encoding="utf-8")))
    with engine_errors(f"probing the Python of base image {image}"):
        facts = _run_probe(client, image, image_id)
    target = target_of(image, facts)
    if remembered is not None:
        remembered.parent.mkdir(parents=True, exist_ok=True)
        partial = durable.partial(remembered)
        partial.write_text(json.dumps(target.to_json()), encoding="utf-8")
        os.replace(partial, remembered)
    return target


def _run_probe(client: docker.DockerClient, image: str, image_id: str) -> dict[str, Any]:
    # start-up: the Docker SDK, only when wheels are built in a container
    import docker.errors

    container = client.containers.create(
        image_id,
        entrypoint=["python3", "-c", PROBE],
        network_mode="none",
        labels={"org.mlform.role": "probe"},
    )
    try:
        try:
            container.start()
        except docker.errors.APIError as err:
            raise BuildFailed(
                f"base image {image} cannot run python3 ({err.explanation or err}); the "
                "environment is installed with the image's own Python, so pick a base image "
                "that has python3 with the venv module (Debian: python3-venv)"
            ) from err
        status = container.wait(timeout=_PROBE_TIMEOUT)["StatusCode"]
        out = container.logs(stdout=True, stderr=False).decode("utf-8", "replace")
        err_out = container.logs(stdout=False, stderr=True).decode("utf-8", "replace")
    finally:
        container.remove(force=True)
    if status != 0:
        raise BuildFailed(
            f"base image {image}: `python3` exited with {status} when asked its version:\n"
            + _quote(err_out.splitlines()[-_PIP_TAIL:])
        )
    try:
        facts: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError) as err:
        raise BuildFailed(f"base image {image}: unexpected answer from python3: {out!r}") from err
    return facts


def target_of(image: str, facts: dict[str, Any]) -> PythonTarget:
    """The wheels' target of the Python `PROBE` described (in `image`, or on a machine)."""
    if facts["implementation"] != "cpython":
        raise BuildFailed(
            f"base image {image} runs {facts['implementation']}, not CPython; mlform builds "
            "images on CPython base images only"
        )
    libc = str(facts["libc"])
    name, _, version = libc.partition(" ")
    if name != "glibc":
        raise BuildFailed(
            f"base image {image} does not use glibc ({libc or 'probably musl, as Alpine'}); "
            "mlform chooses manylinux wheels, so pick a glibc-based image (Debian, Ubuntu, "
            "python:3.X-slim)"
        )
    major, minor = (int(part) for part in version.split(".")[:2])
    if major != 2:
        raise BuildFailed(f"base image {image}: glibc {version} is not one manylinux describes")
    python = str(facts["python"])
    abi = "cp" + python.replace(".", "")
    abi += "t" if facts["free_threaded"] else ""
    abi += "d" if facts["debug"] else ""
    return PythonTarget(python, "cp", abi, (major, minor), str(facts["machine"]))


def download(
    requirements: Sequence[str],
    target: PythonTarget,
    cache: Path,
    log: Callable[[str], None],
    *,
    cancelled: threading.Event | None = None,
) -> Path:
    """A folder holding `requirements.txt` and a wheel for every package it needs on `target`.

    Reused when the same lines were downloaded for the same target before.
    """
    lines = tuple(requirements)
    key = sha256_text("wheels-1", json.dumps(target.to_json(), sort_keys=True), *lines)
    folder = cache / "wheels" / key[:32]
    if (folder / COMPLETE).is_file():
        log(f"wheels for {target.describe()}: cached")
        return folder
    with _lock(folder):
        if (folder / COMPLETE).is_file():  # another build finished it while we waited
            log(f"wheels for {target.describe()}: cached")
            return folder
        if folder.exists():
            shutil.rmtree(folder)  # the remains of a failed or killed download
        folder.mkdir(parents=True)
        try:
            (folder / REQUIREMENTS).write_text("".join(f"{x}\n" for x in lines), encoding="utf-8")
            if lines:
                _pip_download(folder, target, log, cancelled)
            marker = {"target": target.to_json(), "requirements": list(lines)}
            (folder / COMPLETE).write_text(json.dumps(marker), encoding="utf-8")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    return folder


def _pip_download(
    folder: Path,
    target: PythonTarget,
    log: Callable[[str], None],
    cancelled: threading.Event | None,
) -> None:
    if importlib.util.find_spec("pip") is None:
        raise BuildFailed(
            f"cannot download the image's packages: the Python running mlform "
            f"({sys.executable}) has no pip; install pip into mlform's environment"
        )
    host = f"{sys.version_info.major}.{sys.version_info.minor}"
    if host != target.python:
        log(
            f"note: this machine runs Python {host} and the image {target.python}; pip decides "
            "environment markers (`; python_version < ...`) for this machine's Python"
        )
    log(f"downloading wheels for {target.describe()}")
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--only-binary=:all:",
        *target.pip_args(),
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        "--dest",
        str(folder),
        "--requirement",
        str(folder / REQUIREMENTS),
    ]
    tail: deque[str] = deque(maxlen=_PIP_TAIL)
    with groups.running(
        command,
        what=f"pip download for {target.describe()}",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    ) as (pip, group):
        assert pip.stdout is not None
        for raw in pip.stdout:
            line = raw.rstrip()
            if line:
                tail.append(line)
                log(line)
            if cancelled is not None and cancelled.is_set():
                raise ApplyError("cancelled while downloading the image's packages")
        code = group.end(pip)
    if code in (-signal.SIGINT, -signal.SIGTERM):
        raise ApplyError("interrupted while downloading the image's packages")
    if code != 0:
        raise BuildFailed(
            f"pip could not download the environment's packages for the image "
            f"({target.describe()}), exit {code}:\n"
            + _quote(tail)
            + "\nFix the requirement pip names above. An image installs wheels only: a "
            "package that publishes no wheel for this Python and platform (source only) "
            "cannot be used in an image yet."
        )


def _quote(lines: Iterable[str]) -> str:
    return "\n".join(f"  | {line}" for line in lines)


@contextlib.contextmanager
def _lock(folder: Path) -> Iterator[None]:
    folder.parent.mkdir(parents=True, exist_ok=True)
    with (folder.parent / f".{folder.name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # another build may be downloading the same set
        yield
