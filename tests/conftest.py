"""Shared fixtures: real temporary workspaces, driven through the real CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlform.cli.main import main

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "iris"


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


@pytest.fixture(scope="session")
def env_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One environment cache for the whole session: each distinct environment builds once."""
    return tmp_path_factory.mktemp("mlform-cache")


@pytest.fixture(autouse=True)
def _isolated(env_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFORM_CACHE_DIR", str(env_cache))
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Ran]:
    """Run `mlform ARGS…` in this process; `cwd` picks the workspace (-C)."""

    def run(*args: str, cwd: Path | None = None) -> Ran:
        capsys.readouterr()
        argv = (["-C", str(cwd)] if cwd is not None else []) + list(args)
        code = main(argv)
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return run


def mlform_process(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, **kwargs: object
) -> subprocess.Popen[str]:
    """Start `mlform ARGS…` as its own process, as a user's shell would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
        [sys.executable, "-m", "mlform.cli.main", *args],
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.fixture
def make_workspace(tmp_path: Path) -> Callable[[Mapping[str, str]], Path]:
    """Write files (path → text, dedented) into a fresh workspace folder and return it."""

    def make(files: Mapping[str, str]) -> Path:
        root = tmp_path / "ws"
        for rel, text in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return root

    return make


@pytest.fixture
def example(tmp_path: Path) -> Iterator[Path]:
    """A fresh copy of examples/iris, with nothing applied yet, without its image (which
    needs a Docker engine and a minute to build): `example_with_image` has it."""
    target = tmp_path / "iris"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(".mlform", "images"))
    yield target


@pytest.fixture
def example_with_image(tmp_path: Path) -> Iterator[Path]:
    """A fresh copy of the whole of examples/iris, its image included."""
    target = tmp_path / "iris"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(".mlform"))
    yield target
