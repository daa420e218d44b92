"""What a local instance adds to its environment to serve: the serving runtime (the
`mlform.serving` package alone) and the packages it needs, installed once per set of
pins into a folder of their own and put on PYTHONPATH, so the environment the model was
trained in stays as it is."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import mlform
from mlform.compute import groups
from mlform.errors import BuildFailed
from mlform.hashing import sha256_text

# The router's `GET /health` names the process that answers (MLFORM_INSTANCE, which
# mlform gives the router it starts), so mlform never takes another program on the
# endpoint's port for its router.
INSTANCE_HEADER = "x-mlform-instance"

# httptools and uvloop: uvicorn's C parser and loop, which it picks when they are there.
PACKAGES = ("starlette", "uvicorn", "httptools", "uvloop")
CAPTURE = ("pyarrow",)  # data capture writes Parquet
DEFAULT_BASE = "python:3.11-slim"  # the image a deployment's goes on, unless it names one
_COMPLETE = ".mlform-complete"
FOLDERS = ("serving", "masking")  # the packages of mlform a server runs, beside __init__.py


def source_files() -> list[Path]:
    """The runtime's own source files: the modules of `FOLDERS` and mlform's
    `__init__.py`. Their digest tells a server started by another mlform."""
    package = Path(mlform.__file__).parent
    modules = (path for name in FOLDERS for path in sorted((package / name).glob("*.py")))
    # this module installs the runtime; no server imports it
    return [*(path for path in modules if path != Path(__file__)), package / "__init__.py"]


def pins(capture: bool = False) -> tuple[str, ...]:
    """The runtime's packages, pinned to what this mlform runs with."""
    names = PACKAGES + (CAPTURE if capture else ())
    return tuple(f"{name}=={importlib.metadata.version(name)}" for name in names)


def packages(cache: Path, capture: bool = False) -> Path:
    """A folder holding the runtime's packages, installed with pip on first use."""
    wanted = pins(capture)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    target = cache / "serving-packages" / sha256_text(python, *wanted)[:20]
    if (target / _COMPLETE).is_file():
        return target
    with locked(target):
        if (target / _COMPLETE).is_file():
            return target
        shutil.rmtree(target, ignore_errors=True)
        code, output = groups.output(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--quiet",
                "--target",
                str(target),
                *wanted,
            ],
            what="pip for the serving packages",
        )
        if code != 0:
            shutil.rmtree(target, ignore_errors=True)
            tail = "\n".join(f"  | {line}" for line in output.strip().splitlines()[-20:])
            raise BuildFailed(
                f"pip could not install the serving packages ({', '.join(wanted)}):\n{tail}"
            )
        (target / _COMPLETE).write_text("\n".join(wanted), encoding="utf-8")
    return target


@contextlib.contextmanager
def locked(target: Path) -> Iterator[None]:
    """`target` (a cache folder) built by one thread or process at a time: an flock on a
    file beside it, a new open file for each caller, so threads wait for each other too."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / f".{target.name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
