"""`mlform init`: a new workspace repository from templates."""

from __future__ import annotations

import argparse

from mlform.cli.output import Output


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("init", help="create a new workspace here (or in PATH)")
    p.add_argument("path", nargs="?", default=".")
    p.add_argument("--name", help="workspace name (default: the folder's name)")
    p.add_argument("--force", action="store_true", help="write into a non-empty folder")
    p.set_defaults(run=init)


def init(args: argparse.Namespace, out: Output) -> int:
    from mlform.scaffold import scaffold

    written = scaffold(args.path, name=args.name, force=args.force)
    for path in written:
        out.line(f"  created {path}")
    out.line(f"\nNew workspace in {args.path}. Next: cd {args.path} && mlform plan")
    return 0
