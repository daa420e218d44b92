"""`mlform`: parse the command line, run one command, map errors to exit codes.

Exit codes: 0 success (for `plan --detailed-exitcode`: no changes), 1 an error, 2 changes
present (`plan --detailed-exitcode` only), 130 interrupted. A user error prints one
message and never a traceback; an unexpected one prints the traceback, since it is a bug.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from mlform import __version__
from mlform.cli.output import Output
from mlform.errors import ConfigInvalid, MlformError

Command = Callable[[argparse.Namespace, Output], int]

# command → the module in mlform.cli that registers it, in the order `--help` lists them.
COMMANDS = {
    "init": "inits",
    "validate": "plans",
    "plan": "plans",
    "apply": "plans",
    "runs": "runs",
    "experiments": "runs",
    "data": "data",
    "models": "models",
    "images": "images",
    "endpoints": "endpoints",
    "pipelines": "pipelines",
    "schedules": "schedules",
    "monitors": "monitors",
    "tokens": "tokens",
    "audit": "audit",
    "secrets": "secrets",
    "state": "state",
    "force-unlock": "state",
    "agent": "agent",
    "schema": "schemas",
    "studio": "studio",
}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given the arguments, only the module of the command they name is
    imported (a `plan` in CI starts without loading what `endpoints` needs)."""
    parser = argparse.ArgumentParser(
        prog="mlform",
        description="Machine learning as code: declare the workspace in YAML, then plan and apply.",
    )
    parser.add_argument("--version", action="version", version=f"mlform {__version__}")
    parser.add_argument(
        "-C",
        dest="directory",
        default=".",
        metavar="PATH",
        help="run as if started in PATH (the workspace is found there or above)",
    )
    parser.add_argument("--no-color", action="store_true", help="plain output, no colours")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = _command(argv)
    if wanted == "--version":
        modules = []  # argparse prints it and exits before a command is looked for
    else:
        modules = [COMMANDS[wanted]] if wanted else list(dict.fromkeys(COMMANDS.values()))
    for name in modules:
        importlib.import_module(f"mlform.cli.{name}").register(commands)
    return parser


def _command(argv: Sequence[str] | None) -> str | None:
    """The command `argv` names, if it plainly names one (else every command is loaded,
    so help and mistakes read as usual)."""
    args = list(sys.argv[1:] if argv is None else argv)
    while args[:1] == ["-C"] or args[:1] == ["--no-color"]:
        args = args[2:] if args[0] == "-C" else args[1:]
    if args[:1] == ["--version"]:
        return "--version"
    return args[0] if args and args[0] in COMMANDS else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    out = Output(color=not args.no_color)
    command: Command = args.run
    try:
        return command(args, out)
    except ConfigInvalid as err:
        out.problems(err.problems)
        return 1
    except MlformError as err:
        out.error(str(err))
        return 1
    except KeyboardInterrupt:
        out.error("interrupted")
        return 130
    except BrokenPipeError:
        return 1


def entry() -> None:  # pragma: no cover - the console script
    _exit(main())


def _exit(code: int) -> None:
    """End the process with `code`. The objects it made are frozen out of the cyclic
    garbage collector first: the interpreter's teardown otherwise searches the whole heap
    for cycles (paramiko, DuckDB, the state's records…), 60–80 ms after an apply's last
    word that change nothing. Every object is still freed, and the atexit handlers
    (connections, caches) still run; cycles among them are left to the kernel."""
    import gc

    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    _exit(main())
