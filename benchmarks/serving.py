"""The scoring server against `mlflow models serve` and a bare Starlette app, in one run.

Targets (issue acceptance), for one-row requests to a scikit-learn model:
- throughput: requests per second at concurrency 8 ≥ 2.5 × `mlflow models serve`;
- latency: the 99th percentile at concurrency 8 at most 10 ms;
- overhead: within 25 % of a bare Starlette app calling the same model, that is
  mlform's requests/s ≥ 0.75 × the bare app's.

The model is a LogisticRegression fitted on examples/iris/data/iris.csv, saved as
`model.pkl` (for mlform's scoring script and the bare app) and as an MLflow model folder
(`mlflow.sklearn.save_model`), in benchmarks/.work/serving/. Every server is a process of
its own on a free port, one worker, uvicorn with h11 and the asyncio loop (MLflow's
uvicorn picks these itself: httptools and uvloop are not installed):

- mlform: `python -m mlform.serving --script score.py --model-dir D`, as a deployment
  runs it, so with its JSON access log on (the default), written to a file;
- MLflow: `mlflow models serve -m D --env-manager local` with its default worker count
  (1), its uvicorn access log on (uvicorn's default), written to a file;
- bare: uvicorn running a Starlette app with one POST route that reads the body, then in
  the thread pool (one hop, as mlform makes) json.loads, a NumPy array, predict and
  JSONResponse; no access log at all.

The scoring script (and the bare app) turn the rows into a NumPy array and predict, as
mlform's `run(data)` contract allows; MLflow's pyfunc server always builds a pandas
DataFrame from `dataframe_split` first. That conversion is part of what is compared: it
is most of MLflow's cost per request on a model this small.

wrk (`-t2 -c8 --latency`, 10 s; `--quick` 3 s) loads one server at a time, after 2 s of
warm-up; every side is started afresh for each measurement, the sides take turns, three
rounds (`--quick`: one), and medians are compared. A fourth side, mlform with
`--no-access-log`, is measured alongside for information: it shows what the access log
costs, and is not judged. The load generator shares the machine's cores with the server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peers import WORK, WorkerFailed, worker

describe = "requests/s and p99 at concurrency 8 vs `mlflow models serve` and bare Starlette"

HERE = Path(__file__).resolve()
IRIS = HERE.parent.parent / "examples" / "iris" / "data" / "iris.csv"
BASE = WORK / "serving"

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ROW = [5.1, 3.5, 1.4, 0.2]
EXPECTED = ["setosa"]

CONNECTIONS, THREADS = 8, 2
WARM_UP = 2
# (seconds wrk measures, rounds of every side)
FULL = (10, 3)
QUICK = (3, 1)

TARGET_RATIO = 2.5
TARGET_P99 = 0.010
TARGET_BARE = 0.75

READY_WITHIN = 90.0

SCORE_SCRIPT = """\
import os
import pickle
from pathlib import Path

import numpy as np

MLFORM_PARSED_INPUT = True  # run() gets the payload's rows, not the body's text
model = None


def init():
    global model
    with (Path(os.environ["MLFORM_MODEL_DIR"]) / "model.pkl").open("rb") as handle:
        model = pickle.load(handle)


def run(data):
    return model.predict(np.asarray(data, dtype=float)).tolist()
"""

BARE_APP = """\
import json
import os
import pickle
from pathlib import Path

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.routing import Route

with (Path(os.environ["BARE_MODEL_DIR"]) / "model.pkl").open("rb") as handle:
    model = pickle.load(handle)


def predict(body):
    rows = json.loads(body)["data"]
    return JSONResponse(model.predict(np.asarray(rows, dtype=float)).tolist())


async def score(request):
    return await run_in_threadpool(predict, await request.body())


async def ready(request):
    return JSONResponse({"status": "ready"})


app = Starlette(
    routes=[Route("/score", score, methods=["POST"]), Route("/ready", ready, methods=["GET"])]
)
"""

WRK_SCRIPT = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = {body}
"""


class ServerFailed(Exception):
    pass


@dataclass(frozen=True)
class Side:
    name: str
    command: Callable[[int], list[str]]
    env: dict[str, str]
    ready: str  # GET path answering 200 once the model is loaded
    score: str  # POST path
    payload: dict[str, Any]
    answer: Callable[[Any], Any]  # the predictions, from the response's JSON
    judged: bool = True


@dataclass(frozen=True)
class Load:
    rps: float
    p50: float
    p99: float
    requests: int


def run(*, quick: bool) -> bool:
    seconds, rounds = QUICK if quick else FULL
    busy = os.getloadavg()[0]  # other work on the machine competes with server and wrk
    try:
        wrk = _wrk()
        models = _prepare()
        sides = _sides(models)
        loads: dict[str, list[Load]] = {side.name: [] for side in sides}
        for round_ in range(rounds):
            turn = round_ % len(sides)  # who goes first changes with each round
            for side in sides[turn:] + sides[:turn]:
                label = f"{re.sub(r'[^a-z]+', '-', side.name.lower())}-{round_}"
                loads[side.name].append(_measure(wrk, side, seconds, label))
    except (ServerFailed, WorkerFailed, subprocess.CalledProcessError) as err:
        print(f"   a side failed, so there is no figure. {err}")
        return False

    ours, peer, bare, quiet = (_medians(loads[side.name]) for side in sides)
    ratio, share = ours.rps / peer.rps, ours.rps / bare.rps
    rows = [
        (
            f"requests/s at concurrency {CONNECTIONS}",
            f"{ours.rps:,.0f}/s",
            f"{peer.rps:,.0f}/s MLflow",
            f"{ratio:.2f}×",
            f"≥ {TARGET_RATIO:g}×",
            ratio >= TARGET_RATIO,
        ),
        (
            f"p99 latency at concurrency {CONNECTIONS}",
            _ms(ours.p99),
            f"{_ms(peer.p99)} MLflow",
            "",
            f"≤ {_ms(TARGET_P99)}",
            ours.p99 <= TARGET_P99,
        ),
        (
            "vs bare Starlette (requests/s)",
            f"{ours.rps:,.0f}/s",
            f"{bare.rps:,.0f}/s bare",
            f"{share:.2f}×",
            f"≥ {TARGET_BARE:g}×",
            share >= TARGET_BARE,
        ),
    ]
    print(
        f"   model: LogisticRegression on iris (scikit-learn {models['sklearn']}), one row a "
        f"request; MLflow {models['mlflow']}"
    )
    print(
        f"   load: wrk -t{THREADS} -c{CONNECTIONS} -d{seconds}s --latency after {WARM_UP} s "
        f"warm-up; {rounds} round{'s' if rounds > 1 else ''} a side, taking turns, medians; "
        f"{os.cpu_count()} cores shared by server and wrk (load average {busy:.1f} before)"
    )
    ok = _table(rows)
    print(f"   {'':<3}{'side':<30} {'requests/s':>11} {'p50':>9} {'p99':>9}  runs (requests/s)")
    for side, med in zip(sides, (ours, peer, bare, quiet), strict=True):
        runs = ", ".join(f"{load.rps:,.0f}" for load in loads[side.name])
        note = "" if side.judged else "  (information)"
        print(
            f"   {'':<3}{side.name:<30} {med.rps:>11,.0f} {_ms(med.p50):>9} "
            f"{_ms(med.p99):>9}  {runs}{note}"
        )
    print(
        "   every server: one worker, uvicorn h11 + asyncio; mlform with its JSON access log "
        "on (the default), MLflow with uvicorn's access log on (its default), bare with none;"
        f" logs in {BASE.relative_to(HERE.parent.parent)}/logs"
    )
    return ok


# -- the servers -------------------------------------------------------------------------


def _prepare() -> dict[str, Any]:
    """The model, both ways, and the mlform and bare sides' code, made afresh."""
    if BASE.exists():
        shutil.rmtree(BASE)
    (BASE / "logs").mkdir(parents=True)
    (BASE / "score.py").write_text(SCORE_SCRIPT, encoding="utf-8")
    (BASE / "bare_app.py").write_text(BARE_APP, encoding="utf-8")
    quiet = {"PYTHONWARNINGS": "ignore", "MLFLOW_LOGGING_LEVEL": "ERROR"}
    return worker(HERE, "model", str(IRIS), str(BASE), env=quiet)


def _sides(models: dict[str, Any]) -> list[Side]:
    python = sys.executable
    split = {"dataframe_split": {"columns": COLUMNS, "data": [ROW]}}
    # `mlflow models serve` starts `uvicorn` by name: the one next to this interpreter.
    path = f"{Path(python).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    host = ["--host", "127.0.0.1"]

    def mlform(*extra: str) -> Callable[[int], list[str]]:
        script = ["--script", str(BASE / "score.py"), "--model-dir", str(BASE)]
        return lambda port: [
            *(python, "-m", "mlform.serving", *script, *host, "--port", str(port), *extra)
        ]

    def mlflow(port: int) -> list[str]:
        model = ["-m", models["mlflow_model"], "--env-manager", "local"]
        return [python, "-m", "mlflow", "models", "serve", *model, *host, "-p", str(port)]

    def bare(port: int) -> list[str]:
        settings = ["--http", "h11", "--loop", "asyncio", "--workers", "1", "--no-access-log"]
        return [
            *(python, "-m", "uvicorn", "bare_app:app", "--app-dir", str(BASE)),
            *(*host, "--port", str(port), *settings),
        ]

    default_log = {"MLFORM_ACCESS_LOG": "on"}
    return [
        Side("mlform", mlform(), default_log, "/ready", "/score", {"data": [ROW]}, _same),
        Side(
            "MLflow",
            mlflow,
            {"PATH": path},
            "/ping",
            "/invocations",
            split,
            lambda body: body["predictions"],
        ),
        Side(
            "bare Starlette",
            bare,
            {"BARE_MODEL_DIR": str(BASE)},
            "/ready",
            "/score",
            {"data": [ROW]},
            _same,
        ),
        Side(
            "mlform --no-access-log",
            mlform("--no-access-log"),
            {},
            "/ready",
            "/score",
            {"data": [ROW]},
            _same,
            judged=False,
        ),
    ]


def _same(body: Any) -> Any:
    return body


@contextmanager
def _serving(side: Side, log: Path) -> Iterator[str]:
    """`side` started on a free port and answering; its base URL. Stopped on leaving."""
    port = _free_port()
    env = {**os.environ, **side.env}
    env.pop("MLFLOW_MODELS_WORKERS", None)  # MLflow's default worker count, whatever is set
    with log.open("wb") as output:
        # Its own session: `mlflow models serve` runs uvicorn as a child, stopped with it.
        process = subprocess.Popen(
            side.command(port),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(process, url + side.ready, log)
        got = side.answer(_post(url + side.score, side.payload))
        if got != EXPECTED:
            raise ServerFailed(f"{side.name} answered {got!r} for {ROW}, not {EXPECTED!r}")
        yield url
    finally:
        _stop(process)


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerFailed(f"the server exited {process.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise ServerFailed(f"{url} did not answer 200 within {READY_WITHIN:g} s:\n{_tail(log)}")


def _post(url: str, payload: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url, json.dumps(payload).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    with suppress(ProcessLookupError):  # whatever it started and left behind
        os.killpg(process.pid, signal.SIGKILL)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").strip().splitlines()[-15:])


# -- the load ----------------------------------------------------------------------------


def _wrk() -> str:
    """The wrk binary; installed with apt-get when missing and we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise ServerFailed("wrk is not installed: run `sudo apt-get install -y wrk`, then again")
    print("   installing wrk with apt-get (first run only) …", flush=True)
    apt = ["apt-get", "install", "-y", "-q", "wrk"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(apt, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=True)
        subprocess.run(apt, env=env, capture_output=True, check=True)
    found = shutil.which("wrk")
    if not found:
        raise ServerFailed("apt-get installed wrk, but it is not on PATH")
    return found


def _measure(wrk: str, side: Side, seconds: int, label: str) -> Load:
    lua = BASE / f"{label}.lua"
    lua.write_text(WRK_SCRIPT.format(body=_lua_string(json.dumps(side.payload))), "utf-8")
    with _serving(side, BASE / "logs" / f"{label}.log") as url:
        _load(wrk, url + side.score, lua, WARM_UP)
        return _load(wrk, url + side.score, lua, seconds)


def _load(wrk: str, url: str, lua: Path, seconds: int) -> Load:
    command = [wrk, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    done = subprocess.run([*command, "-s", str(lua), url], capture_output=True, text=True)
    out = done.stdout
    if done.returncode != 0:
        raise ServerFailed(f"wrk exited {done.returncode}:\n{out}{done.stderr}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if bad or errors:
        raise ServerFailed(f"wrk saw failed requests from {url}:\n{out}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.MULTILINE)
    if not (rps and count and p50 and p99):
        raise ServerFailed(f"cannot read wrk's output:\n{out}")
    return Load(float(rps[1]), _seconds(*p50.groups()), _seconds(*p99.groups()), int(count[1]))


def _seconds(value: str, unit: str) -> float:
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _medians(loads: list[Load]) -> Load:
    return Load(
        statistics.median(load.rps for load in loads),
        statistics.median(load.p50 for load in loads),
        statistics.median(load.p99 for load in loads),
        sum(load.requests for load in loads),
    )


# -- the report --------------------------------------------------------------------------


def _table(rows: list[tuple[str, str, str, str, str, bool]]) -> bool:
    width = max(len(row[0]) for row in rows)
    print(f"   {'':<{width}}  {'mlform':>10}  {'against':>18}  {'ratio':>6}  target")
    for what, ours, theirs, ratio, target, met in rows:
        verdict = "PASS" if met else "FAIL"
        print(f"   {what:<{width}}  {ours:>10}  {theirs:>18}  {ratio:>6}  {target:<8} {verdict}")
    return all(row[5] for row in rows)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


# -- the script that makes the model -----------------------------------------------------


def _model(csv: str, folder: str) -> dict[str, Any]:
    """Fit the classifier; save it as model.pkl and as the MLflow model folder `mlflow/`."""
    import pickle

    import mlflow
    import mlflow.sklearn
    import pandas as pd
    import sklearn
    from sklearn.linear_model import LogisticRegression

    frame = pd.read_csv(csv)
    # Fitted on the values, in COLUMNS order: the scoring script and the bare app pass
    # rows of numbers, as a client sends them; MLflow makes a DataFrame of its own.
    model = LogisticRegression(max_iter=1000).fit(frame[COLUMNS].to_numpy(), frame["species"])
    with (Path(folder) / "model.pkl").open("wb") as handle:
        pickle.dump(model, handle)
    saved = Path(folder) / "mlflow"
    # Requirements given, not inferred: inferring loads the model in yet another process,
    # and `--env-manager local` never reads them.
    requirements = [f"scikit-learn=={sklearn.__version__}"]
    mlflow.sklearn.save_model(model, str(saved), pip_requirements=requirements)
    return {
        "sklearn": sklearn.__version__,
        "mlflow": mlflow.__version__,
        "mlflow_model": str(saved),
        "accuracy": float(model.score(frame[COLUMNS].to_numpy(), frame["species"])),
    }


WORKERS = {"model": _model}


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        print(json.dumps(WORKERS[sys.argv[2]](*sys.argv[3:])))
    else:
        sys.exit(0 if run(quick="--quick" in sys.argv) else 1)
