"""`mlform images list|show`: the image registry, each build with what went into it."""

from __future__ import annotations

import argparse

from mlform.cli.output import Output, add_json_flag
from mlform.config.names import cli_name, cli_ref
from mlform.errors import NotFound
from mlform.registry import images
from mlform.registry.images import ImageBuild
from mlform.sizes import human_size
from mlform.workspace import Workspace


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("images", help="the image registry: builds of images/*.yml")
    sub = p.add_subparsers(dest="images_command", metavar="ACTION", required=True)
    q = sub.add_parser("list", help="every build, newest last")
    q.add_argument("--name", type=cli_name, help="only builds of this image")
    add_json_flag(q)
    q.set_defaults(run=list_)
    q = sub.add_parser("show", help="one build: its model, environment, script and base")
    q.add_argument("ref", metavar="NAME[:VERSION]", type=cli_ref)
    add_json_flag(q)
    q.set_defaults(run=show)


def builds(ws: Workspace, name: str | None = None) -> list[ImageBuild]:
    with ws.store("images") as store:
        return images.builds(store.read, name)


def list_(args: argparse.Namespace, out: Output) -> int:
    found = builds(Workspace(args.directory), args.name)
    if args.json:
        out.json(found)
        return 0
    if not found:
        out.line("No images built yet. Declare one in images/*.yml and run `mlform apply`.")
        return 0
    rows = [
        (
            b.name,
            b.version,
            b.reference,
            b.image_id[7:19],
            b.model,
            human_size(b.size),
            b.created_at,
        )
        for b in found
    ]
    out.table(("NAME", "VERSION", "REFERENCE", "IMAGE ID", "MODEL", "SIZE", "BUILT"), rows)
    return 0


def show(args: argparse.Namespace, out: Output) -> int:
    name, _, version = args.ref.partition(":")
    found = builds(Workspace(args.directory), name)
    chosen = [b for b in found if b.version == version] if version else found[-1:]
    if not chosen:
        have = ", ".join(b.version for b in found) or "none"
        raise NotFound(
            f"no build {args.ref} in the image registry (versions of {name}: {have}); "
            "`mlform images list` shows them"
        )
    b = chosen[0]
    if args.json:
        out.json(b)
        return 0
    out.line(f"{b.name}:{b.version}")
    out.line(f"  reference:   {b.reference}")
    out.line(f"  image id:    {b.image_id}")
    out.line(f"  model:       {b.model}")
    out.line(f"  environment: {b.environment} (packages {b.env_digest[:12]})")
    out.line(f"  script:      sha256:{b.script_digest[:12]}")
    out.line(f"  base image:  {b.base_image}")
    out.line(f"  size:        {human_size(b.size)}")
    out.line(f"  built:       {b.created_at} in {b.seconds:.0f}s")
    out.line(f"  digest:      {b.digest}")
    if b.pushed:
        out.line(f"  pushed:      {b.pushed}")
    return 0
