"""`mlform init`: a new workspace repository from templates."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from mlform.cli.output import Output


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("init", help="create a new workspace here (or in PATH)")
    p.add_argument("path", nargs="?", default=".")
    p.add_argument("--name", help="workspace name (default: the folder's name)")
    p.add_argument(
        "--force",
        action="store_true",
        help="write into a non-empty folder; files already there are kept, never overwritten",
    )
    p.add_argument(
        "--state",
        metavar="URL",
        help="keep the state in a remote backend (az://container/key, s3://bucket/key, "
        "wasbs://…), with the default datastore beside it: what CI and a team need",
    )
    p.set_defaults(run=init)


def init(args: argparse.Namespace, out: Output) -> int:
    # start-up: `mlform --help` loads every command's module
    from mlform.scaffold import scaffold

    target = Path(args.directory) / args.path  # -C moves the start, as for every command
    result = scaffold(target, name=args.name, force=args.force, state=args.state)
    for path in result.created:
        out.line(f"  created {path}")
    for path in result.kept:
        out.line(f"  kept    {path}  (already there, left untouched)")
    out.line(f"\nNew workspace '{result.name}' in {target}.")
    if result.kept:
        noun = "file was" if len(result.kept) == 1 else "files were"
        out.line(f"{len(result.kept)} existing {noun} kept as they are; check they fit.")
    if target.resolve() == Path.cwd():
        out.line("Next: mlform plan")
    else:
        out.line(f"Next: cd {shlex.quote(str(target))} && mlform plan")
    return 0
