"""`python -m mlform.serving`: load a scoring script, then serve it until stopped.

Every option defaults to an environment variable, so a deployment's container sets
variables and runs the bare command. Exit codes: 2 a missing or wrong option (no script
file, no model folder), 3 the script failed to import or its init() raised. Stopped by
SIGTERM or SIGINT, the server finishes its requests, then ends by that signal (uvicorn
re-raises it, so a supervisor sees how it stopped). The log is the server's stderr: a
failing init() prints its traceback there, and the access log (on unless
`--no-access-log` or MLFORM_ACCESS_LOG=off) writes one bare JSON line per request.

Keys come only as sha256 digests (`--key-hashes`, MLFORM_KEY_HASHES): a plain key in a
container's environment would show in `docker inspect`. For the same reason a token
endpoint's keys (MLFORM_AUTH_MODE=token) come in a file (`--token-key-file`,
MLFORM_TOKEN_KEY_FILE): read at startup, and again whenever it changes, so a rotated key
ring applies from the next request without a restart (see `keyring`).

The values of the variables MLFORM_SECRET_VARIABLES names show as *** in the server's
output and in captured data (`masked`).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import uvicorn
import uvicorn.config
from starlette.applications import Starlette

from mlform.masking.variables import from_environment
from mlform.serving import secretenv
from mlform.serving.app import DEFAULT_QUEUE_WAIT, MAX_BODY, access_logger, create_app, logger
from mlform.serving.auth import parse_key_hashes
from mlform.serving.keyring import KeyRing, RingFile
from mlform.serving.masked import mask_output, mask_worker_output
from mlform.serving.options import port, positive
from mlform.serving.scoring import ScoringScript, ScriptFailed, ScriptNotFound, load_script

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
        "--azureml-model-dir",
        type=Path,
        default=env("AZUREML_MODEL_DIR"),
        metavar="DIR",
        help="the model as Azure ML mounts it, for scripts that read AZUREML_MODEL_DIR "
        "(default: $AZUREML_MODEL_DIR or the model folder)",
    )
    parser.add_argument(
        "--host",
        default=env("MLFORM_HOST", "127.0.0.1"),
        help="address to listen on (default: $MLFORM_HOST or 127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        type=port,
        default=env("MLFORM_PORT", "5001"),
        help="port to listen on (default: $MLFORM_PORT or 5001)",
    )
    parser.add_argument(
        "--name",
        default=env("MLFORM_DEPLOYMENT", "model"),
        help="the deployment's name, shown by GET / (default: $MLFORM_DEPLOYMENT or model)",
    )
    parser.add_argument(
        "--key-hashes",
        type=_key_hashes,
        default=env("MLFORM_KEY_HASHES", ""),
        metavar="HEX,…",
        help="sha256 hex digests of the keys POST /score accepts, comma-separated; "
        "none: no key needed (default: $MLFORM_KEY_HASHES)",
    )
    parser.add_argument(
        "--token-key-file",
        type=Path,
        default=env("MLFORM_TOKEN_KEY_FILE"),
        metavar="PATH",
        help="with MLFORM_AUTH_MODE=token: the file of the keys tokens are signed with, "
        "re-read when it changes (default: $MLFORM_TOKEN_KEY_FILE)",
    )
    parser.add_argument(
        "--request-timeout",
        type=positive(float),
        default=env("MLFORM_REQUEST_TIMEOUT"),
        metavar="SECONDS",
        help="answer 504 when run() takes longer (default: $MLFORM_REQUEST_TIMEOUT or none)",
    )
    parser.add_argument(
        "--max-concurrent",
        type=positive(int),
        default=env("MLFORM_MAX_CONCURRENT"),
        metavar="N",
        help="answer 429 beyond N requests in flight (default: $MLFORM_MAX_CONCURRENT or none)",
    )
    parser.add_argument(
        "--max-queue-wait",
        type=non_negative,
        default=env("MLFORM_MAX_QUEUE_WAIT", f"{DEFAULT_QUEUE_WAIT:g}"),
        metavar="SECONDS",
        help="how long a request beyond --max-concurrent waits for a slot before a 429 "
        f"(default: $MLFORM_MAX_QUEUE_WAIT or {DEFAULT_QUEUE_WAIT:g})",
    )
    parser.add_argument(
        "--max-body",
        type=positive(int),
        default=env("MLFORM_MAX_BODY", str(MAX_BODY)),
        metavar="BYTES",
        help=f"answer 413 to larger request bodies (default: $MLFORM_MAX_BODY or {MAX_BODY})",
    )
    parser.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one JSON line per POST /score on stderr (default: $MLFORM_ACCESS_LOG or on)",
    )
    parser.add_argument(
        "--workers",
        type=positive(int),
        default=env("MLFORM_WORKERS", "1"),
        metavar="N",
        help="server processes sharing the port, each with the script loaded "
        "(a deployment's instance_count; default: $MLFORM_WORKERS or 1)",
    )
    return parser


def non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0 or more)")
    return value


def _key_hashes(text: str) -> tuple[str, ...]:
    try:
        return parse_key_hashes(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


_SWITCH = {"1": True, "true": True, "yes": True, "on": True}
_SWITCH |= {"0": False, "false": False, "no": False, "off": False}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.script is None:
        return _fail(2, "no scoring script: pass --script PATH or set MLFORM_SCORING_SCRIPT")
    if args.model_dir is None:
        return _fail(2, "no model folder: pass --model-dir DIR or set MLFORM_MODEL_DIR")
    if not args.model_dir.is_dir():
        return _fail(2, f"model folder {args.model_dir} does not exist")
    if args.access_log is None:
        switch = os.environ.get("MLFORM_ACCESS_LOG", "on")
        args.access_log = _SWITCH.get(switch.strip().lower())
        if args.access_log is None:
            return _fail(2, f"MLFORM_ACCESS_LOG is {switch!r}; set it to on or off")
    try:
        secretenv.load()  # a container's secret variables, before anything reads them
        _token_keys(args)
    except ValueError as err:
        return _fail(2, str(err))
    # before the script is imported: what it prints from then on is masked
    mask_output()
    if args.workers > 1:
        return _serve_workers(args)
    try:
        script = load_script(args.script, args.model_dir, args.azureml_model_dir)
    except ScriptNotFound as err:
        return _fail(2, str(err))
    except ScriptFailed as err:
        code = _fail(3, str(err))
        if err.__cause__ is not None:
            traceback.print_exception(err.__cause__, file=sys.stderr)
        return code
    uvicorn.run(
        _app(script, args),
        host=args.host,
        port=args.port,
        # httptools and uvloop where installed (mlform and local deployments have them;
        # images only starlette and uvicorn, so h11 and asyncio there).
        http="auto",
        loop="auto",
        log_level="info",
        log_config=_log_config(),
        access_log=False,
    )
    return 0


def _app(script: ScoringScript, args: argparse.Namespace) -> Starlette:
    capture_dir = os.environ.get("MLFORM_CAPTURE_DIR")
    if capture_dir:
        from mlform.serving.capture import Capture

        rate = float(os.environ.get("MLFORM_CAPTURE_RATE", "1"))
        endpoint = os.environ.get("MLFORM_ENDPOINT", args.name)
        masker = from_environment(os.environ)
        capture = Capture(Path(capture_dir), endpoint, args.name, sampling_rate=rate, masker=masker)
        script.capture = capture.offer
    return create_app(
        script,
        name=args.name,
        key_hashes=args.key_hashes,
        request_timeout=args.request_timeout,
        max_concurrent=args.max_concurrent,
        max_queue_wait=args.max_queue_wait,
        max_body=args.max_body,
        access_log=args.access_log,
        token_keys=_token_keys(args),
        endpoint=os.environ.get("MLFORM_ENDPOINT", ""),
    )


def _token_keys(args: argparse.Namespace) -> Callable[[], KeyRing] | None:
    """The keys tokens are signed with, re-read when their file changes, if this server
    takes tokens; ValueError if the file is missing or holds none."""
    if os.environ.get("MLFORM_AUTH_MODE", "key") not in ("token", "aml_token"):
        return None
    if args.token_key_file is None:
        raise ValueError(
            "MLFORM_AUTH_MODE is token but no token key is given: pass --token-key-file PATH "
            "or set MLFORM_TOKEN_KEY_FILE"
        )
    return RingFile(args.token_key_file).ring


def _serve_workers(args: argparse.Namespace) -> int:
    """Several processes on one port: uvicorn starts each, and each builds the app from
    the environment (`worker_app`), so every option is passed on through it."""
    os.environ.update(
        {
            "MLFORM_SCORING_SCRIPT": str(args.script.absolute()),
            "MLFORM_MODEL_DIR": str(args.model_dir.absolute()),
            "AZUREML_MODEL_DIR": str((args.azureml_model_dir or args.model_dir).absolute()),
            "MLFORM_DEPLOYMENT": args.name,
            "MLFORM_KEY_HASHES": ",".join(args.key_hashes),
            "MLFORM_MAX_BODY": str(args.max_body),
            "MLFORM_MAX_QUEUE_WAIT": f"{args.max_queue_wait:g}",
            "MLFORM_ACCESS_LOG": "on" if args.access_log else "off",
        }
    )
    if args.token_key_file is not None:
        os.environ["MLFORM_TOKEN_KEY_FILE"] = str(args.token_key_file.absolute())
    for key, value in (
        ("MLFORM_REQUEST_TIMEOUT", args.request_timeout),
        ("MLFORM_MAX_CONCURRENT", args.max_concurrent),
    ):
        if value is not None:
            os.environ[key] = str(value)
    uvicorn.run(
        f"{PROG}.__main__:worker_app",
        factory=True,
        workers=args.workers,
        host=args.host,
        port=args.port,
        http="auto",
        loop="auto",
        log_level="info",
        log_config=_log_config(),
        access_log=False,
    )
    return 0


def worker_app() -> Starlette:
    """One worker's app (uvicorn's factory), from the options `_serve_workers` passed on;
    a failing init() ends the worker with its traceback in the log."""
    args = build_parser().parse_args([])
    args.access_log = os.environ.get("MLFORM_ACCESS_LOG") == "on"
    until_shutdown = mask_worker_output()  # before the script is imported
    return until_shutdown(
        _app(load_script(args.script, args.model_dir, args.azureml_model_dir), args)
    )


def _fail(code: int, message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)
    return code


def _log_config() -> dict[str, Any]:
    # uvicorn's own config, with the scoring script's errors on the same stderr handler.
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["loggers"][logger.name] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    # Bare JSON lines, without uvicorn's "INFO:" prefix, so log collectors parse them.
    config["formatters"]["json_lines"] = {"format": "%(message)s"}
    config["handlers"]["json_lines"] = {
        "formatter": "json_lines",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    config["loggers"][access_logger.name] = {
        "handlers": ["json_lines"],
        "level": "INFO",
        "propagate": False,
    }
    return config


if __name__ == "__main__":
    sys.exit(main())
