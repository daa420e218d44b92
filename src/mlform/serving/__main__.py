"""`python -m mlform.serving`: load a scoring script, then serve it until stopped.

Every option defaults to an environment variable, so a deployment's container sets
variables and runs the bare command. Exit codes: 2 a missing or wrong option (no script
file, no model folder), 3 the script failed to import or its init() raised. Stopped by
SIGTERM or SIGINT, the server finishes its requests, then ends by that signal (uvicorn
re-raises it, so a supervisor sees how it stopped). The log is the server's stderr: a
failing init() prints its traceback there.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn
import uvicorn.config

from mlform.serving.app import create_app, logger
from mlform.serving.scoring import ScriptFailed, ScriptNotFound, load_script

PROG = "mlform.serving"


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog=f"python -m {PROG}", description="Serve a scoring script (init/run) over HTTP."
    )
    parser.add_argument(
        "--script",
        type=Path,
        default=env("MLFORM_SCORING_SCRIPT"),
        metavar="PATH",
        help="the scoring script (default: $MLFORM_SCORING_SCRIPT)",
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=env("MLFORM_MODEL_DIR"),
        metavar="DIR",
        help="the folder init() loads the model from (default: $MLFORM_MODEL_DIR)",
    )
    parser.add_argument(
        "--host",
        default=env("MLFORM_HOST", "127.0.0.1"),
        help="address to listen on (default: $MLFORM_HOST or 127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=env("MLFORM_PORT", "5001"),
        help="port to listen on (default: $MLFORM_PORT or 5001)",
    )
    parser.add_argument(
        "--name",
        default=env("MLFORM_DEPLOYMENT", "model"),
        help="the deployment's name, shown by GET / (default: $MLFORM_DEPLOYMENT or model)",
    )
    return parser


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)")
    return int(text)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.script is None:
        return _fail(2, "no scoring script: pass --script PATH or set MLFORM_SCORING_SCRIPT")
    if args.model_dir is None:
        return _fail(2, "no model folder: pass --model-dir DIR or set MLFORM_MODEL_DIR")
    if not args.model_dir.is_dir():
        return _fail(2, f"model folder {args.model_dir} does not exist")
    try:
        script = load_script(args.script, args.model_dir)
    except ScriptNotFound as err:
        return _fail(2, str(err))
    except ScriptFailed as err:
        code = _fail(3, str(err))
        if err.__cause__ is not None:
            traceback.print_exception(err.__cause__, file=sys.stderr)
        return code
    uvicorn.run(
        create_app(script, name=args.name),
        host=args.host,
        port=args.port,
        http="h11",
        loop="asyncio",
        log_level="info",
        log_config=_log_config(),
        access_log=False,
    )
    return 0


def _fail(code: int, message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)
    return code


def _log_config() -> dict[str, Any]:
    # uvicorn's own config, with the scoring script's errors on the same stderr handler.
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["loggers"][logger.name] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


if __name__ == "__main__":
    sys.exit(main())
