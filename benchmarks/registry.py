"""Registering a 1 GiB model file durably against copying it durably and hashing it.

Target (issue acceptance): `mlform models register NAME FILE`, as a whole process into
a fresh workspace (so nothing is deduplicated away), takes at most 1.5 × the time of
doing the same job with coreutils: `cp FILE STORE/ && sync STORE/FILE STORE/ &&
sha256sum FILE`, one shell process. Both sides end with the copy on disk: mlform writes
the blob under a temporary name, fsyncs it, renames it and fsyncs its folder before it
records the version (`mlform.durable`); `sync` with file arguments fsyncs each.
mlform reads the file once, hashing as it copies (a reflink where the filesystem shares
blocks); `cp` then `sha256sum` read it twice. Both run with the file in the page cache,
taking turns, and the medians are compared. `sha256sum` alone is shown beside them.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from peers import WORK, at_most, duration, timed, times, verdict

describe = "register a 1 GiB model file vs `cp` + `sync` + `sha256sum` of it"

SIZE = 1 << 30
QUICK_SIZE = 256 << 20
ROUNDS, QUICK_ROUNDS = 5, 2
TARGET = 1.5  # mlform ÷ (cp + sync + sha256sum), at most
PEER = 'cp "$1" "$2/" && sync "$2/$(basename "$1")" "$2" && sha256sum "$1"'

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
    hashing: list[float] = []
    subprocess.run(["cat", str(model)], stdout=subprocess.DEVNULL, check=True)  # warm cache
    for round_ in range(QUICK_ROUNDS if quick else ROUNDS):
        workspace = base / "ws"
        shutil.rmtree(workspace, ignore_errors=True)
        workspace.mkdir(parents=True)
        (workspace / "workspace.yml").write_text(WORKSPACE, encoding="utf-8")
        copies = base / "copies"
        shutil.rmtree(copies, ignore_errors=True)
        copies.mkdir()
        subprocess.run(["sync"], check=True)  # the last round's writes don't land in this one
        peer = timed(["sh", "-c", PEER, "peer", str(model), str(copies)], cwd=base)
        theirs.append(peer.seconds)
        subprocess.run(["sync"], check=True)
        hashing.append(timed(["sha256sum", str(model)], cwd=base).seconds)
        subprocess.run(["sync"], check=True)
        done = timed([*mlform, "models", "register", "big", str(model)], cwd=workspace)
        ours.append(done.seconds)
        if round_ == 0:
            print(f"   {done.out.strip()}")
    shutil.rmtree(base / "ws", ignore_errors=True)
    shutil.rmtree(base / "copies", ignore_errors=True)
    mine, peer = statistics.median(ours), statistics.median(theirs)
    ratio = mine / peer
    fs = subprocess.run(
        ["df", "--output=fstype", str(base)], capture_output=True, text=True, check=False
    ).stdout.split()[-1]
    print(f"   file: {size >> 20} MiB on {fs}; {len(ours)} rounds, medians")
    print(f"   {'mlform models register':<26} {duration(mine):>10}  (durable)")
    print(f"   {'cp + sync + sha256sum':<26} {duration(peer):>10}  (durable)")
    hashed = statistics.median(hashing)
    print(f"   {'sha256sum alone':<26} {duration(hashed):>10}  (writes nothing)")
    met = at_most(ratio, TARGET)
    print(
        f"   mlform ÷ (cp + sync + sha256sum) = {times(ratio, up=True)}  (target ≤ {TARGET}×)  "
        f"{verdict(met)};  mlform ÷ sha256sum alone = {times(mine / hashed, up=True)}"
    )
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
