"""`mlform schema`: the JSON Schemas that `mlform validate` and editors check files with."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlform.cli.output import Output
from mlform.errors import MlformError


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("schema", help="print a file kind's JSON Schema, or export them all")
    p.add_argument("kind", nargs="?", metavar="KIND", help="workspace, data, environment, …")
    p.add_argument(
        "--export",
        metavar="DIR",
        help="write every schema into DIR (replacing older copies), e.g. .schema",
    )
    p.set_defaults(run=schema)


def schema(args: argparse.Namespace, out: Output) -> int:
    # start-up: `mlform --help` loads every command's module
    from mlform.scaffold import export_schemas, schemas

    known = schemas()
    kinds = ", ".join(known)
    if args.export is not None:
        if args.kind is not None:
            raise MlformError("pass either KIND (to print one schema) or --export DIR, not both")
        dest = Path(args.directory) / args.export
        for path in export_schemas(dest):
            out.line(f"  wrote {dest / path}")
        return 0
    if args.kind is None:
        raise MlformError(f"name a kind to print its schema ({kinds}), or pass --export DIR")
    if args.kind not in known:
        raise MlformError(f"no schema for kind '{args.kind}'; the kinds are: {kinds}")
    text = known[args.kind].read_text(encoding="utf-8")
    out.write(text if text.endswith("\n") else text + "\n")
    return 0
