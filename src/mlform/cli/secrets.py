"""`mlform secrets list|set|rotate`: a value goes in on standard input, never on the
command line (where `ps` and shell history would show it), and never comes out."""

from __future__ import annotations

import argparse
import getpass
import sys

from mlform import secretops as operations
from mlform.cli.output import Output, add_json_flag
from mlform.kind import managed_secrets
from mlform.workspace import Workspace


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("secrets", help="the workspace's secrets: where they come from")
    sub = p.add_subparsers(dest="secrets_command", metavar="ACTION", required=True)
    q = sub.add_parser("list", help="each secret, its source, whether it reads here, its users")
    add_json_flag(q)
    q.set_defaults(run=list_)
    q = sub.add_parser("set", help="store a secret's value, read from standard input")
    q.add_argument("name", metavar="NAME")
    q.set_defaults(run=set_)
    q = sub.add_parser(
        "rotate", help="a new value (standard input, or --generate); says what apply rolls"
    )
    q.add_argument("name", metavar="NAME", help="a declared secret, or endpoint/NAME/signing-key")
    q.add_argument("--generate", action="store_true", help="a random value (256 bits)")
    q.set_defaults(run=rotate)


def list_(args: argparse.Namespace, out: Output) -> int:
    found = operations.listing(Workspace(args.directory).config, managed_secrets())
    if args.json:
        out.json(found)
        return 0
    if not found:
        out.line("No secrets declared. Declare them under secrets: in workspace.yml.")
        return 0
    rows = [
        (s.name, s.source, "yes" if s.readable else "no", ", ".join(s.used_by) or "-")
        for s in found
    ]
    out.table(("NAME", "SOURCE", "READS HERE", "USED BY"), rows)
    for s in found:
        if s.problem:
            out.line(f"{s.name}: {s.problem}")
    return 0


def set_(args: argparse.Namespace, out: Output) -> int:
    config = Workspace(args.directory).config
    secret = operations.declared(config, args.name)
    value = "" if secret.kind == "env" else _read_value(args.name)
    _report(out, operations.set_value(config, args.name, value))
    return 0


def rotate(args: argparse.Namespace, out: Output) -> int:
    config = Workspace(args.directory).config
    value = None
    if not args.generate and "/" not in args.name:
        secret = operations.declared(config, args.name)
        value = "" if secret.kind == "env" else _read_value(args.name)
    _report(out, operations.rotate(config, args.name, value, managed_secrets()))
    return 0


def _read_value(name: str) -> str:
    """The value on standard input (a prompt that does not echo on a terminal), without
    the one newline `echo` or the Enter key adds."""
    if sys.stdin.isatty():
        text = getpass.getpass(f"value of {name} (not shown): ")
    else:
        text = sys.stdin.read()
    return text.removesuffix("\n").removesuffix("\r")


def _report(out: Output, written: operations.Written) -> None:
    out.line(written.message)
    if written.warning:
        out.warn(written.warning)
    if written.live:
        return
    if written.rolls:
        out.line(f"The next `mlform apply` rolls: {', '.join(written.rolls)}")
    else:
        out.line("No resource uses it yet.")
