"""`mlform agent run|approve|status`: the reconciler, and what it waits for."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path
from types import FrameType

from mlform.cli.output import Output
from mlform.errors import MlformError, NotFound
from mlform.workspace import Workspace


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("agent", help="follow a git branch: plan and apply each commit")
    sub = p.add_subparsers(dest="agent_command", metavar="ACTION", required=True)
    q = sub.add_parser("run", help="reconcile a branch of a git remote until stopped")
    q.add_argument("--repo", required=True, metavar="URL", help="the git remote to follow")
    q.add_argument("--branch", default="main")
    q.add_argument(
        "--interval", type=float, default=60.0, metavar="SECONDS", help="between fetches"
    )
    q.add_argument(
        "--folder",
        type=Path,
        metavar="DIR",
        help="its working copy (default: .mlform-agent/<remote's digest> here)",
    )
    q.add_argument("--path", default=".", help="the workspace's folder inside the repository")
    q.add_argument("--host", default="127.0.0.1")
    q.add_argument(
        "--port", type=int, default=8740, help="for /healthz, /metrics, /hooks/git (0: any)"
    )
    q.set_defaults(run=run)
    q = sub.add_parser("approve", help="let the agent apply the plan it holds back")
    q.add_argument("commit", nargs="?", metavar="COMMIT", help="which one, when several wait")
    q.set_defaults(run=approve)
    q = sub.add_parser("status", help="the commit the state reflects, and what waits")
    q.set_defaults(run=status)


def run(args: argparse.Namespace, out: Output) -> int:
    # start-up: the agent's modules only for `agent run`
    from mlform.agent import server
    from mlform.agent.checkout import Checkout
    from mlform.agent.loop import Agent, JsonLog, folder_for

    folder = args.folder or folder_for(args.repo, Path(args.directory) / ".mlform-agent")
    checkout = Checkout(args.repo, args.branch, folder.resolve(), Path(args.path))
    log = JsonLog()
    agent = Agent(checkout, interval=args.interval, log=log)
    server.serve(agent, args.host, args.port, lambda line: log("listening", message=line))
    stop = threading.Event()

    def terminate(signum: int, frame: FrameType | None) -> None:
        # SIGTERM stops as Ctrl-C does: an apply in flight ends by Ctrl-C's rules.
        stop.set()
        agent.wake.set()
        os.kill(os.getpid(), signal.SIGINT)

    signal.signal(signal.SIGTERM, terminate)
    log("started", repo=args.repo, branch=args.branch, folder=str(folder))
    try:
        agent.run(stop)
    except KeyboardInterrupt:
        log("stopped", reason="signal", commit=agent.gauges.commit or None)
        return 0
    return 0


def approve(args: argparse.Namespace, out: Output) -> int:
    # start-up: the agent's records only for `agent approve`
    from mlform.access import actor
    from mlform.state import syncs

    ws = Workspace(args.directory)
    who = actor.applier(ws.root)
    with ws.store("agent approve", write=True) as store:
        waiting = syncs.waiting(store)
        if args.commit:
            waiting = [a for a in waiting if a.commit.startswith(args.commit)]
        if not waiting:
            raise NotFound(
                "no plan waits for approval"
                + (f" at commit {args.commit}" if args.commit else "")
                + "; see `mlform agent status`"
            )
        if len(waiting) > 1 and not args.commit:
            raise MlformError(
                f"{len(waiting)} plans wait for approval ("
                + ", ".join(a.commit[:10] for a in waiting)
                + "); name the commit: `mlform agent approve COMMIT`"
            )
        chosen = waiting[-1]
        syncs.approve(store, chosen, who)
    out.line(
        f"Approved the plan for commit {chosen.commit[:10]} ({chosen.summary}); the agent "
        "applies it at its next tick."
    )
    return 0


def status(args: argparse.Namespace, out: Output) -> int:
    # start-up: the agent's records only for `agent status`
    from mlform.state import syncs

    ws = Workspace(args.directory)
    with ws.store("agent status") as store:
        reflected = syncs.last(store, applied=True)
        latest = syncs.last(store)
        waiting = syncs.waiting(store)
    if reflected is None:
        out.line("The agent has not reconciled this state yet.")
    else:
        out.line(f"The state reflects commit {reflected.commit} ({reflected.result}).")
    if latest is not None and latest != reflected:
        out.line(f"Latest: commit {latest.commit}: {latest.result}. {latest.detail or ''}".strip())
    for approval in waiting:
        out.line(
            f"Waiting for approval: commit {approval.commit[:10]}, {approval.summary} "
            f"(`mlform agent approve {approval.commit[:10]}`)"
        )
    return 0
