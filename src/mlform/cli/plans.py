"""`mlform validate`, `mlform plan` and `mlform apply`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from mlform.apply.executor import Result, Status
from mlform.cli.output import Output
from mlform.config.names import cli_address
from mlform.errors import MlformError, StalePlan
from mlform.plan import render
from mlform.plan.model import Action, Plan
from mlform.plan.reasons import texts
from mlform.shownpath import shown
from mlform.workspace import Workspace

_PAST = {
    Action.CREATE: "created",
    Action.UPDATE: "updated",
    Action.DELETE: "destroyed",
    Action.REPLACE: "replaced",
    Action.RUN: "ran",
}


RERUN = "run this runconfig even if nothing changed (repeatable)"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("validate", help="check every file; report all problems at once")
    p.set_defaults(run=validate)

    p = commands.add_parser("plan", help="show what apply would change, and why")
    p.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 when there are no changes, 2 when there are, 1 on error",
    )
    shape = p.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="print the plan as JSON")
    shape.add_argument("--markdown", action="store_true", help="print a pull-request comment")
    p.add_argument("-o", "--out", metavar="FILE", help="save the plan for `mlform apply FILE`")
    p.add_argument(
        "--rerun", action="append", default=[], metavar="NAME", type=cli_address, help=RERUN
    )
    p.add_argument("--lock-timeout", type=float, default=0.0, metavar="SECONDS")
    p.set_defaults(run=plan)

    p = commands.add_parser("apply", help="make the workspace match its files")
    p.add_argument("planfile", nargs="?", help="a plan saved by `mlform plan -o FILE`")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.add_argument(
        "--rerun", action="append", default=[], metavar="NAME", type=cli_address, help=RERUN
    )
    p.add_argument(
        "--parallelism", type=int, default=4, metavar="N", help="changes applied at once (4)"
    )
    p.add_argument("--lock-timeout", type=float, default=0.0, metavar="SECONDS")
    p.add_argument(
        "--reinit",
        action="store_true",
        help="start a new state where it is missing though an earlier one left processes "
        "running or files registered (stops those processes first)",
    )
    p.set_defaults(run=apply)


def validate(args: argparse.Namespace, out: Output) -> int:
    ws = Workspace(args.directory)
    if ws.config.warnings:
        out.problems(ws.config.warnings)
    config = ws.validate()
    count = len(config.specs)
    where = shown(config.root, Path.cwd())
    out.line(f"{out.ok('Valid:')} {count} resource{'s' if count != 1 else ''} in {where}")
    return 0


def plan(args: argparse.Namespace, out: Output) -> int:
    ws = Workspace(args.directory)
    if ws.config.warnings:
        out.problems(ws.config.warnings)
    earlier = ws.earlier_state()
    if earlier:
        out.warn(
            f"there is no state at {ws.state_name}, but an earlier one existed ("
            + "; ".join(earlier)
            + "): `mlform apply` will refuse to start from zero without --reinit"
        )
    result = ws.plan(rerun=args.rerun, lock_wait=args.lock_timeout)
    if args.json:
        out.write(render.as_json(result))
    elif args.markdown:
        out.write(render.markdown(result))
    else:
        out.line(render.text(result, color=out.color))
    if args.out:
        saved = render.as_dict(result)
        saved["workspace"] = str(ws.root)
        Path(args.out).write_text(json.dumps(saved, indent=2, default=str) + "\n", encoding="utf-8")
        if not (args.json or args.markdown):
            out.line(
                f"\nSaved the plan to {args.out}. Apply exactly it with: mlform apply {args.out}"
            )
    if result.refusals:
        return 1
    if args.detailed_exitcode and result.changes:
        return 2
    return 0


def apply(args: argparse.Namespace, out: Output) -> int:
    return run_apply(args, out)


def run_apply(
    args: argparse.Namespace,
    out: Output,
    *,
    schedules_at: datetime | None = None,
    inputs: Mapping[str, Mapping[str, str]] | None = None,
) -> int:
    """`mlform apply` as `args` ask (and with the schedules due at `schedules_at`, and
    the jobs `inputs` names run with those inputs)."""
    ws = Workspace(args.directory)
    saved = _load_plan(args.planfile) if args.planfile else None

    def confirm(plan: Plan) -> bool:
        out.line(render.text(plan, color=out.color))
        out.line()
        if args.yes:
            return True
        if not out.interactive:
            raise MlformError(
                "apply needs confirmation: run it on a terminal, pass --yes, or apply a saved "
                "plan (`mlform plan -o plan.json` then `mlform apply plan.json`)"
            )
        out.write("Apply these changes? Only 'yes' is accepted: ")
        return sys.stdin.readline().strip() == "yes"

    def report(result: Result) -> None:
        change = result.change
        if result.status is Status.SUCCEEDED:
            detail = f": {result.message}" if result.message else ""
            out.line(
                f"{change.symbol:>3} {change.address} {out.ok(_PAST[change.action])}{detail} "
                + out.dim(f"[{result.seconds:.1f}s]")
            )
        elif result.status is Status.FAILED:
            message = result.message.removeprefix(f"{change.address}: ")
            out.line(f"{change.symbol:>3} {change.address} {out.bad('failed')}: {message}")
        else:
            out.line(f"{change.symbol:>3} {change.address} skipped: {result.message}")

    def log(address: str, message: str) -> None:
        out.line(out.dim(f"    {address}: {message}"))

    outcome = ws.apply(
        saved=saved,
        confirm=confirm,
        parallelism=args.parallelism,
        report=report,
        log=log,
        lock_wait=args.lock_timeout,
        rerun=args.rerun,
        progress=out.status if out.live else None,
        reinit=args.reinit,
        schedules_at=schedules_at,
        inputs=inputs,
    )
    if outcome.resumed is not None:
        out.warn(
            f"the previous apply (lock ID {outcome.resumed.id}, pid {outcome.resumed.pid}) "
            "ended without finishing; this apply continues from what it recorded"
        )
    for what in outcome.stopped:
        out.warn(f"{what} was left running by an mlform that ended without finishing: stopped")
    for run_id in outcome.abandoned:
        out.warn(f"run {run_id} was left unfinished by that apply: stopped and marked failed")
    if not outcome.plan.changes:
        out.line(render.text(outcome.plan, color=out.color))
        return 0
    if not outcome.confirmed:
        out.line("Apply cancelled.")
        return 1
    if saved is not None:
        out.line(f"Applying the saved plan: {outcome.plan.summary()}")
    ok = [r for r in outcome.results if r.status is Status.SUCCEEDED]
    failed = [r for r in outcome.results if r.status is Status.FAILED]
    skipped = [r for r in outcome.results if r.status is Status.SKIPPED]
    out.line()
    if not failed and not skipped and outcome.unsettled:
        out.line(
            out.bad("Apply incomplete:")
            + f" {len(ok)} succeeded, but a plan made now still shows "
            + f"{len(outcome.unsettled)} change{'s' if len(outcome.unsettled) != 1 else ''}:"
        )
        for c in outcome.unsettled:
            out.line(f"  {c.symbol} {c.address} ({texts(c.reasons)})")
        out.line("Run `mlform plan` to see why, and `mlform apply` again to retry.")
        return 1
    if not failed and not skipped:
        counts = {a: sum(1 for r in ok if r.change.action is a) for a in Action}
        out.line(
            out.ok("Apply complete:")
            + f" {counts[Action.CREATE] + counts[Action.REPLACE]} added,"
            + f" {counts[Action.UPDATE]} changed,"
            + f" {counts[Action.DELETE] + counts[Action.REPLACE]} destroyed,"
            + f" {counts[Action.RUN]} ran."
        )
        return 0
    out.line(
        out.bad("Apply failed:")
        + f" {len(ok)} succeeded, {len(failed)} failed, {len(skipped)} skipped."
    )
    for r in failed:
        out.line(f"  failed:  {r.change.address}")
    for r in skipped:
        out.line(f"  skipped: {r.change.address} ({r.message})")
    out.line("Fix the cause and run `mlform apply` again: it continues from here.")
    return 1


def _load_plan(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MlformError(
            f"no saved plan at {path}; make one with `mlform plan -o {path}`"
        ) from None
    except (OSError, ValueError) as err:
        raise StalePlan(f"{path} is not a plan saved by `mlform plan -o`: {err}") from err
    if not isinstance(data, dict) or data.get("format_version") != 1 or "changes" not in data:
        raise StalePlan(f"{path} is not a plan saved by `mlform plan -o` (format_version 1)")
    return data
