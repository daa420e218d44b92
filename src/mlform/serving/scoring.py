"""The scoring script contract: `init()` once, then `run(...)` per request.

A scoring script is a Python file, as Azure ML runs them: `init()` (optional) loads the
model from the folder `AZUREML_MODEL_DIR` (or `MLFORM_MODEL_DIR`) names, and `run()`
scores one request and returns something JSON can hold. What `run()` receives is what
Azure ML's inference server gives it:

    raw       run(raw_data): the request body as a str, as sent (`json.loads(raw_data)`
              is the script's business). The default, as on Azure ML.
    schema    run(**parameters): run() decorated with `@input_schema` of Azure's
              inference-schema package; the body is a JSON object, and each parameter
              of run() gets the value under its name (the decorator converts it).
    parsed    run(data): mlform's own mode, for a script that sets
              `MLFORM_PARSED_INPUT = True` at its top level: `{"data": x}`, `{"inputs":
              x}`, `{"instances": x}` give x; MLflow's `dataframe_split` and
              `dataframe_records` give a pandas DataFrame (`parse_payload`).

This module loads the script, calls run() as its mode says, and turns run()'s result
into JSON (`to_json`).

    ServingError             a problem this runtime reports on purpose
    ├── ScriptNotFound       the script file does not exist
    ├── ScriptFailed         importing the script failed, it has no run(), or init() raised
    ├── NotReady             a request came before init() succeeded
    ├── BadPayload           the request body is not one run() can be given
    ├── RunFailed            run() raised (the message names only the exception's type)
    └── BadResult            run() returned something JSON cannot hold

(`mlform.serving.app` adds BodyTooLarge and ClientGone, about reading request bodies.)

Messages of NotReady, BadPayload, RunFailed and BadResult are safe to send to clients:
they never carry the script's exception messages or tracebacks, which go to the log.
The one exception: run() may raise `BadPayload(message)` itself, for input it cannot
score, and the client gets a 400 with that message (as MLflow's server answers 400 to an
MlflowException a model raises for bad input); every other exception of run() is a 500.
"""

from __future__ import annotations

import datetime
import importlib
import importlib.machinery
import importlib.util
import inspect
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

# One fixed name, not the file's stem: a script called `json.py` or `pandas.py` must not
# replace (or be replaced by) a real module in sys.modules.
SCRIPT_MODULE = "mlform_scoring_script"

# Set at a script's top level, it asks for run(data) with the parsed payload.
PARSED_MARKER = "MLFORM_PARSED_INPUT"
# Set too, it says run() scores each row on its own, so requests may share a call.
BATCH_MARKER = "MLFORM_BATCHABLE"
RAW, SCHEMA, PARSED = "raw", "schema", "parsed"

# Python's parser recurses once per level of nesting: a deep enough body ends in a
# RecursionError. Bodies within this many levels always parse (the interpreter's limit is
# 1,000 frames, less what the server's own calls use); deeper ones may get a 400.
MAX_NESTING = 500

PAYLOAD_KEYS = ("data", "dataframe_split", "dataframe_records", "instances", "inputs")
_SPLIT_KEYS = frozenset({"columns", "data", "index"})


class ServingError(Exception):
    """A problem the serving runtime reports on purpose; `str(err)` says what and how."""


class ScriptNotFound(ServingError):
    pass


class ScriptFailed(ServingError):
    pass


class NotReady(ServingError):
    pass


class BadPayload(ServingError):
    pass


class RunFailed(ServingError):
    pass


class BadResult(ServingError):
    pass


class ScoringScript:
    """A scoring script, imported; `ready` once its `init()` has succeeded."""

    def __init__(self, path: Path, module: ModuleType) -> None:
        run = getattr(module, "run", None)
        if not callable(run):
            raise ScriptFailed(
                f"{path.name} defines no run(data) function; a scoring script needs one "
                "(and may define init() to load the model)"
            )
        self.path = path
        self.name = path.name
        self.module = module
        self.run: Callable[..., Any] = run
        self.input = input_mode(module, run)
        # run() scores each row on its own: concurrent requests may share a call (`batching`).
        self.batchable = self.input == PARSED and getattr(module, BATCH_MARKER, False) is True
        self._parameters = _parameters(run) if self.input == SCHEMA else ()
        self.ready = False
        # Told of each request scored: its data, run()'s result and the request id (data
        # capture). Called on the worker thread; it must return at once.
        self.capture: Callable[[Any, Any, str], None] | None = None

    def init(self) -> None:
        """Call the script's `init()`, if it has one; `ScriptFailed` if it raises."""
        init = getattr(self.module, "init", None)
        if init is not None:
            try:
                init()
            except Exception as err:
                raise ScriptFailed(
                    f"init() of {self.name} failed: {type(err).__name__}: {err}"
                ) from err
        self.ready = True

    def score(self, body: bytes, request_id: str = "") -> bytes:
        """One request: its body in (given to run() as `self.input` says), JSON of
        `run()`'s result out."""
        self.require_ready()
        if self.input == RAW:
            try:
                data: Any = body.decode("utf-8")
            except UnicodeDecodeError as err:
                raise BadPayload(f"the request body is not UTF-8 text: {err}") from err
            return self.answer(data, self.call(data), request_id)
        if self.input == SCHEMA:
            arguments = self._arguments(read_json(body))
            data = next(iter(arguments.values()), None)
            return self.answer(data, self.call(None, arguments), request_id)
        return self.score_parsed(read_json(body), request_id)

    def score_parsed(self, payload: Any, request_id: str = "") -> bytes:
        """One request of the parsed mode, its body already read as JSON."""
        self.require_ready()
        data = parse_payload(payload)
        return self.answer(data, self.call(data), request_id)

    def require_ready(self) -> None:
        if not self.ready:
            raise NotReady(f"{self.name} is not ready: its init() has not completed")

    def call(self, data: Any, arguments: dict[str, Any] | None = None) -> Any:
        """run(data), or run(**arguments) for a schema-decorated run(): its result, or
        RunFailed (BadPayload passes: the script's own word to the client, a 400)."""
        try:
            return self.run(**arguments) if arguments is not None else self.run(data)
        except BadPayload:
            raise
        except Exception as err:
            raise RunFailed(
                f"the scoring script raised {type(err).__name__}; see the deployment's log"
            ) from err

    def answer(self, data: Any, result: Any, request_id: str) -> bytes:
        """run()'s `result` for `data` as the JSON sent back, offered to data capture."""
        encoded = to_json(result)
        if self.capture is not None:
            self.capture(_captured(data) if self.input == RAW else data, result, request_id)
        return encoded

    def body_schema(self) -> dict[str, Any] | None:
        """The request body's JSON schema as run() takes it; None: the parsed payloads."""
        if self.input == RAW:
            return {"description": "any text: run() gets the body as it was sent"}
        if self.input == SCHEMA:
            return {
                "type": "object",
                "properties": {name: {} for name, _ in self._parameters},
                "required": [n for n, d in self._parameters if d is inspect.Parameter.empty],
            }
        return None

    def _arguments(self, payload: Any) -> dict[str, Any]:
        """run()'s keyword arguments from a JSON object, as Azure ML's inference server
        gives a schema-decorated run(): each parameter's value under its name."""
        names = ", ".join(f'"{name}"' for name, _ in self._parameters)
        if not isinstance(payload, dict):
            raise BadPayload(
                f"the request body must be a JSON object with the keys {names} (run()'s "
                f"parameters); got {_describe(payload)}"
            )
        arguments = {}
        for name, default in self._parameters:
            value = payload.get(name, default)
            if value is inspect.Parameter.empty:
                raise BadPayload(
                    f'the request body has no "{name}"; run() takes {names}, each under its own key'
                )
            arguments[name] = value
        return arguments


def input_mode(module: ModuleType, run: Callable[..., Any]) -> str:
    """How `run` takes its input: RAW, SCHEMA or PARSED (see the module's docstring)."""
    if getattr(module, PARSED_MARKER, False) is True:
        return PARSED
    # Only a script that imported inference-schema can have decorated run() with it.
    schema_util = sys.modules.get("inference_schema.schema_util")
    decorated = getattr(schema_util, "is_schema_decorated", None)
    if decorated is not None and decorated(run):
        return SCHEMA
    return RAW


def _parameters(run: Callable[..., Any]) -> tuple[tuple[str, Any], ...]:
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    signature = inspect.signature(run)
    return tuple((p.name, p.default) for p in signature.parameters.values() if p.kind in kinds)


def read_json(body: bytes) -> Any:
    """A request body parsed as JSON; BadPayload if it is not JSON."""
    try:
        return json.loads(body)
    except ValueError as err:
        raise BadPayload(f"the request body is not valid JSON: {err}") from err
    except RecursionError:
        raise BadPayload(_TOO_DEEP) from None


_TOO_DEEP = (
    "the request body nests JSON arrays and objects too deeply to parse; this server "
    f"accepts up to {MAX_NESTING} levels"
)


def _captured(text: str) -> Any:
    """What data capture keeps of a raw body: the rows of a payload mlform knows (drift
    reads them), else the text as sent."""
    try:
        return parse_payload(json.loads(text))
    except (ValueError, RecursionError, BadPayload):
        return text


def import_script(
    path: Path, model_dir: Path, azureml_model_dir: Path | None = None
) -> ScoringScript:
    """Import the script at `path` without calling its `init()`.

    `MLFORM_MODEL_DIR` names `model_dir` (the model's files) and `AZUREML_MODEL_DIR`
    names `azureml_model_dir` (the files as Azure ML mounts them, see
    `mlform.endpoints.mount`; default: `model_dir`), set before the import since scripts
    read them at top level. The script's folder goes first on `sys.path`, so it imports
    its sibling modules.
    """
    if not path.is_file():
        raise ScriptNotFound(f"scoring script {path} does not exist")
    path = path.absolute()
    os.environ["MLFORM_MODEL_DIR"] = str(model_dir.absolute())
    os.environ["AZUREML_MODEL_DIR"] = str((azureml_model_dir or model_dir).absolute())
    sys.path.insert(0, str(path.parent))
    loader = importlib.machinery.SourceFileLoader(SCRIPT_MODULE, str(path))
    spec = importlib.util.spec_from_file_location(SCRIPT_MODULE, path, loader=loader)
    if spec is None:  # pragma: no cover - a SourceFileLoader always gives a spec
        raise ScriptFailed(f"{path.name} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    # Registered before running, as an import would: dataclasses and pickle look it up.
    sys.modules[SCRIPT_MODULE] = module
    try:
        loader.exec_module(module)
    except Exception as err:
        del sys.modules[SCRIPT_MODULE]
        raise ScriptFailed(f"importing {path.name} failed: {type(err).__name__}: {err}") from err
    return ScoringScript(path, module)


def load_script(
    path: Path, model_dir: Path, azureml_model_dir: Path | None = None
) -> ScoringScript:
    """Import the script at `path` and call its `init()`: a script ready to score."""
    script = import_script(path, model_dir, azureml_model_dir)
    script.init()
    return script


def parse_payload(body: Any) -> Any:
    """What `run(data)` receives in the parsed mode, for a request body parsed as JSON.

    `{"data": x}`, `{"instances": x}` and `{"inputs": x}` give x as is. MLflow's
    `{"dataframe_split": {"columns", "data", "index"?}}` and `{"dataframe_records": [...]}`
    give a pandas DataFrame when pandas is installed, else a list of records (dicts).
    """
    if not isinstance(body, dict) or len(body) != 1:
        raise BadPayload(_expected(body))
    ((key, value),) = body.items()
    if key in ("data", "instances", "inputs"):
        return value
    if key == "dataframe_split":
        return _split_frame(value)
    if key == "dataframe_records":
        return _records_frame(value)
    raise BadPayload(_expected(body))


def _expected(body: Any) -> str:
    keys = ", ".join(f'"{key}"' for key in PAYLOAD_KEYS)
    got = _describe(body)
    return f"the request body must be a JSON object with exactly one of the keys {keys}; got {got}"


def _describe(body: Any) -> str:
    if isinstance(body, dict):
        if not body:
            return "an empty object"
        shown = [json.dumps(key) for key in list(body)[:5]]
        more = f" and {len(body) - 5} more" if len(body) > 5 else ""
        return f"keys {', '.join(shown)}{more}"
    kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(body), "a number")


def _split_frame(split: Any) -> Any:
    if (
        not isinstance(split, dict)
        or not isinstance(split.get("columns"), list)
        or not isinstance(split.get("data"), list)
        or not split.keys() <= _SPLIT_KEYS
    ):
        raise BadPayload(
            '"dataframe_split" must be an object with "columns" (an array of names), '
            '"data" (an array of rows) and optionally "index" (an array, one per row)'
        )
    columns: list[Any] = split["columns"]
    rows: list[Any] = split["data"]
    if not all(isinstance(c, str | int | float) and not isinstance(c, bool) for c in columns):
        raise BadPayload('"dataframe_split" columns must be names: strings or numbers')
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(columns):
            raise BadPayload(
                f'"dataframe_split" row {i} must be an array of {len(columns)} values, '
                "one per column"
            )
    index = split.get("index")
    if index is not None and (
        not isinstance(index, list)
        or len(index) != len(rows)
        or not all(isinstance(label, str | int | float) for label in index)
    ):
        raise BadPayload(
            f'"dataframe_split" index must be an array of {len(rows)} labels (strings or numbers)'
        )
    pandas = _pandas()
    if pandas is None:
        return [dict(zip(columns, row, strict=True)) for row in rows]
    return pandas.DataFrame(rows, columns=columns, index=index)


def _records_frame(records: Any) -> Any:
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise BadPayload('"dataframe_records" must be an array of objects, one per row')
    pandas = _pandas()
    if pandas is None:
        return records
    return pandas.DataFrame(records)


def _pandas() -> Any:
    """pandas, if installed; imported on the first DataFrame payload, not at startup."""
    try:
        return importlib.import_module("pandas")
    except ImportError:
        return None


def to_json(value: Any) -> bytes:
    """`run()`'s result as a JSON document.

    Lists, dicts, numbers, strings, booleans and None go straight to the C encoder;
    numpy arrays and scalars, pandas DataFrames (as records) and Series, tuples, sets and
    dates are converted on the way. A str result is sent as a JSON string, not parsed:
    an Azure script that returns `json.dumps(x)` gives clients that string, so what a
    client receives never depends on what a string happens to contain. Bytes are decoded
    as UTF-8 and sent the same way. NaN and infinities are written as Python's json module
    writes them (`NaN`, `Infinity`), as MLflow's server does.
    """
    if isinstance(value, bytes | bytearray):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as err:
            raise BadResult(_UNENCODABLE) from err
    try:
        return _ENCODER.encode(value).encode("ascii")
    except (TypeError, ValueError, RecursionError) as err:
        raise BadResult(_UNENCODABLE) from err


_UNENCODABLE = (
    "the scoring script's run() returned a value that cannot be encoded as JSON; return "
    "lists, dicts, numbers, strings, numpy arrays or pandas DataFrames"
)


def _plain(value: Any) -> Any:
    """json's fallback for what it cannot write itself; numpy and pandas by duck type."""
    if isinstance(value, set | frozenset):
        try:
            return sorted(value)
        except TypeError:
            return list(value)
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(value, pandas.DataFrame):
        return value.to_dict(orient="records")
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars, pandas Series
    if callable(tolist):
        return tolist()
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


# ensure_ascii keeps the output encodable whatever strings run() returns (even lone
# surrogates), and lets us encode to bytes without a UTF-8 pass.
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_plain)
