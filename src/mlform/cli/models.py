"""`mlform models list|show|download|register|tag|archive|restore|delete`."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlform.cli.output import Output, add_json_flag, json_object
from mlform.config.names import cli_name, cli_ref
from mlform.errors import MlformError
from mlform.sizes import human_size
from mlform.workspace import Workspace


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("models", help="the model registry: versions, files and lineage")
    sub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    q = sub.add_parser("list", help="registered model versions")
    q.add_argument("--name", type=cli_name, help="only versions of this model")
    q.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
    q.add_argument("--archived", action="store_true", help="include archived versions")
    add_json_flag(q)
    q.set_defaults(run=list_)
    q = sub.add_parser("show", help="a version's files, digest, tags and lineage")
    q.add_argument("ref", metavar="NAME[:VERSION]", type=cli_ref)
    add_json_flag(q)
    q.set_defaults(run=show)
    q = sub.add_parser("download", help="a version's files, checked against their digests")
    q.add_argument("ref", metavar="NAME[:VERSION]", type=cli_ref)
    q.add_argument("target", metavar="DIR", type=Path)
    q.set_defaults(run=download)
    q = sub.add_parser("register", help="register a file or folder as a new version")
    q.add_argument("name", type=cli_name)
    q.add_argument("path", type=Path)
    q.add_argument("--type", choices=("custom_model", "mlflow_model"))
    q.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
    q.add_argument("--description")
    q.set_defaults(run=register_)
    q = sub.add_parser("tag", help="set or remove tags on a version")
    q.add_argument("ref", metavar="NAME:VERSION", type=cli_ref)
    q.add_argument("tags", nargs="*", metavar="KEY=VALUE")
    q.add_argument("--remove", action="append", default=[], metavar="KEY")
    q.set_defaults(run=tag)
    for verb, text in (("archive", "hide"), ("restore", "bring back")):
        q = sub.add_parser(verb, help=f"{text} a version (or every version of a name)")
        q.add_argument("ref", metavar="NAME[:VERSION]", type=cli_ref)
        q.set_defaults(run=archive, restore=verb == "restore")
    q = sub.add_parser("delete", help="delete one version (refused while a deployment uses it)")
    q.add_argument("ref", metavar="NAME:VERSION", type=cli_ref)
    q.set_defaults(run=delete)


def list_(args: argparse.Namespace, out: Output) -> int:
    # start-up: `mlform --help` loads every command's module
    from mlform.registry import operations

    found = operations.list_models(
        Workspace(args.directory),
        name=args.name,
        tags=_pairs(args.tag, "--tag"),
        archived=args.archived,
    )
    if args.json:
        out.json(found)
        return 0
    if not found:
        out.line(
            "No models registered yet. Add register_model: to a runconfig, declare one in "
            "models/*.yml, or run `mlform models register NAME PATH`."
        )
        return 0
    rows = [
        (
            m.name,
            m.version,
            m.framework or m.type,
            human_size(m.size),
            m.run_id or m.source,
            m.created_at,
            ", ".join(f"{k}={v}" for k, v in sorted(m.tags.items())),
            "archived" if m.archived else "",
        )
        for m in found
    ]
    out.table(("NAME", "VERSION", "KIND", "SIZE", "FROM", "REGISTERED", "TAGS", ""), rows)
    return 0


def show(args: argparse.Namespace, out: Output) -> int:
    # start-up: `mlform --help` loads every command's module
    from mlform.registry import operations

    shown = operations.show(Workspace(args.directory), args.ref)
    m = shown.model
    if args.json:
        out.json(
            {
                **json_object(m),
                "lineage": shown.lineage,
                "used_by": shown.used_by,
                "versions": [v.version for v in shown.versions],
            }
        )
        return 0
    out.line(m.ref + (" (archived)" if m.archived else ""))
    out.line(f"  type:        {m.type}" + (f" ({m.framework})" if m.framework else ""))
    out.line(f"  digest:      sha256:{m.digest}")
    out.line(f"  size:        {human_size(m.size)} in {len(m.files)} file(s)")
    out.line(f"  stored in:   datastore {m.datastore}")
    out.line(f"  registered:  {m.created_at} by {m.source}")
    if m.description:
        out.line(f"  description: {m.description}")
    for key, value in sorted(m.tags.items()):
        out.line(f"  tag:         {key}={value}")
    if m.metrics:
        out.line(
            "  metrics:     " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(m.metrics.items()))
        )
    lineage = shown.lineage
    if lineage is not None:
        out.line("  lineage:")
        out.line(f"    run:         {lineage.run_id} ({lineage.status}, {lineage.runconfig})")
        out.line(f"    experiment:  {lineage.experiment}")
        if lineage.git_commit:
            dirty = " (uncommitted changes)" if lineage.dirty else ""
            out.line(f"    commit:      {lineage.git_commit}{dirty} on {lineage.branch or '?'}")
        if lineage.snapshot_id:
            out.line(f"    snapshot:    {lineage.snapshot_id}")
        for key, value in sorted(lineage.inputs.items()):
            out.line(f"    input:       {key} = {value}")
        if lineage.environment:
            out.line(f"    environment: {lineage.environment}")
    if shown.used_by:
        out.line("  deployed by: " + ", ".join(shown.used_by))
    out.line("  files:")
    for entry in m.files[:50]:
        out.line(f"    {entry['path']}  {human_size(entry['size'])}  {entry['sha256'][:12]}")
    if len(m.files) > 50:
        out.line(f"    … and {len(m.files) - 50} more")
    out.line("  versions: " + ", ".join(v.version for v in shown.versions))
    return 0


def download(args: argparse.Namespace, out: Output) -> int:
    # start-up: `mlform --help` loads every command's module
    from mlform.registry import operations

    model, files = operations.download(Workspace(args.directory), args.ref, args.target)
    out.line(f"downloaded {model.ref}: {len(files)} file(s) into {args.target}, digests verified")
    return 0


def register_(args: argparse.Namespace, out: Output) -> int:
    # start-up: `mlform --help` loads every command's module
    from mlform.registry import operations

    done = operations.register(
        Workspace(args.directory),
        args.name,
        args.path,
        type=args.type,
        tags=_pairs(args.tag, "--tag"),
        description=args.description,
    )
    out.line(done.message)
    return 0


def tag(args: argparse.Namespace, out: Output) -> int:
    # start-up: `mlform --help` loads every command's module
    from mlform.registry import operations

    if not args.tags and not args.remove:
        raise MlformError("give tags to set (KEY=VALUE) or --remove KEY")
    model = operations.tag(
        Workspace(args.directory), args.ref, _pairs(args.tags, "tag"), args.remove
    )
    shown = ", ".join(f"{k}={v}" for k, v in sorted(model.tags.items())) or "none"
    out.line(f"{model.ref} tags: {shown}")
    return 0


def archive(args: argparse.Namespace, out: Output) -> int:
    # start-up: `mlform --help` loads every command's module
    from mlform.registry import operations

    chosen = operations.archive(Workspace(args.directory), args.ref, restore=args.restore)
    verb = "restored" if args.restore else "archived"
    out.line(f"{verb} " + ", ".join(m.ref for m in chosen))
    return 0


def delete(args: argparse.Namespace, out: Output) -> int:
    # start-up: `mlform --help` loads every command's module
    from mlform.registry import operations

    model = operations.delete(Workspace(args.directory), args.ref)
    out.line(f"deleted {model.ref}; its number is not reused")
    return 0


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise MlformError(f"{flag} {item!r}: write KEY=VALUE")
        pairs[key] = value
    return pairs
