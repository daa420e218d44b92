"""Code snapshots against DVC on the same generated 20,000-file source tree, in one run.

Targets (issue acceptance):
- no-change check: `mlform plan` on an applied workspace whose one runconfig has the tree
  as its `code`, nothing changed since (it loads the stat cache, scans the tree, and
  plans nothing), takes at most 1/5 of `dvc status` on the same tree after `dvc add`;
- cold snapshot: a fresh process with no stat cache that scans the tree and stores its
  zip durably (what the first apply of a runconfig does before it runs anything)
  snapshots ≥ 10 × the files per second of `dvc add` of the same tree into an empty DVC
  cache.

Both sides are timed as whole processes, wall clock, as a user runs them: commands
(`mlform plan`, `dvc status`, `dvc add`), and for mlform's cold snapshot a script that
calls what apply calls (`snapshot.scan`, `snapshot.store`), since no command snapshots
without also running the job. The tree is a Python project: packages nested two to four
deep, tests, docs, configs, notebooks and processed data, plus what a working copy also
holds and its `.gitignore` leaves out: a `.venv/`, `__pycache__/` folders, `build/`, raw
data and logs. The DVC project's `.dvcignore` holds the same rules, so both tools take
the same files. Every file is dated a day back, as a checked-out tree is (a file modified
within two seconds of being hashed is never trusted from a stat cache, by mlform or
git). DVC (a heavy install) lives in its own virtual environment,
benchmarks/.work/dvc-venv, made on first use.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from peers import BYTECODE, WORK, Comparison, WorkerFailed, rate, report, timed, worker

describe = "no-change `mlform plan` vs `dvc status`, cold snapshot vs `dvc add` (20k files)"

HERE = Path(__file__).resolve()
DVC_VENV = WORK / "dvc-venv"
DVC_VERSION = "dvc==3.67.1"  # what the figures in the README were measured with

# (files in the tree, cold runs of each side, no-change runs of each side)
FULL = (20_000, 5, 5)
QUICK = (5_000, 1, 3)

TARGET_CHECK = 5.0
TARGET_COLD = 10.0

STAMP = ".bench.json"
DAY = 86_400
MLFORM = [str(Path(sys.executable).parent / "mlform")]

WORKSPACE = """\
name: snapshots-bench
state: .mlform/state.duckdb
datastores:
  - name: store
    path: .mlform/datastore
    default: true
"""

RUNCONFIG = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
type: command
name: train
experiment_name: snapshots-bench
code: ../project
command: python -c "pass"
compute: local
"""


# -- the generated tree ------------------------------------------------------------------
# Everything in this section feeds the cache key: edit it and the tree is rebuilt.

GITIGNORE = """\
# Byte-compiled files and environments
__pycache__/
*.py[cod]
.venv/
*.egg-info/

# Build output
build/
dist/

# Data: only processed extracts are kept with the code
/data/raw/
*.log
logs/
"""

NOTEBOOK_IGNORE = ".ipynb_checkpoints/\n*.tmp\n"

# DVC refuses a .dvcignore inside a folder it adds: the same rules, from the folder above.
DVCIGNORE = GITIGNORE.replace("/data/raw/", "/project/data/raw/") + NOTEBOOK_IGNORE

# Share of the tree's files by where they are; the last five are ignored.
MIX = (
    ("src", 0.55),
    ("tests", 0.10),
    ("docs", 0.05),
    ("configs", 0.02),
    ("notebooks", 0.01),
    ("data/processed", 0.02),
    (".venv", 0.15),
    ("pycache", 0.05),
    ("build", 0.03),
    ("data/raw", 0.01),
    ("logs", 0.01),
)

VOCABULARY = """
self data model config value result items batch loss optimizer step epoch path name train
eval features labels index count total shape dtype device logger metrics params return None
True False yield await async import from class def if else elif for while in not and or is
with as try except finally raise assert lambda pass break continue
"""
WORDS = tuple(VOCABULARY.split())


def generate(root: Path, n: int) -> None:
    rng = random.Random(n)
    lines = [_code_line(rng) for _ in range(4_000)]
    counts = {place: int(n * share) for place, share in MIX}
    made = 5  # the two .gitignore files, README.md, pyproject.toml, a notebook checkpoint
    counts["src"] += n - made - sum(counts.values())
    root.mkdir(parents=True)
    _text(root / ".gitignore", GITIGNORE)
    _text(root / "notebooks" / ".gitignore", NOTEBOOK_IGNORE)
    _text(root / "README.md", "# A generated project\n")
    _text(root / "pyproject.toml", '[project]\nname = "generated"\nversion = "1.0"\n')
    src_folders = _folders(rng, root / "src" / "generated", counts["src"] // 12, depth=4)
    for i in range(counts["src"]):
        folder = src_folders[i % len(src_folders)]
        name = "__init__.py" if i < len(src_folders) else f"mod_{i:05d}.py"
        _text(folder / name, _source(rng, lines))
    for i in range(counts["pycache"]):
        folder = src_folders[i % len(src_folders)] / "__pycache__"
        _bytes(folder / f"mod_{i:05d}.cpython-311.pyc", rng.randbytes(rng.randrange(800, 9000)))
    test_folders = _folders(rng, root / "tests", counts["tests"] // 15, depth=2)
    for i in range(counts["tests"]):
        _text(test_folders[i % len(test_folders)] / f"test_{i:05d}.py", _source(rng, lines))
    for i in range(counts["docs"]):
        folder = root / "docs" / f"section-{i % 12:02d}"
        _text(folder / f"page-{i:04d}.md", _prose(rng))
    for i in range(counts["configs"]):
        _text(root / "configs" / f"experiment-{i:04d}.yaml", _config(rng, i))
    for i in range(counts["notebooks"]):
        _text(root / "notebooks" / f"analysis-{i:03d}.ipynb", _notebook(rng, lines))
    _text(root / "notebooks" / ".ipynb_checkpoints" / "analysis-000-checkpoint.ipynb", "{}\n")
    for i in range(counts["data/processed"]):
        rows = rng.randrange(200, 2000)
        _text(root / "data" / "processed" / f"part-{i:04d}.csv", _csv(rng, rows))
    for i in range(counts["data/raw"]):
        _text(root / "data" / "raw" / f"dump-{i:04d}.csv", _csv(rng, rng.randrange(1000, 4000)))
    venv_folders = _folders(rng, root / ".venv" / "lib" / "python3.11" / "site-packages", 80, 3)
    for i in range(counts[".venv"]):
        _text(venv_folders[i % len(venv_folders)] / f"lib_{i:05d}.py", _source(rng, lines))
    for i in range(counts["build"]):
        _text(root / "build" / "lib" / f"mod_{i:05d}.py", _source(rng, lines))
    for i in range(counts["logs"]):
        _text(root / "logs" / f"train-{i:04d}.log", _prose(rng))
    assert made + sum(counts.values()) == n
    past = time.time() - DAY
    for folder, _, names in os.walk(root):
        for name in names:
            os.utime(os.path.join(folder, name), (past, past))


def _folders(rng: random.Random, top: Path, count: int, depth: int) -> list[Path]:
    folders = [top]
    while len(folders) < max(1, count):
        parent = rng.choice(folders)
        if len(parent.relative_to(top).parts) < depth:
            folders.append(parent / f"{rng.choice(WORDS)}_{len(folders):04d}")
    return folders


def _code_line(rng: random.Random) -> str:
    indent = "    " * rng.choice((0, 1, 1, 2, 2, 3))
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(2, 10)))
    return f"{indent}{words}"


def _source(rng: random.Random, lines: list[str]) -> str:
    count = min(int(rng.lognormvariate(4.0, 0.9)), 1_500)
    return "\n".join(rng.choice(lines) for _ in range(count)) + "\n"


def _prose(rng: random.Random) -> str:
    return "\n\n".join(
        " ".join(rng.choice(WORDS) for _ in range(rng.randrange(20, 80)))
        for _ in range(rng.randrange(2, 30))
    )


def _config(rng: random.Random, i: int) -> str:
    return (
        f"name: experiment-{i}\nseed: {rng.randrange(10_000)}\nlearning_rate: "
        f"{rng.uniform(1e-5, 1e-2):.6f}\nbatch_size: {rng.choice((16, 32, 64, 128))}\n"
    )


def _notebook(rng: random.Random, lines: list[str]) -> str:
    cells = [{"cell_type": "code", "source": [rng.choice(lines)]} for _ in range(40)]
    return json.dumps({"cells": cells, "nbformat": 4}, indent=1)


def _csv(rng: random.Random, rows: int) -> str:
    return "id,x,y,label\n" + "".join(
        f"{i},{rng.random():.6f},{rng.random():.6f},{rng.randrange(10)}\n" for i in range(rows)
    )


def _text(path: Path, text: str) -> None:
    _bytes(path, text.encode())


def _bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


_GENERATOR = (generate, _folders, _code_line, _source, _prose, _config, _notebook, _csv)


def cache_key(n: int) -> str:
    source = "".join(inspect.getsource(f) for f in _GENERATOR)
    text = f"{n}\0{GITIGNORE}\0{NOTEBOOK_IGNORE}\0{MIX}\0{WORDS}\0{source}"
    return hashlib.sha256(text.encode()).hexdigest()


def prepare(n: int) -> Path:
    """The generated tree of `n` files, from the cache when its inputs match."""
    repo = WORK / "snapshots" / f"n{n}"
    tree = repo / "project"
    key = cache_key(n)
    try:
        stamp = json.loads((repo / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stamp = {}
    if stamp.get("key") != key:
        if repo.exists():
            shutil.rmtree(repo)
        print(f"   generating a source tree of {n:,} files (not timed) …", flush=True)
        generate(tree, n)
        (repo / STAMP).write_text(json.dumps({"key": key}), encoding="utf-8")
    return tree


# -- DVC --------------------------------------------------------------------------------


def dvc_binary() -> Path:
    """DVC in its own virtual environment (it pulls in much that mlform's must not have)."""
    dvc = DVC_VENV / "bin" / "dvc"
    if dvc.exists():
        return dvc
    print(f"   installing {DVC_VERSION} into {DVC_VENV} (first run only) …", flush=True)
    if DVC_VENV.exists():
        shutil.rmtree(DVC_VENV)
    subprocess.run([sys.executable, "-m", "venv", str(DVC_VENV)], check=True)
    pip = [str(DVC_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--disable-pip-version-check", DVC_VERSION], check=True)
    return dvc


def dvc_env(repo: Path) -> dict[str, str]:
    return {"DVC_NO_ANALYTICS": "1", "HOME": str(repo / ".home")}


def dvc_fresh(dvc: Path, repo: Path) -> None:
    """A new DVC project at `repo` tracking nothing, with its caches inside it."""
    for name in (".dvc", ".dvcignore", "project.dvc", ".home"):
        path = repo / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    timed([str(dvc), "init", "--no-scm", "-q"], cwd=repo, env=dvc_env(repo))
    (repo / ".dvcignore").write_text(DVCIGNORE, encoding="utf-8")
    dvc_configure(dvc, repo)


def dvc_configure(dvc: Path, repo: Path) -> None:
    """No analytics, no update check, and DVC's site cache inside the project."""
    env = dvc_env(repo)
    for name, value in (
        ("core.analytics", "false"),
        ("core.check_update", "false"),
        ("core.site_cache_dir", str(repo / ".dvc" / "site-cache")),
    ):
        timed([str(dvc), "config", name, value], cwd=repo, env=env)


def dvc_files(repo: Path) -> int:
    """How many files `dvc add` took, from the .dvc file it wrote."""
    for line in (repo / "project.dvc").read_text(encoding="utf-8").splitlines():
        name, _, value = line.strip().partition(":")
        if name == "nfiles":
            return int(value)
    raise WorkerFailed("project.dvc names no file count")


# -- the benchmark -----------------------------------------------------------------------


def run(*, quick: bool = False) -> bool:
    n, cold_runs, check_runs = QUICK if quick else FULL
    try:
        dvc = dvc_binary()
        tree = prepare(n)
        repo = tree.parent
        work = repo / "mlform"
        if work.exists():
            shutil.rmtree(work)
        work.mkdir()
        cache = work / "hashes.json"

        # Untimed: compiles mlform's modules into the bytecode cache and reads the tree into
        # the page cache, which DVC's first run would otherwise have to itself.
        worker(HERE, "cold", str(tree), str(cache), str(work / "store-warm-up"))
        shutil.rmtree(work / "store-warm-up")
        # The two sides take turns, so a machine busier for a while slows both alike.
        ours_cold: list[float] = []
        theirs_cold: list[float] = []
        results: list[dict[str, Any]] = []
        first: dict[str, Any] = {}
        for i in range(cold_runs):
            cache.unlink(missing_ok=True)
            storage = work / f"store-{i}"
            started = time.perf_counter()
            result = worker(HERE, "cold", str(tree), str(cache), str(storage))
            ours_cold.append(time.perf_counter() - started)
            results.append(result)
            first = first or result
            if result["digest"] != first["digest"]:
                raise WorkerFailed("two cold snapshots of the same tree differ")
            shutil.rmtree(storage)
            dvc_fresh(dvc, repo)
            add = timed([str(dvc), "add", "-q", "project"], cwd=repo, env=dvc_env(repo))
            theirs_cold.append(add.seconds)
        dvc_took = dvc_files(repo)

        status = [str(dvc), "status"]
        plan = [*MLFORM, "plan", "--detailed-exitcode"]
        _mlform_workspace(repo)
        timed(plan, cwd=repo, env=BYTECODE)  # settle: not timed
        timed(status, cwd=repo, env=dvc_env(repo))
        ours_check: list[float] = []
        theirs_check: list[float] = []
        for _ in range(check_runs):
            done = timed(plan, cwd=repo, env=BYTECODE)  # exit 2 (changes) raises
            ours_check.append(done.seconds)
            planned = done.out
            done = timed(status, cwd=repo, env=dvc_env(repo))
            if "up to date" not in done.out:
                raise WorkerFailed(f"`dvc status` found changes:\n{done.out}")
            theirs_check.append(done.seconds)
        checked = worker(HERE, "check", str(tree), str(cache), first["digest"])
    except (WorkerFailed, subprocess.CalledProcessError) as err:
        print(f"   a side failed, so there is no figure. {err}")
        return False

    files = first["files"]
    cold = statistics.median(ours_cold)
    dvc_cold = statistics.median(theirs_cold)
    check = statistics.median(ours_check)
    dvc_check = statistics.median(theirs_check)
    print(
        f"   tree: {n:,} files, {first['files']:,} snapshotted ({first['bytes'] / 1e6:.0f} MB, "
        f"zip {first['zip_bytes'] / 1e6:.0f} MB); DVC took {dvc_took:,}"
    )
    ok = report(
        f"DVC {first_line(dvc)}",
        [
            Comparison(
                "no-change check (plan / status)",
                f"{check:.3f} s",
                f"{dvc_check:.3f} s",
                dvc_check / check,
                TARGET_CHECK,
            ),
            Comparison(
                "cold snapshot (files/s)",
                rate(files, cold),
                rate(dvc_took, dvc_cold),
                (files / cold) / (dvc_took / dvc_cold),
                TARGET_COLD,
            ),
        ],
    )
    scan = statistics.median(r["scan_seconds"] for r in results)
    store = statistics.median(r["store_seconds"] for r in results)
    print(
        f"   mlform  plan {check:.3f} s ({planned.strip().splitlines()[-1]!r}; of which cache load "
        f"and scan {checked['scan_seconds']:.3f} s, {checked['hashed']} files read) · cold "
        f"{cold:.2f} s (scan {scan:.2f} s, zip and fsync {store:.2f} s)"
    )
    print(
        f"   DVC     status {dvc_check:.2f} s · add {dvc_cold:.2f} s · medians of {check_runs} "
        f"checks and {cold_runs} cold runs a side, taking turns"
    )
    return ok


def _mlform_workspace(repo: Path) -> None:
    """A workspace beside the tree, one runconfig with it as `code`, applied (not timed)."""
    shutil.rmtree(repo / ".mlform", ignore_errors=True)
    (repo / "workspace.yml").write_text(WORKSPACE, encoding="utf-8")
    (repo / "runconfigs").mkdir(exist_ok=True)
    (repo / "runconfigs" / "train.yml").write_text(RUNCONFIG, encoding="utf-8")
    timed([*MLFORM, "apply", "--yes"], cwd=repo, env=BYTECODE)


def first_line(dvc: Path) -> str:
    done = subprocess.run([str(dvc), "--version"], capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[0]


# -- the scripts mlform's side runs ------------------------------------------------------


def _cold(tree: str, cache: str, storage: str) -> dict[str, Any]:
    """A runconfig's first snapshot: scan with no stat cache, zip into the datastore."""
    from mlform import snapshot
    from mlform.hashing import Hasher
    from mlform.storage.local import LocalStorage

    root = Path(tree)
    started = time.perf_counter()
    hasher = Hasher(Path(cache))
    snap = snapshot.scan(root, hasher, repo_root=root)
    scanned = time.perf_counter()
    key = snapshot.store(snap, LocalStorage(Path(storage)))
    hasher.save()
    stored = time.perf_counter()
    return {
        "digest": snap.digest,
        "files": len(snap.files),
        "bytes": snap.size,
        "zip_bytes": (Path(storage) / key).stat().st_size,
        "scan_seconds": scanned - started,
        "store_seconds": stored - scanned,
    }


def _check(tree: str, cache: str, digest: str) -> dict[str, Any]:
    """What `mlform plan` does for a runconfig's code: load the stat cache, scan, save."""
    from mlform import hashing, snapshot

    hashed = 0
    read = hashing.sha256_file

    def counting(path: Path) -> str:
        nonlocal hashed
        hashed += 1
        return read(path)

    hashing.sha256_file = counting
    root = Path(tree)
    started = time.perf_counter()
    hasher = hashing.Hasher(Path(cache))
    snap = snapshot.scan(root, hasher, repo_root=root)
    hasher.save()
    seconds = time.perf_counter() - started
    if snap.digest != digest:
        raise SystemExit("the no-change scan gave another digest than the cold snapshot")
    return {"files": len(snap.files), "hashed": hashed, "scan_seconds": seconds}


WORKERS = {"cold": _cold, "check": _check}


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        print(json.dumps(WORKERS[sys.argv[2]](*sys.argv[3:])))
    else:
        sys.exit(0 if run(quick="--quick" in sys.argv) else 1)
