"""Registering a 1 GiB model file against `sha256sum` of the same file, in one run.

Target (issue acceptance): `mlform models register NAME FILE`, as a whole process into
a fresh workspace (so nothing is deduplicated away), takes at most 1.5 × the time of
`sha256sum FILE`: the file is read once, hashed once, and stored without a second full
read (a reflink where the filesystem shares blocks, else a copy written as it is hashed).
Both run with the file in the page cache, alternating, and the medians are compared.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from peers import WORK, duration, timed

describe = "register a 1 GiB model file vs `sha256sum` of it"

SIZE = 1 << 30
QUICK_SIZE = 256 << 20
ROUNDS, QUICK_ROUNDS = 5, 2
TARGET = 1.5  # mlform ÷ sha256sum, at most

WORKSPACE = """\
name: registry-bench
datastores:
  - name: store
    path: store
    default: true
"""


def run(*, quick: bool) -> bool:
    size = QUICK_SIZE if quick else SIZE
    base = WORK / "registry"
    model = _model_file(base, size)
    mlform = [sys.executable, "-m", "mlform.cli.main"]
    ours: list[float] = []
    theirs: list[float] = []
    subprocess.run(["cat", str(model)], stdout=subprocess.DEVNULL, check=True)  # warm cache
    for round_ in range(QUICK_ROUNDS if quick else ROUNDS):
        workspace = base / "ws"
        shutil.rmtree(workspace, ignore_errors=True)
        workspace.mkdir(parents=True)
        (workspace / "workspace.yml").write_text(WORKSPACE, encoding="utf-8")
        subprocess.run(["sync"], check=True)  # the last round's writes don't land in this one
        theirs.append(timed(["sha256sum", str(model)], cwd=base).seconds)
        done = timed([*mlform, "models", "register", "big", str(model)], cwd=workspace)
        ours.append(done.seconds)
        if round_ == 0:
            print(f"   {done.out.strip()}")
    shutil.rmtree(base / "ws", ignore_errors=True)
    mine, peer = statistics.median(ours), statistics.median(theirs)
    ratio = mine / peer
    fs = subprocess.run(
        ["df", "--output=fstype", str(base)], capture_output=True, text=True, check=False
    ).stdout.split()[-1]
    print(f"   file: {size >> 20} MiB on {fs}; {len(ours)} rounds, medians")
    print(f"   {'mlform models register':<24} {duration(mine):>10}")
    print(f"   {'sha256sum':<24} {duration(peer):>10}")
    met = ratio <= TARGET
    print(f"   mlform ÷ sha256sum = {ratio:.2f}  (target ≤ {TARGET})  {'PASS' if met else 'FAIL'}")
    return met


def _model_file(base: Path, size: int) -> Path:
    """Random bytes (incompressible, like trained weights), made once and kept."""
    path = base / f"model-{size >> 20}M.bin"
    if path.is_file() and path.stat().st_size == size:
        return path
    base.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with partial.open("wb") as handle:
        for _ in range(size // (1 << 24)):
            handle.write(os.urandom(1 << 24))
    partial.rename(path)
    return path
