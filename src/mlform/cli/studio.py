"""`mlform studio`: the workspace's runs, plan and applies as a local web app."""

from __future__ import annotations

import argparse

from mlform.cli.output import Output
from mlform.workspace import Workspace


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "studio", help="look at runs, charts, the plan and applies in a browser"
    )
    p.add_argument("--host", default="127.0.0.1", help="where to listen (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="default 8765; 0 picks a free one")
    p.add_argument(
        "--token",
        help="a token every request must carry (16 characters or more), or `generate`; "
        "required to listen on anything but 127.0.0.1",
    )
    p.set_defaults(run=studio)


def studio(args: argparse.Namespace, out: Output) -> int:
    # start-up: the studio's modules only for `mlform studio`
    from mlform.studio import auth
    from mlform.studio.app import serve

    token = auth.new_token() if args.token == "generate" else args.token
    token = auth.check_bind(args.host, token)
    serve(
        Workspace(args.directory),
        args.host,
        args.port,
        token,
        out.line,
        shown_token=args.token == "generate",
    )
    return 0
