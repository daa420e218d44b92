"""`mlform endpoints list|show|logs|invoke|keys|token`: online endpoints as they run."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mlform.cli.output import Output, add_json_flag
from mlform.config.names import cli_name
from mlform.errors import MlformError
from mlform.shownpath import shown
from mlform.workspace import Workspace

if TYPE_CHECKING:
    from mlform.kinds.endpoint.signing import Rotation


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("endpoints", help="online endpoints: addresses, deployments, keys")
    sub = p.add_subparsers(dest="endpoints_command", metavar="ACTION", required=True)
    q = sub.add_parser("list", help="each endpoint with its address and deployments")
    add_json_flag(q)
    q.set_defaults(run=list_)
    q = sub.add_parser("show", help="an endpoint: address, traffic, each deployment's instance")
    add_json_flag(q)
    q.add_argument("name", type=cli_name)
    q.set_defaults(run=show)
    q = sub.add_parser("logs", help="a deployment's server log")
    q.add_argument("name", type=cli_name)
    q.add_argument("--deployment", "-d", help="which deployment (default: the only one)")
    q.add_argument("--lines", "-n", type=int, default=50)
    q.set_defaults(run=logs)
    q = sub.add_parser("invoke", help="score a request through the endpoint (or one deployment)")
    q.add_argument("name", type=cli_name)
    q.add_argument("--data", required=True, metavar="FILE", help="the JSON body, or - for stdin")
    q.add_argument("--deployment", "-d", help="send it to this deployment whatever the traffic")
    q.set_defaults(run=invoke)
    q = sub.add_parser("keys", help="the endpoint's keys (Authorization: Bearer KEY)")
    q.add_argument("name", type=cli_name)
    renew = q.add_mutually_exclusive_group()
    renew.add_argument(
        "--regenerate",
        choices=("primary", "secondary"),
        help="make a new key; `mlform apply` then rolls the deployments onto it",
    )
    renew.add_argument(
        "--rotate-token-key",
        action="store_true",
        help="(auth_mode: token) sign new tokens with a new key; tokens signed before "
        "stay valid until they expire",
    )
    q.set_defaults(run=keys_)
    q = sub.add_parser("token", help="a token for an endpoint with auth_mode: token")
    q.add_argument("name", type=cli_name)
    q.add_argument(
        "--expires",
        type=float,
        default=3600,
        metavar="SECONDS",
        help="how long the token is valid (default: 3600, at most 86400)",
    )
    q.set_defaults(run=token)


def list_(args: argparse.Namespace, out: Output) -> int:
    # start-up: `mlform --help` loads every command's module
    from mlform.kinds.endpoint import operations

    found = operations.endpoints(Workspace(args.directory))
    if args.json:
        out.json(found)
        return 0
    if not found:
        out.line("No endpoints yet. Declare one in endpoints/*.yml and run `mlform apply`.")
        return 0
    rows = [
        (
            e.name,
            e.url,
            e.auth_mode,
            ", ".join(
                f"{d.deployment} {d.weight}% {'up' if d.up else 'DOWN'}" for d in e.deployments
            )
            or "none",
            "up" if e.router_up else "DOWN",
        )
        for e in found
    ]
    out.table(("NAME", "URL", "AUTH", "DEPLOYMENTS", "ROUTER"), rows)
    return 0


def show(args: argparse.Namespace, out: Output) -> int:
    # start-up: `mlform --help` loads every command's module
    from mlform.kinds.endpoint import operations

    ws = Workspace(args.directory)
    e = operations.endpoint(ws, args.name)
    if args.json:
        out.json(e)
        return 0
    out.line(e.name)
    out.line(f"  scoring uri: {e.url}/score")
    out.line(f"  openapi:     {e.url}/openapi.json")
    out.line(f"  auth:        {e.auth_mode} (`mlform endpoints keys {e.name}`)")
    out.line(f"  router:      {'running' if e.router_up else 'NOT RUNNING'}")
    for d in e.deployments:
        state = "running" if d.up else "NOT RUNNING"
        out.line(f"  deployment {d.deployment}: {d.weight}% of traffic, {state}")
        out.line(f"    model:     {d.model}")
        if d.compute == "local":  # its handle is pid@start time; the pid is what users know
            process = f"pid {d.handle.partition('@')[0]}"
        else:
            process = f"container {d.handle[:12]}"
        out.line(f"    compute:   {d.compute} ({process})")
        out.line(f"    address:   {d.url}/score")
        out.line(f"    log:       {shown(Path(d.log), ws.root)}")
    return 0


def logs(args: argparse.Namespace, out: Output) -> int:
    # start-up: `mlform --help` loads every command's module
    from mlform.kinds.endpoint import operations

    text = operations.logs(Workspace(args.directory), args.name, args.deployment, args.lines)
    out.line(text)
    return 0


def invoke(args: argparse.Namespace, out: Output) -> int:
    # start-up: `mlform --help` loads every command's module
    from mlform.kinds.endpoint import operations

    if args.data == "-":
        body = sys.stdin.buffer.read()
    else:
        try:
            body = Path(args.data).read_bytes()
        except OSError as err:
            raise MlformError(f"--data {args.data}: cannot read it ({err.strerror})") from err
    status, text = operations.invoke(Workspace(args.directory), args.name, body, args.deployment)
    out.line(text)
    return 0 if status < 400 else 1


def keys_(args: argparse.Namespace, out: Output) -> int:
    # start-up: `mlform --help` loads every command's module
    from mlform.kinds.endpoint import operations

    if args.rotate_token_key:
        return _rotated(operations.rotate_token_key(Workspace(args.directory), args.name), out)
    found = operations.keys(Workspace(args.directory), args.name, args.regenerate)
    for slot, key in found.items():
        out.line(f"{slot}: {key}")
    if args.regenerate:
        out.line(f"the {args.regenerate} key is new: run `mlform apply` to roll it out")
    return 0


def _rotated(rotation: Rotation, out: Output) -> int:
    for line in rotation.lines():
        out.line(line)
    return 0


def _utc(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def token(args: argparse.Namespace, out: Output) -> int:
    # start-up: `mlform --help` loads every command's module
    from mlform.kinds.endpoint import operations

    made, expires = operations.token(Workspace(args.directory), args.name, args.expires)
    out.line(made)
    print(f"expires {_utc(expires)}", file=sys.stderr)
    return 0
