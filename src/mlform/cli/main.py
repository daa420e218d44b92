"""`mlform`: parse the command line, run one command, map errors to exit codes.

Exit codes: 0 success (for `plan --detailed-exitcode`: no changes), 1 an error, 2 changes
present (`plan --detailed-exitcode` only), 130 interrupted. A user error prints one
message and never a traceback; an unexpected one prints the traceback, since it is a bug.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from mlform import __version__
from mlform.cli import (
    data,
    endpoints,
    images,
    inits,
    models,
    pipelines,
    plans,
    runs,
    schemas,
    state,
)
from mlform.cli.output import Output
from mlform.errors import ConfigInvalid, MlformError

Command = Callable[[argparse.Namespace, Output], int]


def build_parser() -> argparse.ArgumentParser:
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
    for module in (inits, plans, runs, data, models, images, endpoints, pipelines, state, schemas):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
