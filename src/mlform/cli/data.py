"""`mlform data list|show|head`: what data is registered, and a look inside."""

from __future__ import annotations

import argparse

from mlform.cli.output import Output, add_json_flag, json_object
from mlform.config.names import cli_ref
from mlform.sizes import human_size
from mlform.workspace import Workspace


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("data", help="registered data assets and their versions")
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    q = sub.add_parser("list", help="each data asset with its latest version")
    q.add_argument("--archived", action="store_true", help="include archived versions")
    add_json_flag(q)
    q.set_defaults(run=list_)
    q = sub.add_parser("show", help="a data asset's versions, files and digest")
    q.add_argument("ref", metavar="NAME[:VERSION]", type=cli_ref)
    add_json_flag(q)
    q.set_defaults(run=show)
    q = sub.add_parser("head", help="the first rows and the schema, read through DuckDB")
    q.add_argument("ref", metavar="NAME[:VERSION]", type=cli_ref)
    q.add_argument("-n", "--rows", type=int, default=10)
    q.set_defaults(run=head)


def list_(args: argparse.Namespace, out: Output) -> int:
    # start-up: `mlform --help` loads every command's module
    from mlform import datasets  # imports the whole duckdb package: only here

    ws = Workspace(args.directory)
    with ws.store("data list") as store:
        items = datasets.versions(store, archived=True) if args.archived else datasets.latest(store)
    if args.json:
        out.json(items)
        return 0
    if not items:
        out.line("No data registered yet. Declare data in data/*.yml and run `mlform apply`.")
        return 0
    rows = [
        (
            i.name,
            i.version,
            i.type,
            str(len(i.manifest)),
            human_size(i.size),
            i.created_at,
            "archived" if i.archived else "",
        )
        for i in items
    ]
    out.table(("NAME", "VERSION", "TYPE", "FILES", "SIZE", "REGISTERED", ""), rows)
    return 0


def show(args: argparse.Namespace, out: Output) -> int:
    # start-up: `mlform --help` loads every command's module
    from mlform import datasets  # imports the whole duckdb package: only here

    ws = Workspace(args.directory)
    with ws.store("data show") as store:
        item = datasets.resolve(store, args.ref)
        history = datasets.versions(store, item.name, archived=True)
    if args.json:
        out.json({**json_object(item), "versions": [v.version for v in history]})
        return 0
    out.line(f"{item.name}:{item.version}" + (" (archived)" if item.archived else ""))
    out.line(f"  type:        {item.type}")
    out.line(f"  digest:      sha256:{item.content_digest}")
    out.line(f"  size:        {human_size(item.size)} in {len(item.manifest)} file(s)")
    out.line(f"  stored at:   {item.location}")
    out.line(f"  registered:  {item.created_at}")
    if item.spec.get("description"):
        out.line(f"  description: {item.spec['description']}")
    for key, value in sorted((item.spec.get("tags") or {}).items()):
        out.line(f"  tag:         {key}={value}")
    out.line("  files:")
    for entry in item.manifest[:50]:
        out.line(f"    {entry['path']}  {human_size(entry['size'])}  {entry['sha256'][:12]}")
    if len(item.manifest) > 50:
        out.line(f"    … and {len(item.manifest) - 50} more")
    out.line("  versions: " + ", ".join(v.version for v in history))
    return 0


def head(args: argparse.Namespace, out: Output) -> int:
    # start-up: `mlform --help` loads every command's module
    from mlform import datasets  # imports the whole duckdb package: only here

    ws = Workspace(args.directory)
    with ws.store("data head") as store:
        table = datasets.head(store, ws.config, args.ref, args.rows)
    out.line("schema: " + ", ".join(f"{name} {kind}" for name, kind in table.columns))
    out.line()
    out.table(tuple(name for name, _ in table.columns), [tuple(map(str, r)) for r in table.rows])
    return 0
