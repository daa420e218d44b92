"""Run the benchmarks and print their figures, each with pass/fail against its target.

    python benchmarks/run.py                 every benchmark, full size
    python benchmarks/run.py --quick         smaller and faster, for a quick look
    python benchmarks/run.py plan_scale      one benchmark by name
    python benchmarks/run.py --list          the benchmarks there are

Benchmarks are not tests: they time the real `mlform` process on generated workspaces
kept in benchmarks/.work/ (gitignored, reused while their inputs are unchanged). Exit
status 0 when every target is met, 1 when one is missed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path
from typing import Protocol

HERE = Path(__file__).resolve().parent

# name → module in this folder; each has `describe: str` and `run(quick: bool) -> bool`.
BENCHMARKS = (
    "plan_scale",
    "tracking",
    "snapshots",
    "registry",
    "serving",
    "pipelines",
    "remote_state",
    "drift",
    "compute",
    "studio",
    "sweep",
    "automl",
)


class Benchmark(Protocol):
    describe: str

    def run(self, *, quick: bool) -> bool: ...


def load(name: str) -> Benchmark:
    sys.path.insert(0, str(HERE))
    module: Benchmark = importlib.import_module(name)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="run only these benchmarks")
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer runs")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name in BENCHMARKS:
            print(f"{name:<14} {load(name).describe}")
        return 0
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    passed = True
    for name in args.names or BENCHMARKS:
        started = time.monotonic()
        print(f"== {name}{' (quick)' if args.quick else ''}", flush=True)
        ok = load(name).run(quick=args.quick)
        verdict = "PASS" if ok else "MISS"
        print(f"== {name}: {verdict} ({time.monotonic() - started:.0f} s)\n", flush=True)
        passed = passed and ok
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
