"""`mlform tokens create|list|revoke`: API tokens for mlform's own servers."""

from __future__ import annotations

import argparse

from mlform.access.durations import iso
from mlform.access.roles import NAMES
from mlform.cli.output import Output, add_json_flag
from mlform.config.names import cli_name
from mlform.workspace import Workspace


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("tokens", help="API tokens for the pipeline endpoint and other servers")
    sub = p.add_subparsers(dest="tokens_command", metavar="ACTION", required=True)
    q = sub.add_parser("create", help="make a token; it is printed once and kept nowhere")
    q.add_argument("name", type=cli_name)
    q.add_argument("--role", required=True, choices=NAMES, help="reader < operator < admin")
    q.add_argument(
        "--expires", default="30d", metavar="SPAN", help="30d (default), 12h, 2s… or never"
    )
    q.set_defaults(run=create)
    q = sub.add_parser("list", help="every token: role, times, status; never a secret")
    add_json_flag(q)
    q.set_defaults(run=list_)
    q = sub.add_parser("revoke", help="refuse a token from now on")
    q.add_argument("name", type=cli_name)
    q.set_defaults(run=revoke)


def create(args: argparse.Namespace, out: Output) -> int:
    # start-up: `mlform --help` loads every command's module
    from mlform.access import durations, manage, roles

    lasts = durations.seconds(args.expires)
    info, text = manage.create(Workspace(args.directory), args.name, roles.parse(args.role), lasts)
    out.line(f"Created token {info.name} (role {info.role}, expires {iso(info.expires_at)}).")
    out.line("Copy it now: it is shown only this once, and mlform keeps only its hash.")
    out.line(text)
    return 0


def list_(args: argparse.Namespace, out: Output) -> int:
    # start-up: `mlform --help` loads every command's module
    from mlform.access import manage

    found = manage.list_(Workspace(args.directory))
    if args.json:
        out.json(found)
        return 0
    if not found:
        out.line("No tokens yet. Make one with `mlform tokens create NAME --role reader`.")
        return 0
    rows = [
        (
            t.name,
            t.role,
            t.status,
            iso(t.created_at),
            iso(t.expires_at),
            iso(t.last_used_at) if t.last_used_at is not None else "",
            iso(t.revoked_at) if t.revoked_at is not None else "",
        )
        for t in found
    ]
    out.table(("NAME", "ROLE", "STATUS", "CREATED", "EXPIRES", "LAST USED", "REVOKED"), rows)
    return 0


def revoke(args: argparse.Namespace, out: Output) -> int:
    # start-up: `mlform --help` loads every command's module
    from mlform.access import manage

    manage.revoke(Workspace(args.directory), args.name)
    out.line(f"Revoked token {args.name}: the servers refuse it from their next request.")
    return 0
