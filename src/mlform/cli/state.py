"""`mlform force-unlock` and `mlform state list|show`: looking after the state file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mlform.cli.output import Output, add_json_flag
from mlform.config.names import cli_address
from mlform.errors import NotFound, StateError
from mlform.state import syncs, transfer
from mlform.workspace import Workspace

# Environment variables (an environment's `variables` once applied): the state keeps
# their values for apply, but no command prints them, as no plan does.
_SECRET_MAPS = ("environment_variables", "variables")
HIDDEN = "(hidden)"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "force-unlock", help="remove a stuck state lock (only when no mlform process runs)"
    )
    p.add_argument("lock_id", metavar="ID", help="the lock ID the refused command printed")
    p.add_argument(
        "--force",
        action="store_true",
        help="remove it even though its holder still runs on this machine (a hung process)",
    )
    p.set_defaults(run=unlock)

    p = commands.add_parser("state", help="what the state records")
    sub = p.add_subparsers(dest="state_command", metavar="ACTION", required=True)
    q = sub.add_parser("list", help="every recorded resource and its status")
    add_json_flag(q)
    q.set_defaults(run=list_)
    q = sub.add_parser(
        "show", help="one recorded resource, or (without one) the state itself, as JSON"
    )
    q.add_argument("address", metavar="KIND/NAME", type=cli_address, nargs="?")
    add_json_flag(q)  # accepted for symmetry: `state show` always prints JSON
    q.set_defaults(run=show)
    q = sub.add_parser("where", help="where the state is kept: its URL, or its file")
    q.add_argument(
        "--shared",
        action="store_true",
        help="fail unless it is in a remote backend (what a CI job needs)",
    )
    q.set_defaults(run=where)
    q = sub.add_parser("pull", help="copy the state, as last committed, into a file")
    q.add_argument("file", metavar="FILE", type=Path)
    q.set_defaults(run=pull)
    q = sub.add_parser(
        "push", help="make a state file the state (refused for another lineage or older serial)"
    )
    q.add_argument("file", metavar="FILE", type=Path)
    q.add_argument("--force", action="store_true", help="push whatever the state there is")
    q.add_argument("--lock-timeout", type=float, default=0.0, metavar="SECONDS")
    q.set_defaults(run=push)
    q = sub.add_parser("migrate", help="copy the state to another backend that holds none yet")
    q.add_argument(
        "--to", required=True, metavar="URL", help="s3://…, az://…, wasbs://…, or a local path"
    )
    q.add_argument("--lock-timeout", type=float, default=0.0, metavar="SECONDS")
    q.set_defaults(run=migrate)


def unlock(args: argparse.Namespace, out: Output) -> int:
    ws = Workspace(args.directory)
    unlocked = transfer.unlock(ws.state_location, ws.home, args.lock_id, force=args.force)
    if unlocked.warning:
        out.warn(unlocked.warning)
    out.line(f"Removed lock {unlocked.holder.id}, held by {unlocked.holder.describe()}.")
    return 0


def list_(args: argparse.Namespace, out: Output) -> int:
    ws = Workspace(args.directory)
    with ws.store("state list") as store:
        identity = store.identity()
        recorded = store.recorded()
    if args.json:
        out.json(
            [
                {
                    "address": r.address,
                    "status": r.status,
                    "digest": r.digest,
                    "source": r.source,
                    "protect": r.protect,
                }
                for _, r in sorted(recorded.items())
                if r.status != "deleted"
            ]
        )
        return 0
    for address in sorted(recorded):
        record = recorded[address]
        if record.status != "deleted":
            flag = "" if record.status == "applied" else f"  ({record.status})"
            out.line(f"{address}{flag}")
    out.line(
        out.dim(f"state {ws.state_name}, lineage {identity.lineage}, serial {identity.serial}")
    )
    return 0


def show(args: argparse.Namespace, out: Output) -> int:
    ws = Workspace(args.directory)
    if args.address is None:
        return _show_state(ws, out)
    with ws.store("state show") as store:
        record = store.recorded().get(args.address)
    if record is None or record.status == "deleted":
        raise NotFound(f"the state records no {args.address}; see `mlform state list`")
    out.json(
        {
            "address": record.address,
            "status": record.status,
            "error": record.error,
            "digest": record.digest,
            "source": record.source,
            "protect": record.protect,
            "spec": hide_values(record.spec, _SECRET_MAPS[:1]),
            "outputs": hide_values(record.outputs, _SECRET_MAPS),
            "components": record.components,
        }
    )
    return 0


def where(args: argparse.Namespace, out: Output) -> int:
    ws = Workspace(args.directory)
    if args.shared and ws.remote is None:
        raise StateError(
            f"the state is a local file ({ws.state_path}), which a fresh CI runner or "
            "another clone does not have: each would start over and apply everything "
            "again. Keep it in a remote backend: `mlform state migrate --to "
            "az://CONTAINER/state.duckdb` (or s3://BUCKET/state.duckdb), then set `state:` "
            "in workspace.yml to that URL"
        )
    out.line(ws.state_name)
    return 0


def pull(args: argparse.Namespace, out: Output) -> int:
    ws = Workspace(args.directory)
    identity = transfer.pull(ws.state_location, ws.home, args.file)
    out.line(
        f"Pulled {ws.state_name} (lineage {identity.lineage}, serial {identity.serial}) "
        f"into {args.file}."
    )
    return 0


def push(args: argparse.Namespace, out: Output) -> int:
    ws = Workspace(args.directory)
    identity = transfer.push(
        ws.state_location, ws.home, args.file, force=args.force, wait=args.lock_timeout
    )
    out.line(
        f"Pushed {args.file} (lineage {identity.lineage}, serial {identity.serial}) to "
        f"{ws.state_name}."
    )
    return 0


def migrate(args: argparse.Namespace, out: Output) -> int:
    ws = Workspace(args.directory)
    target = transfer.location(args.to, ws.root)
    identity = transfer.migrate(ws.state_location, target, ws.home, wait=args.lock_timeout)
    out.line(
        f"Copied the state (lineage {identity.lineage}, serial {identity.serial}) from "
        f"{ws.state_name} to {transfer.name(target)}."
    )
    out.line(
        f"Now set `state: {args.to}` in workspace.yml. The state at {ws.state_name} is left "
        "as it was: remove it once the workspace uses the new one."
    )
    return 0


def _show_state(ws: Workspace, out: Output) -> int:
    """Where the state is, how far along, and the commit it reflects (`mlform agent`)."""
    with ws.store("state show") as store:
        identity = store.identity()
        synced = syncs.last(store, applied=True) if store.exists else None
    out.json(
        {
            "state": ws.state_name,
            "lineage": identity.lineage,
            "serial": identity.serial,
            "commit": synced.commit if synced else None,
            "synced_at": synced.at.isoformat() if synced else None,
            "branch": synced.branch if synced else None,
        }
    )
    return 0


def hide_values(value: Any, names: tuple[str, ...]) -> Any:
    """`value` with the values of every mapping under one of `names` replaced by HIDDEN."""
    if isinstance(value, dict):
        return {
            k: {n: HIDDEN for n in v}
            if k in names and isinstance(v, dict)
            else hide_values(v, names)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [hide_values(item, names) for item in value]
    return value
