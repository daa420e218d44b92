"""`mlform pipelines list|show|runs|invoke|serve`: published pipelines and their runs."""

from __future__ import annotations

import argparse

from mlform.cli.output import Output, add_json_flag, json_object
from mlform.config.names import cli_name
from mlform.errors import MlformError, NotFound
from mlform.workspace import Workspace


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("pipelines", help="published pipelines: runs, invoke, endpoint")
    sub = p.add_subparsers(dest="pipelines_command", metavar="ACTION", required=True)
    q = sub.add_parser("list", help="each published pipeline with its default version")
    add_json_flag(q)
    q.set_defaults(run=list_)
    q = sub.add_parser("show", help="a pipeline's steps, inputs and last run")
    q.add_argument("name", type=cli_name)
    add_json_flag(q)
    q.set_defaults(run=show)
    q = sub.add_parser("runs", help="a pipeline's runs, newest first, step by step")
    q.add_argument("name", type=cli_name)
    add_json_flag(q)
    q.set_defaults(run=runs_)
    q = sub.add_parser("invoke", help="run the published pipeline now, inputs overridden")
    q.add_argument("name", type=cli_name)
    q.add_argument("--set", action="append", default=[], metavar="INPUT=VALUE", dest="sets")
    q.add_argument("--run-id", help=argparse.SUPPRESS)
    q.set_defaults(run=invoke)
    q = sub.add_parser("serve", help="the pipeline endpoint: POST /pipelines/NAME/runs")
    q.add_argument("--host", default="127.0.0.1")
    q.add_argument("--port", type=int, default=5090)
    q.set_defaults(run=serve)


def list_(args: argparse.Namespace, out: Output) -> int:
    # start-up: `mlform --help` loads every command's module
    from mlform.kinds.pipeline import operations

    found = operations.published(Workspace(args.directory))
    if args.json:
        out.json(found)
        return 0
    if not found:
        out.line(
            "No pipelines published yet. Declare one in pipelines/*.yml and run `mlform apply`."
        )
        return 0
    rows = [
        (p.name, p.version, str(len(p.steps)), p.last_run or "", p.last_status or "") for p in found
    ]
    out.table(("NAME", "VERSION", "STEPS", "LAST RUN", "STATUS"), rows)
    return 0


def show(args: argparse.Namespace, out: Output) -> int:
    # start-up: `mlform --help` loads every command's module
    from mlform.kinds.pipeline import operations

    ws = Workspace(args.directory)
    found = {p.name: p for p in operations.published(ws)}
    if args.name not in found:
        raise NotFound(
            f"no published pipeline '{args.name}' (published: {', '.join(found) or 'none'})"
        )
    p = found[args.name]
    history = operations.runs(ws, p.name)
    if args.json:
        out.json({**json_object(p), "last_run_steps": history[0].steps if history else {}})
        return 0
    out.line(f"{p.name} (version {p.version}, the default)")
    out.line("  inputs:")
    for key, value in p.inputs.items():
        out.line(f"    {key}: {value}")
    out.line("  steps: " + " → ".join(p.steps))
    if history:
        last = history[0]
        out.line(f"  last run: {last.id} ({last.status})")
        for step, status in last.steps.items():
            out.line(f"    {step}: {status}")
    return 0


def runs_(args: argparse.Namespace, out: Output) -> int:
    # start-up: `mlform --help` loads every command's module
    from mlform.kinds.pipeline import operations

    found = operations.runs(Workspace(args.directory), args.name)
    if args.json:
        out.json(found)
        return 0
    if not found:
        out.line(f"No runs of pipeline {args.name} yet.")
        return 0
    rows = [
        (
            r.id,
            r.status,
            r.started,
            f"{r.duration:.1f}s" if r.duration is not None else "",
            ", ".join(f"{s} {st}" for s, st in sorted(r.steps.items())),
        )
        for r in found
    ]
    out.table(("RUN", "STATUS", "STARTED", "DURATION", "STEPS"), rows)
    return 0


def invoke(args: argparse.Namespace, out: Output) -> int:
    # start-up: `mlform --help` imports every command's module
    from mlform.kinds.pipeline import invoke

    overrides = {}
    for item in args.sets:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise MlformError(f"--set {item!r}: write INPUT=VALUE")
        overrides[key] = value
    results, parent = invoke.invoke(
        Workspace(args.directory),
        args.name,
        overrides,
        run_id=args.run_id,
        log=lambda address, message: out.line(f"    {message}"),
    )
    for name, result in results.items():
        extra = f" (reused {result.reused_from})" if result.reused_from else ""
        out.line(f"  {name}: {result.status}{extra}")
    out.line(f"run {parent.id} {parent.status}")
    return 0 if parent.status == "completed" else 1


def serve(args: argparse.Namespace, out: Output) -> int:
    # start-up: `mlform --help` loads every command's module
    from mlform.kinds.pipeline import published

    return published.serve(Workspace(args.directory), args.host, args.port, out.line)
