"""`mlform monitors list|show|run`: the monitors applied, their latest values per signal,
feature and metric with the thresholds they are held to, and a run on demand."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from datetime import UTC, datetime

from mlform.cli import plans
from mlform.cli.output import Output, add_json_flag
from mlform.config.names import cli_name
from mlform.errors import NotFound
from mlform.state.monitors import Recorded, Value
from mlform.workspace import Monitored, Workspace, breach_jobs

HISTORY = 20  # runs a sparkline shows
_BARS = "▁▂▃▄▅▆▇█"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("monitors", help="monitors/*.yml: drift and quality of deployments")
    sub = p.add_subparsers(dest="monitors_command", metavar="ACTION", required=True)
    q = sub.add_parser("list", help="every monitor applied, and what its latest run found")
    add_json_flag(q)
    q.set_defaults(run=list_)
    q = sub.add_parser("show", help="one monitor: its latest values, and their history")
    q.add_argument("name", metavar="NAME", type=cli_name)
    add_json_flag(q)
    q.set_defaults(run=show)
    q = sub.add_parser("run", help="compute monitors now, due or not, and record the run")
    q.add_argument("names", nargs="+", metavar="NAME", type=cli_name)
    q.add_argument("--lock-timeout", type=float, default=0.0, metavar="SECONDS")
    q.set_defaults(run=run)


def _history(ws: Workspace, name: str | None = None) -> dict[str, list[Recorded]]:
    # start-up: monitors only for `monitors`
    from mlform.kinds.schedule import due
    from mlform.state import monitors

    with ws.store("monitors") as store:
        return {
            record.name: monitors.history(store, record.address, HISTORY)
            for record in due.applied(store, "monitor")
            if name is None or record.name == name
        }


def list_(args: argparse.Namespace, out: Output) -> int:
    found = _history(Workspace(args.directory))
    if args.json:
        out.json({name: runs[:1] for name, runs in found.items()})
        return 0
    if not found:
        out.line("No monitors applied. Declare one in monitors/*.yml and run `mlform apply`.")
        return 0
    rows = []
    for name, runs in found.items():
        if not runs:
            rows.append((name, "-", "-"))
            continue
        latest = runs[0]
        rows.append((name, _when(latest.end), ", ".join(latest.breaches()) or "none"))
    out.table(("NAME", "LAST RUN", "BREACHED"), rows)
    return 0


def show(args: argparse.Namespace, out: Output) -> int:
    found = _history(Workspace(args.directory), args.name)
    if args.name not in found:
        raise NotFound(
            f"no monitor named {args.name} is applied; `mlform monitors list` shows those that are"
        )
    runs = found[args.name]
    if args.json:
        out.json(runs)
        return 0
    if not runs:
        out.line(f"monitor/{args.name} has not run yet: `mlform monitors run {args.name}`")
        return 0
    _values(out, f"monitor/{args.name}", runs[0], runs)
    return 0


def run(args: argparse.Namespace, out: Output) -> int:
    ws = Workspace(args.directory)

    def log(address: str, message: str) -> None:
        out.line(out.dim(f"    {address}: {message}"))

    done = ws.run_monitors(datetime.now(UTC), args.names, log=log, lock_wait=args.lock_timeout)
    code = report(out, done)
    jobs = breach_jobs(done)
    if not jobs:
        return code
    rerun = [job for job, given in jobs.items() if not given]
    args.planfile, args.yes, args.rerun, args.reinit = None, True, rerun, False
    args.parallelism = 4
    return plans.run_apply(args, out, inputs=jobs) or code


def report(out: Output, done: Sequence[Monitored]) -> int:
    """Each run's values; 1 when a signal breached (for CI: a drift fails the job)."""
    for monitored in done:
        result = monitored.run
        recorded = Recorded(result.run.id, result.end, list(result.values))
        _values(out, result.monitor, recorded, [recorded])
    return 1 if any(v.breached for m in done for v in m.run.values) else 0


def _values(out: Output, address: str, latest: Recorded, runs: Sequence[Recorded]) -> None:
    out.line(f"{address}: run {latest.run_id}, window ending {_when(latest.end)}")
    rows = []
    for value in latest.values:
        series = [_value_in(r, value) for r in reversed(runs)]
        rows.append(
            (
                f"  {value.signal}",
                value.feature or "-",
                value.metric,
                _number(value.value),
                _number(value.threshold),
                "BREACHED" if value.breached else "ok",
                sparkline(series, value.threshold) if len(runs) > 1 else "",
                value.note or "",
            )
        )
    out.table(("  SIGNAL", "FEATURE", "METRIC", "VALUE", "THRESHOLD", "", "HISTORY", ""), rows)


def _value_in(run: Recorded, value: Value) -> float | None:
    for other in run.values:
        if (other.signal, other.feature, other.metric) == (
            value.signal,
            value.feature,
            value.metric,
        ):
            return other.value
    return None


def sparkline(values: Sequence[float | None], threshold: float | None = None) -> str:
    """`▁▃█` from the values, scaled to their range and the threshold's, so that a
    change far below the threshold stays small; a gap for a missing value."""
    present = [v for v in values if v is not None and math.isfinite(v)]
    if not present:
        return ""
    bounds = [
        *present,
        *([threshold] if threshold is not None and math.isfinite(threshold) else []),
    ]
    low, high = min(bounds), max(bounds)
    span = high - low
    bars = []
    for v in values:
        if v is None or not math.isfinite(v):
            bars.append(" ")
        else:
            index = 0 if span == 0 else round((v - low) / span * (len(_BARS) - 1))
            bars.append(_BARS[index])
    return "".join(bars)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
