"""Finding the Python interpreter an environment asks for (`python=3.10` in its conda file).

Conda would download that Python; mlform builds virtual environments, so it uses one
already on the machine: the interpreter running mlform when it is that version, else
`python3.X` on PATH, else a pyenv installation. Each candidate is asked its version, since
a pyenv shim on PATH exists for every version pyenv knows, installed or not.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

_PROBE = "import sys; print('%d.%d' % sys.version_info[:2])"


def current() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def feature_version(pin: str) -> str | None:
    """`3.10`, `3.10.*`, `==3.10.*`, `3.10.4` → `3.10`; None for a range such as `>=3.9`."""
    text = pin.strip().removeprefix("==").rstrip("*").rstrip(".")
    parts = text.split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts):
        return None
    return f"{parts[0]}.{parts[1]}"


@functools.cache
def find(version: str) -> Path | None:
    """An interpreter of feature version `version` (`3.10`) on this machine, or None."""
    if version == current():
        return Path(sys.executable)
    for candidate in _candidates(version):
        if _reports(candidate) == version:
            return candidate
    return None


def how_to_get(version: str) -> str:
    if shutil.which("pyenv"):
        return f"`pyenv install {version}`"
    return f"install python{version} (e.g. `pyenv install {version}`, or your system's package)"


def _candidates(version: str) -> list[Path]:
    found: list[Path] = []
    on_path = shutil.which(f"python{version}")
    if on_path:
        found.append(Path(on_path))
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    if root.is_dir():
        installed = [
            path / "bin" / f"python{version}"
            for path in root.iterdir()
            if path.name == version or path.name.startswith(f"{version}.")
        ]
        found.extend(sorted(installed, key=lambda p: _patch(p.parent.parent.name), reverse=True))
    return found


def _patch(name: str) -> int:
    tail = name.split(".")[2:3]
    return int(tail[0]) if tail and tail[0].isdigit() else -1


def _reports(python: Path) -> str | None:
    try:
        result = subprocess.run(
            [str(python), "-c", _PROBE], capture_output=True, text=True, check=False, timeout=30
        )
    except OSError:
        return None
    return result.stdout.strip() if result.returncode == 0 else None
