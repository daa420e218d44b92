"""What the benchmarks that time mlform against another tool share: running one side as
its own process, and printing a comparison with its verdict against the target."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

WORK = Path(__file__).resolve().parent / ".work"


BYTECODE = {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(WORK / "pycache")}
"""Python's default is to keep compiled modules, and a peer's install (DVC's, MLflow's) has
them, but this machine sets PYTHONDONTWRITEBYTECODE. So mlform's scripts keep theirs, under
benchmarks/.work/ rather than in the source tree."""


class WorkerFailed(Exception):
    pass


def worker(
    module: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> dict[str, Any]:
    """Run `python MODULE --worker ARGS…` with this interpreter; its last line of output is
    the JSON it measured. Each side runs as a script of its own, as a user's would: with
    compiled modules kept between runs (see `BYTECODE`)."""
    command = [sys.executable, str(module), "--worker", *args]
    done = subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **BYTECODE, **(env or {})},
        capture_output=True,
        text=True,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise WorkerFailed(f"`{' '.join(args)}` exited {done.returncode}:\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def timed(command: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> Timed:
    """Wall clock of a whole process; raises when it fails."""
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise WorkerFailed(f"`{' '.join(command)}` exited {done.returncode}:\n{tail}")
    return Timed(seconds, done.stdout, done.stderr)


@dataclass(frozen=True)
class Timed:
    seconds: float
    out: str
    err: str


@dataclass(frozen=True)
class Comparison:
    """One measure, both sides, and the target for mlform ÷ peer (or peer ÷ mlform)."""

    what: str
    ours: str
    theirs: str
    ratio: float  # how many times better mlform is
    target: float  # the least ratio that passes

    @property
    def met(self) -> bool:
        return at_least(self.ratio, self.target)


def report(peer: str, comparisons: list[Comparison]) -> bool:
    width = max(len(c.what) for c in comparisons)
    print(f"   {'':<{width}}  {'mlform':>14}  {peer:>14}  {'ratio':>9}  target")
    for c in comparisons:
        print(
            f"   {c.what:<{width}}  {c.ours:>14}  {c.theirs:>14}  {times(c.ratio):>9}  "
            f"≥ {c.target:g}×  {verdict(c.met)}"
        )
    return all(c.met for c in comparisons)


def verdict(met: bool) -> str:
    return "PASS" if met else "MISS"


def shown(ratio: float, *, up: bool = False) -> Decimal:
    """`ratio` to 3 significant figures (whole numbers from 1,000), rounded down — or up
    for a figure that must stay under its limit — so that a ratio on the wrong side of its
    target never prints as meeting it: 9.997 shows as 9.99, not 10.0."""
    exact = Decimal(repr(ratio))
    if exact <= 0:
        return exact
    places = max(0, 2 - exact.adjusted())
    return exact.quantize(Decimal(1).scaleb(-places), ROUND_CEILING if up else ROUND_FLOOR)


def at_least(ratio: float, target: float) -> bool:
    """The verdict on the printed figure, so what is read and what is judged agree."""
    return shown(ratio) >= Decimal(repr(target))


def at_most(ratio: float, limit: float) -> bool:
    return shown(ratio, up=True) <= Decimal(repr(limit))


def times(ratio: float, *, up: bool = False) -> str:
    return f"{shown(ratio, up=up):,}×"


def rate(count: float, seconds: float) -> str:
    per_second = count / seconds
    if per_second >= 100_000:
        return f"{per_second / 1000:,.0f}k/s"
    return f"{per_second:,.0f}/s"


def duration(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 1 else f"{seconds:,.2f} s"
