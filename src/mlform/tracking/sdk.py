"""What a training script uses: `run = mlform.get_run()`, then `run.log("acc", 0.91)`.

Everything a run records goes into files in its run folder (`mlform.tracking.protocol`);
mlform ingests them. Started by mlform, the run is the one `MLFORM_RUN_DIR` names. Run
any other way (`python train.py` while developing), the script records into an offline
run under `./.mlform-offline/runs/` instead of failing, so the same script works in both.

Scripts import this in their own environment, where mlform's dependencies may be missing:
it and what it imports use the standard library only.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import SupportsFloat, SupportsIndex

from mlform.tracking import lifecycle
from mlform.tracking.buffer import MetricBuffer
from mlform.tracking.protocol import (
    ARTIFACTS,
    CHILDREN,
    METRICS,
    OUTPUTS,
    PARAMS,
    TAGS,
    RunInfo,
    append_mapping,
)

OFFLINE_DIR = Path(".mlform-offline") / "runs"


class Run:
    """One run's records: metrics, params, tags, uploaded files and child runs."""

    def __init__(self, run_id: str, run_dir: Path, outputs: Path | None = None) -> None:
        self._id = run_id
        self._dir = run_dir
        self._outputs = outputs if outputs is not None else run_dir / OUTPUTS
        run_dir.mkdir(parents=True, exist_ok=True)
        self._metrics = MetricBuffer(run_dir / METRICS)
        lifecycle.install()

    @property
    def id(self) -> str:
        return self._id

    @property
    def dir(self) -> Path:
        return self._dir

    @property
    def outputs(self) -> Path:
        """Where to write files mlform keeps with the run (one folder, shared by children)."""
        self._outputs.mkdir(parents=True, exist_ok=True)
        return self._outputs

    def log(self, key: str, value: SupportsFloat, step: SupportsIndex | None = None) -> None:
        """Record a metric point; `step` defaults to one more than this key's last step."""
        self._metrics.add(key, value, step)

    def log_params(self, params: Mapping[str, object]) -> None:
        """Record parameters; values are kept as strings (`str(value)`), as MLflow does."""
        append_mapping(self._dir / PARAMS, _strings("param", params))

    def set_tags(self, tags: Mapping[str, object]) -> None:
        append_mapping(self._dir / TAGS, _strings("tag", tags))

    def upload(self, path: str | os.PathLike[str], name: str | None = None) -> Path:
        """Copy a file or folder into the run's artifacts, as `name` (default: its own)."""
        source = Path(path)
        if not source.exists():
            raise FileNotFoundError(f"cannot upload {source}: no such file or folder")
        target = self._dir / ARTIFACTS / _artifact_name(name if name is not None else source.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
        return target

    @contextmanager
    def child(self, name: str) -> Iterator[Run]:
        """A child run for the `with` block: completed at its end, failed if it raised."""
        folder = _new_folder(self._dir / CHILDREN, name)
        run = Run(uuid.uuid4().hex, folder, self._outputs)
        lifecycle.opened(folder, RunInfo(run.id, name, "running", lifecycle.now_ms()))
        status = "failed"
        try:
            yield run
            status = "completed"
        except KeyboardInterrupt:
            status = "canceled"
            raise
        except SystemExit as exit_:
            status = "completed" if exit_.code in (None, 0) else "failed"
            raise
        finally:
            try:
                run.flush()
            finally:
                lifecycle.closed(folder, status)

    def flush(self) -> None:
        """Write the buffered metric points now (it happens anyway within a second)."""
        self._metrics.flush()

    def __repr__(self) -> str:
        return f"<Run {self._id} at {self._dir}>"


_run: Run | None = None
_run_lock = threading.Lock()


def get_run() -> Run:
    """This process's run: the one mlform started it for, or else a new offline run."""
    global _run
    with _run_lock:
        if _run is None:
            _run = _from_environment() or _offline()
        return _run


def _from_environment() -> Run | None:
    run_dir = os.environ.get("MLFORM_RUN_DIR")
    if not run_dir:
        return None
    path = Path(run_dir)
    outputs = os.environ.get("MLFORM_OUTPUTS")
    run_id = os.environ.get("MLFORM_RUN_ID") or path.name
    return Run(run_id, path, Path(outputs) if outputs else None)


def _offline() -> Run:
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + os.urandom(3).hex()
    relative = OFFLINE_DIR / run_id
    run = Run(run_id, Path.cwd() / relative)
    ignore = Path.cwd() / OFFLINE_DIR.parent / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# offline runs recorded by mlform's SDK\n*\n", encoding="utf-8")
    script = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else ""
    info = RunInfo(run_id, script or "offline", "running", lifecycle.now_ms())
    lifecycle.opened(run.dir, info, whole_process=True)
    print(f"mlform: not started by mlform; recording this run in {relative}", file=sys.stderr)
    return run


def _strings(what: str, values: Mapping[str, object]) -> dict[str, str]:
    for key in values:
        if not isinstance(key, str) or not key:
            raise TypeError(f"a {what} name must be a non-empty string, not {key!r}")
    return {key: value if isinstance(value, str) else str(value) for key, value in values.items()}


def _artifact_name(name: str) -> PurePosixPath:
    relative = PurePosixPath(name.replace("\\", "/"))
    if not name or relative.is_absolute() or ".." in relative.parts or relative == PurePosixPath():
        raise ValueError(f"an artifact name must be a relative path inside the run: {name!r}")
    return relative


def _new_folder(parent: Path, name: str) -> Path:
    """A fresh folder for a child named `name`: readable, and unique if names repeat."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"a child run needs a non-empty name, not {name!r}")
    parent.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:64] or "child"
    for n in range(1, 1_000_000):
        folder = parent / (stem if n == 1 else f"{stem}-{n}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise RuntimeError(f"too many child runs named {name!r}")
