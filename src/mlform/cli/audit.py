"""`mlform audit`: who did what, and when — applies, tokens, invocations, denied calls."""

from __future__ import annotations

import argparse
import time

from mlform.access import durations
from mlform.access.durations import iso
from mlform.cli.output import Output, add_json_flag
from mlform.errors import printable
from mlform.workspace import Workspace


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("audit", help="the audit log: who did what, when")
    p.add_argument(
        "--since", metavar="WHEN", help="a span back from now (7d, 12h) or a date (2026-12-01)"
    )
    add_json_flag(p)
    p.set_defaults(run=audit)


def audit(args: argparse.Namespace, out: Output) -> int:
    # start-up: `mlform --help` loads every command's module
    from mlform.access import audit as log

    since = None if args.since is None else durations.since(args.since, time.time())
    ws = Workspace(args.directory)
    with ws.store("audit", write=True) as store:  # writing: it ingests the servers' journal
        found = log.events(store, since)
    if args.json:
        out.json(
            [
                {
                    "at": iso(e.at),
                    "actor": e.actor,
                    "action": e.action,
                    "target": e.target,
                    "status": e.status,
                    "message": e.message,
                    "source": e.source,
                }
                for e in found
            ]
        )
        return 0
    if not found:
        out.line("No audit events" + ("" if since is None else f" since {iso(since)}") + ".")
        return 0
    # The actor, route and message may be a client's choosing: one printable line each.
    rows = [
        (
            iso(e.at),
            printable(e.actor),
            e.action,
            printable(e.target),
            e.status,
            printable(e.message),
        )
        for e in found
    ]
    out.table(("TIME", "WHO", "ACTION", "TARGET", "STATUS", "DETAIL"), rows)
    return 0
