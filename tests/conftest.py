"""Shared fixtures: real temporary workspaces, driven through the real CLI."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlform.cli.main import main
from tests.ports import free_port
from tests.stores import azurite, s3_server  # noqa: F401 - fixtures every package may use

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "iris"
SWEEP = "tune.yml"  # the example's sweep job (runconfigs/): left out where it is no subject


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C is part of what the tests drive. A suite started in the background by a shell
    without job control (or under nohup) inherits SIGINT ignored, and so would every mlform
    process it starts (an ignored signal stays ignored across exec), so the Ctrl-C tests
    would see no interrupt; take Python's own handler back."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In CI (`CI=true`) nothing may be skipped: a part a test needs is installed there by
    the test command, so a skip means something is missing; it is reported as a failure."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where nothing may be skipped: {report.longrepr}"


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


_started: list[subprocess.Popen[str]] = []


def mlform_process(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, **kwargs: object
) -> subprocess.Popen[str]:
    """Start `mlform ARGS…` as its own process, as a user's shell would."""
    full_env = {**os.environ, **(env or {})}
    process: subprocess.Popen[str] = subprocess.Popen(  # type: ignore[call-overload]
        [sys.executable, "-m", "mlform.cli.main", *args],
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )
    _started.append(process)
    return process


@pytest.fixture(autouse=True)
def _no_mlform_left() -> Iterator[None]:
    """A test that fails half way leaves no mlform it started running (its process group,
    where it has one of its own, killed) and none of its pipes open."""
    yield
    while _started:
        process = _started.pop()
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                if os.getpgid(process.pid) == process.pid:
                    os.killpg(process.pid, signal.SIGKILL)
                else:
                    process.kill()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:  # a process it started holds the pipes
            for pipe in (process.stdout, process.stderr):
                if pipe is not None:
                    pipe.close()
            process.wait(10)


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
    """A fresh copy of examples/iris, with nothing applied yet, without its image and its
    endpoint (a Docker build, and servers that outlive the apply): fixtures below add them."""
    yield _copy_example(tmp_path, "images", "endpoints", "pipelines")


@pytest.fixture
def example_with_image(tmp_path: Path) -> Iterator[Path]:
    """The example with its image (which needs a Docker engine), without its endpoint."""
    yield _copy_example(tmp_path, "endpoints", "pipelines")


@pytest.fixture
def example_with_pipeline(tmp_path: Path) -> Iterator[Path]:
    """The example with its retraining pipeline (and without its image and endpoint)."""
    yield _copy_example(tmp_path, "images", "endpoints")


@pytest.fixture
def example_with_endpoint(tmp_path: Path) -> Iterator[Path]:
    """The example with its endpoint on a free port; whatever it starts is stopped after."""
    root = _copy_example(tmp_path, "images", "pipelines")
    spec = root / "endpoints" / "iris.yml"
    spec.write_text(spec.read_text().replace("port: 5080", f"port: {free_port()}"))
    yield root
    stop_endpoints(root)


@pytest.fixture
def example_with_sweep(tmp_path: Path) -> Iterator[Path]:
    """The example with its sweep (and without its image, endpoint and pipeline)."""
    yield _copy_example(tmp_path, "images", "endpoints", "pipelines", sweep=True)


def _copy_example(tmp_path: Path, *left_out: str, sweep: bool = False) -> Path:
    """The example less `left_out`, and less its monitor and schedule (which name its
    endpoint and pipeline): the tests of those kinds write their own. Its sweep only
    when asked for: eight trials are seconds every other test has no use for."""
    target = tmp_path / "iris"
    skipped = () if sweep else (SWEEP,)
    ignored = shutil.ignore_patterns(".mlform", "monitors", "schedules", *left_out, *skipped)
    shutil.copytree(EXAMPLE, target, ignore=ignored)
    return target


def stop_endpoints(root: Path) -> None:
    """Stop every router and local instance a test's workspace started: each one by its
    pid and start time, so that a pid the machine has since given to another process
    (another test's server, whose group id is its pid) is left alone."""
    import json

    from mlform.kinds.endpoint import local

    for pidfile in (root / ".mlform" / "endpoints").glob("*/router.json"):
        data = json.loads(pidfile.read_text())
        local.kill(local.Process(int(data["pid"]), data.get("started"), data.get("instance", "")))
    state = root / ".mlform" / "state.duckdb"
    if not state.exists():
        return
    from mlform.state.store import Store

    with Store.open(state, "test cleanup", write=False) as store:
        rows = store.query("select compute, handle from deployments where status = 'running'")
    for compute, handle in rows:
        if compute == "local":
            local.kill(local.Process.parse(handle))  # pid@start time
