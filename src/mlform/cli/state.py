"""`mlform force-unlock` and `mlform state list|show`: looking after the state file."""

from __future__ import annotations

import argparse

from mlform.cli.output import Output, add_json_flag
from mlform.config.names import cli_address
from mlform.errors import NotFound
from mlform.state.lock import force_unlock
from mlform.workspace import Workspace


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "force-unlock", help="remove a stuck state lock (only when no mlform process runs)"
    )
    p.add_argument("lock_id", metavar="ID", help="the lock ID the refused command printed")
    p.set_defaults(run=unlock)

    p = commands.add_parser("state", help="what the state records")
    sub = p.add_subparsers(dest="state_command", metavar="ACTION", required=True)
    q = sub.add_parser("list", help="every recorded resource and its status")
    add_json_flag(q)
    q.set_defaults(run=list_)
    q = sub.add_parser("show", help="one recorded resource, as JSON")
    q.add_argument("address", metavar="KIND/NAME", type=cli_address)
    add_json_flag(q)  # accepted for symmetry: `state show` always prints JSON
    q.set_defaults(run=show)


def unlock(args: argparse.Namespace, out: Output) -> int:
    ws = Workspace(args.directory)
    holder = force_unlock(ws.state_path, args.lock_id)
    out.line(f"Removed lock {holder.id}, held by {holder.describe()}.")
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
        out.dim(f"state {ws.state_path}, lineage {identity.lineage}, serial {identity.serial}")
    )
    return 0


def show(args: argparse.Namespace, out: Output) -> int:
    ws = Workspace(args.directory)
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
            "spec": record.spec,
            "outputs": record.outputs,
            "components": record.components,
        }
    )
    return 0
