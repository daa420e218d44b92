"""`mlform runs …` and `mlform experiments list`: what ran, how it went, what it logged."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlform import runs
from mlform.automl import job as automl
from mlform.cli.output import Output, add_json_flag, json_object
from mlform.config.names import cli_name
from mlform.errors import MlformError, NotFound, StateLocked
from mlform.shownpath import shown
from mlform.storage import open_storage
from mlform.sweeps.job import SUMMARY as SWEEP_SUMMARY
from mlform.workspace import Workspace


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("runs", help="recorded runs: list, show, metrics, logs, …")
    sub = p.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    q = sub.add_parser("list", help="runs, newest first")
    q.add_argument("--experiment", "-e")
    q.add_argument(
        "--status",
        choices=["queued", "preparing", "running", "completed", "failed", "canceled", "timed_out"],
    )
    q.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
    q.add_argument("--runconfig", type=cli_name)
    q.add_argument("--limit", type=int, default=50)
    add_json_flag(q)
    q.set_defaults(run=list_)
    q = sub.add_parser("show", help="one run: status, git, inputs, params, metrics, files")
    q.add_argument(
        "ref", metavar="RUN", type=cli_name, help="a run id, an id prefix, or a runconfig name"
    )
    add_json_flag(q)
    q.set_defaults(run=show)
    q = sub.add_parser("metrics", help="a run's metric history")
    q.add_argument("ref", metavar="RUN", type=cli_name)
    q.add_argument("--key", "-k")
    shape = q.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true")
    shape.add_argument("--csv", action="store_true")
    q.set_defaults(run=metrics)
    q = sub.add_parser("compare", help="params and final metrics of runs side by side")
    q.add_argument("refs", metavar="RUN", nargs="+", type=cli_name)
    q.set_defaults(run=compare)
    q = sub.add_parser("logs", help="a run's output; --follow while it runs")
    q.add_argument("ref", metavar="RUN", type=cli_name)
    q.add_argument("--follow", "-f", action="store_true")
    q.set_defaults(run=logs)
    q = sub.add_parser("snapshot", help="the code a run ran; --explain what was left out")
    q.add_argument("ref", metavar="RUN", type=cli_name)
    q.add_argument("--explain", action="store_true")
    q.set_defaults(run=snapshot)
    q = sub.add_parser("download", help="restore a run's snapshot, outputs and logs into a folder")
    q.add_argument("ref", metavar="RUN", type=cli_name)
    q.add_argument("dest", nargs="?", metavar="DIR")
    q.set_defaults(run=download)

    p = commands.add_parser("experiments", help="experiments and their runs")
    sub = p.add_subparsers(dest="experiments_command", metavar="ACTION", required=True)
    q = sub.add_parser("list", help="each experiment with its run count and latest run")
    add_json_flag(q)
    q.set_defaults(run=experiments)


def list_(args: argparse.Namespace, out: Output) -> int:
    tags = dict(_pair(t) for t in args.tag)
    found = Workspace(args.directory).runs(
        experiment=args.experiment,
        status=args.status,
        tags=tags,
        runconfig=args.runconfig,
        limit=args.limit,
    )
    if args.json:
        out.json(found)
        return 0
    if not found:
        out.line("No runs recorded yet. Declare one in runconfigs/*.yml and run `mlform apply`.")
        return 0
    rows = [
        (
            r.id,
            r.experiment,
            r.status,
            _when(r.started_at),
            _seconds(r.duration),
            (r.commit or "")[:8] + ("+" if r.dirty else ""),
            _finals(r.metrics),
        )
        for r in found
    ]
    out.table(("RUN", "EXPERIMENT", "STATUS", "STARTED", "DURATION", "COMMIT", "METRICS"), rows)
    return 0


def show(args: argparse.Namespace, out: Output) -> int:
    ws = Workspace(args.directory)
    with ws.store("runs show") as store:
        run = runs.find(store, args.ref)
        kids = runs.children(store, run.id)
        files = runs.artifacts(store, run.id)
    target = _target(Path(run.run_dir))
    sweep = _sweep(Path(run.run_dir)) if run.compute == "sweep" else None
    if args.json:
        artifacts = [{"path": path, "size": size} for path, size in files]
        found = {**json_object(run), "target": target, "artifacts": artifacts, "children": kids}
        out.json({**found, "sweep": sweep} if sweep is not None else found)
        return 0
    out.line(f"{run.id}  ({run.status})")
    fields = [
        ("experiment", run.experiment),
        ("runconfig", run.runconfig),
        ("parent", run.parent_id),
        ("display name", run.display_name),
        ("started", _when(run.started_at)),
        ("duration", _seconds(run.duration)),
        ("commit", (run.commit or "") + (" (with uncommitted changes)" if run.dirty else "")),
        ("branch", run.branch),
        ("remote", run.remote),
        ("snapshot", run.snapshot_id and f"sha256:{run.snapshot_id[:16]}"),
        ("environment", run.environment),
        ("compute", run.compute and f"{run.compute} ({target})" if target else run.compute),
        ("command", run.command and run.command.replace(f"{ws.root}{os.sep}", "")),
        ("exit code", None if run.exit_code is None else str(run.exit_code)),
        ("run folder", shown(Path(run.run_dir), ws.root)),
    ]
    for label, value in fields:
        if value:
            out.line(f"  {label + ':':<13} {value}")
    for title, items in (("inputs", run.inputs), ("params", run.params), ("tags", run.tags)):
        if items:
            out.line(f"  {title}:")
            for key, value in sorted(items.items()):
                out.line(f"    {key} = {value}")
    if run.metrics:
        out.line("  metrics (last value):")
        for metric, number in sorted(run.metrics.items()):
            out.line(f"    {metric} = {number:g}")
    if files:
        out.line("  artifacts:")
        for path, size in files:
            out.line(f"    {path}  ({size} B)")
    if sweep is not None:
        _trials(sweep, out)
    elif kids and automl.PRIMARY_TAG in run.tags:
        _configurations(run, kids, out)
    elif kids:
        out.line("  child runs:")
        for kid in kids:
            out.line(f"    {kid.id}  {kid.name}  {kid.status}  {_finals(kid.metrics)}")
    if run.log_tail and run.status != "completed":
        out.line("  last lines of its log:")
        for line in run.log_tail.splitlines():
            out.line(f"    | {line}")
    return 0


def _sweep(run_dir: Path) -> dict[str, Any] | None:
    """A sweep run's trials, as the sweep wrote them down (`kinds.runconfig.sweep`)."""
    try:
        found = json.loads((run_dir / SWEEP_SUMMARY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _trials(sweep: Mapping[str, Any], out: Output) -> None:
    """A sweep's trials ranked by its objective, the best marked; then those that did not
    finish with a value (terminated early, failed), in the order they ran."""
    objective = sweep.get("objective") or {}
    metric = str(objective.get("primary_metric", "value"))
    trials = list(sweep.get("trials") or [])
    trials.sort(key=lambda t: (t.get("rank") is None, t.get("rank") or 0, t.get("number", 0)))
    out.line(f"  trials, by {metric} ({objective.get('goal', '')}):")
    rows = []
    for trial in trials:
        value = trial.get("value")
        status = str(trial.get("status"))
        rows.append(
            (
                "best"
                if trial.get("run_id") == sweep.get("best")
                else str(trial.get("rank") or ""),
                str(trial.get("number")),
                _trial_value(value, trial.get("last"), trial.get("intervals")),
                " ".join(f"{k}={v}" for k, v in (trial.get("params") or {}).items()),
                status,
                str(trial.get("reused_from") or trial.get("run_id") or ""),
            )
        )
    out.table(("RANK", "TRIAL", metric.upper(), "PARAMETERS", "STATUS", "RUN"), rows, indent=4)


_SHOWN_CONFIGURATIONS = 20


def _configurations(run: runs.Run, kids: list[runs.Run], out: Output) -> None:
    """An AutoML run's configurations ranked by its primary metric, the best first; the
    rest counted (`runs show --json` gives them all)."""
    metric = run.tags[automl.PRIMARY_TAG]
    maximize = run.tags.get(automl.GOAL_TAG) != "minimize"
    scored = [k for k in kids if metric in k.metrics]
    scored.sort(key=lambda k: -k.metrics[metric] if maximize else k.metrics[metric])
    goal = "maximize" if maximize else "minimize"
    out.line(f"  configurations, by {metric} ({goal}):")
    rows = []
    for rank, kid in enumerate(scored[:_SHOWN_CONFIGURATIONS], start=1):
        params = {k: v for k, v in kid.params.items() if k not in ("algorithm", "learner")}
        rows.append(
            (
                "best" if rank == 1 else str(rank),
                kid.name,
                f"{kid.metrics[metric]:g}",
                kid.params.get("algorithm", ""),
                " ".join(f"{k}={v}" for k, v in sorted(params.items())),
                kid.id,
            )
        )
    header = ("RANK", "RUN NAME", metric.upper(), "ALGORITHM", "PARAMETERS", "RUN")
    out.table(header, rows, indent=4)
    if len(kids) > len(rows):
        more = len(kids) - len(rows)
        out.line(f"    … and {more} more: `mlform runs show {run.id} --json` has them all")


def _trial_value(value: float | None, last: float | None, intervals: int | None) -> str:
    """A trial's value; for one stopped early, the last it logged and when."""
    if value is not None:
        return f"{value:g}"
    return "" if last is None else f"({last:g} at {intervals})"


def _target(run_dir: Path) -> str | None:
    """The compute target a run ran on (local, docker, virtualmachine, ray), as its
    folder's `compute.json` records it."""
    try:
        return str(json.loads((run_dir / "compute.json").read_text(encoding="utf-8"))["target"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def metrics(args: argparse.Namespace, out: Output) -> int:
    ws = Workspace(args.directory)
    with ws.store("runs metrics") as store:
        run = runs.find(store, args.ref)
        history = runs.metric_history(store, run.id, args.key)
    if args.key and not history:
        raise NotFound(f"run {run.id} logged no metric '{args.key}'")
    if args.json:
        points = [{"key": k, "step": s, "timestamp": t, "value": v} for k, s, t, v in history]
        out.write(json.dumps({"run": run.id, "metrics": points}, indent=2) + "\n")
    elif args.csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["key", "step", "timestamp", "value"])
        writer.writerows(history)
        out.write(buffer.getvalue())
    else:
        out.table(("KEY", "STEP", "VALUE"), [(k, str(s), f"{v:g}") for k, s, _, v in history])
    return 0


def compare(args: argparse.Namespace, out: Output) -> int:
    ws = Workspace(args.directory)
    with ws.store("runs compare") as store:
        found = [runs.find(store, ref) for ref in args.refs]
    params = sorted({k for r in found for k in r.params})
    keys = sorted({k for r in found for k in r.metrics})
    header = ("", *(r.id for r in found))
    rows: list[tuple[str, ...]] = [("status", *(r.status for r in found))]
    rows += [(f"param {k}", *(r.params.get(k, "") for r in found)) for k in params]
    rows += [
        (f"metric {k}", *(f"{r.metrics[k]:g}" if k in r.metrics else "" for r in found))
        for k in keys
    ]
    out.table(header, rows)
    return 0


def logs(args: argparse.Namespace, out: Output) -> int:
    """Read from the run folder itself, so it works while an apply holds the state; a run
    applied on another machine is read from what the datastore keeps of it."""
    ws = Workspace(args.directory)
    try:
        run_dir = _run_dir(ws, args.ref)
    except NotFound:
        if _kept_log(ws, args.ref, out):
            return 0
        raise
    log = run_dir / "logs" / "std_log.txt"
    offset = 0
    while True:
        if log.exists():
            with log.open("rb") as handle:
                handle.seek(offset)
                data = handle.read()
            offset += len(data)
            out.write(data.decode(errors="replace"))
        if not args.follow or _finished(ws, run_dir.name):
            return 0
        time.sleep(0.5)


def _kept_log(ws: Workspace, ref: str, out: Output) -> bool:
    """Print a run's log as kept in the datastore; False if none is kept."""
    # start-up: `mlform --help` loads every command's module
    import codecs

    from mlform.storage import folders

    with ws.store("runs logs") as store:
        run = runs.find(store, ref)
        kept = store.query("select manifest from run_files where run_id = ?", [run.id])
    if not kept:
        return False
    spec = ws.config.datastore(ws.config.default_datastore)
    storage = open_storage(spec, ws.config.storage_options(spec))
    handle = folders.open_file(storage, kept[0][0], "logs/std_log.txt")
    if handle is None:
        return False
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    with handle:
        while chunk := handle.read(1 << 20):
            out.write(decoder.decode(chunk))
    out.write(decoder.decode(b"", final=True))
    return True


def snapshot(args: argparse.Namespace, out: Output) -> int:
    ws = Workspace(args.directory)
    run_dir = _run_dir(ws, args.ref)
    manifest = run_dir / "logs" / "snapshot.json"
    if not manifest.exists():
        raise NotFound(f"run {run_dir.name} has no code snapshot (its runconfig has no code:)")
    data = json.loads(manifest.read_text(encoding="utf-8"))
    if args.explain:
        out.line(f"Left out of {run_dir.name}'s snapshot ({len(data['excluded'])} entries):")
        for item in data["excluded"]:
            where = item["rule_file"] + (f":{item['line']}" if item["line"] else "")
            out.line(f"  {item['relpath']:<40} {item['pattern']:<20} {where}")
        return 0
    out.line(f"sha256:{data['digest']}  {len(data['files'])} files")
    for entry in data["files"]:
        out.line(f"  {entry['path']}  {entry['size']} B")
    return 0


def download(args: argparse.Namespace, out: Output) -> int:
    # start-up: `mlform --help` loads every command's module
    from mlform import snapshot as snapshots
    from mlform.storage import folders
    from mlform.tracking.protocol import LOGS, OUTPUTS

    ws = Workspace(args.directory)
    with ws.store("runs download") as store:
        run = runs.find(store, args.ref)
        key = store.query("select key from snapshots where id = ?", [run.snapshot_id or ""])
        kept = store.query("select manifest from run_files where run_id = ?", [run.id])
    dest = Path(args.dest or run.id)
    if dest.exists() and any(dest.iterdir()):
        raise MlformError(f"{dest} is not empty; choose an empty or new folder")
    spec = ws.config.datastore(ws.config.default_datastore)
    storage = open_storage(spec, ws.config.storage_options(spec))
    if key:
        snapshots.extract(storage, key[0][0], dest / "snapshot")
    here = [name for name in (OUTPUTS, LOGS) if (Path(run.run_dir) / name).is_dir()]
    if here:  # this machine ran it: its own folder, as the run left it
        for name in here:
            shutil.copytree(Path(run.run_dir) / name, dest / name, dirs_exist_ok=True)
    elif kept:  # another machine ran it: what the datastore keeps of it
        folders.restore(storage, kept[0][0], dest)
    out.line(f"Restored run {run.id} into {dest}/ (snapshot/, outputs/ and logs/).")
    return 0


def experiments(args: argparse.Namespace, out: Output) -> int:
    ws = Workspace(args.directory)
    with ws.store("experiments list") as store:
        found = runs.experiments(store)
    if args.json:
        out.json(found)
        return 0
    if not found:
        out.line("No experiments yet: they are created by the first run that names one.")
        return 0
    out.table(
        ("EXPERIMENT", "RUNS", "LATEST RUN", "STATUS"),
        [(e.name, str(e.runs), e.last_run or "", e.last_status or "") for e in found],
    )
    return 0


def _run_dir(ws: Workspace, ref: str) -> Path:
    base = ws.home / "runs"
    exact = base / ref
    if exact.is_dir():
        return exact
    try:
        with ws.store("runs") as store:
            return Path(runs.find(store, ref).run_dir)
    except StateLocked:
        pass  # an apply is running: look in the folders, newest first
    found = sorted((p for p in base.glob(f"{ref}*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    if not found:
        raise NotFound(f"no run '{ref}' in {base}")
    return found[-1]


def _finished(ws: Workspace, run_id: str) -> bool:
    try:
        with ws.store("runs logs") as store:
            rows = store.query("select status from runs where id = ?", [run_id])
    except StateLocked:
        return False
    # start-up: `mlform --help` loads every command's module
    from mlform.state.runs import FINISHED

    return bool(rows) and rows[0][0] in FINISHED


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise MlformError(f"--tag {text}: write it as KEY=VALUE")
    return key, value


def _when(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}s"


def _finals(metrics: Mapping[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())[:3])
