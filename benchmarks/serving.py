"""The example's endpoint against `mlflow models serve`, same model, same payload, one run.

What is compared, for one-row `dataframe_split` requests to the iris classifier:

- mlform, at the deployment's own address: `python -m mlform.serving` running the
  example's own scoring script (examples/iris/score/score.py, which builds a pandas
  DataFrame and predicts on it, as MLflow does) with key auth on and its JSON access log
  on, as a deployment runs it;
- mlform, at the endpoint's address: the router (`python -m mlform.serving.router`) in
  front of that same deployment, the address users call (`mlform endpoints invoke`);
- mlform, a copy of the script without `MLFORM_BATCHABLE` (information: the example's
  script asks for concurrent requests to share run() calls, and this shows what that
  adds); the deployment's /metrics give the requests answered per run() call;
- MLflow: `mlflow models serve --env-manager local` of the same fitted model (saved with
  `mlflow.sklearn.save_model`), with its access log on (its default) and no auth (it has
  none). MLflow's pyfunc server builds a DataFrame from `dataframe_split` and predicts.

Both servers run the same number of worker processes (1, as the example's deployment;
`MLFORM_BENCH_WORKERS=2` for two), on uvicorn with whatever it picks in this environment
(the same packages for both: httptools and uvloop, which mlform depends on). Targets:

- throughput: the endpoint's (router's) requests/s at concurrency 8 ≥ 2 × MLflow's;
- latency: the endpoint's 99th percentile at concurrency 8 ≤ 15 ms;
- the router costs little: the endpoint's requests/s ≥ 0.9 × the deployment's own.

Method: every round starts each server afresh (cold), sends 2 s of load that is not
counted (warm-up), then measures with `wrk -t2 -c8 --latency` for 10 s (`--quick`: 3 s).
mlform's two addresses are measured on the same processes one after the other, in an
order that alternates by round; MLflow and mlform take turns going first. Five rounds
(`--quick`: one); medians are compared. Every response is checked to be 200 (wrk counts
non-2xx), and one answer per side is checked to be the right class. wrk shares the
machine's cores with the servers. Beside requests/s and latency, each side's CPU time per
request (all its processes, the router's included for the endpoint) is printed: on a
busy machine it moves less than requests/s do.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from peers import WORK, WorkerFailed, worker

describe = "the example's endpoint vs `mlflow models serve`: requests/s and p99 at concurrency 8"

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
IRIS = ROOT / "examples" / "iris" / "data" / "iris.csv"
SCRIPT = ROOT / "examples" / "iris" / "score" / "score.py"
BASE = WORK / "serving"
SINGLE = BASE / "unbatched" / "score.py"
UNBATCHED = "mlform, deployment, unbatched"

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ROW = [5.1, 3.5, 1.4, 0.2]
EXPECTED = ["setosa"]
PAYLOAD = {"dataframe_split": {"columns": COLUMNS, "data": [ROW]}}

CONNECTIONS, THREADS = 8, 2
WORKERS = int(os.environ.get("MLFORM_BENCH_WORKERS", "1"))
WARM_UP = 2
# (seconds wrk measures, rounds)
FULL = (10, 5)
QUICK = (3, 1)

TARGET_RATIO = 2.0
TARGET_P99 = 0.015
TARGET_ROUTER = 0.9

READY_WITHIN = 90.0

WRK_SCRIPT = """\
wrk.method = "POST"
wrk.body = {body}
{headers}
"""


class ServerFailed(Exception):
    pass


@dataclass(frozen=True)
class Load:
    rps: float
    p50: float
    p99: float
    requests: int
    cpu: float  # CPU seconds per request of the server's processes (and the router's)
    per_call: float | None = None  # requests per run() call, where the script batches


@dataclass(frozen=True)
class Address:
    """Where wrk sends its load, with what headers."""

    name: str
    url: str
    headers: dict[str, str]
    sessions: tuple[int, ...]  # the process sessions serving it, for their CPU time
    metrics: str | None = None  # the deployment's /metrics, for its run() calls


def run(*, quick: bool) -> bool:
    seconds, rounds = QUICK if quick else FULL
    busy = os.getloadavg()[0]
    names = ("mlform, deployment", "mlform, endpoint (router)", "MLflow", UNBATCHED)
    loads: dict[str, list[Load]] = {name: [] for name in names}
    try:
        wrk = _wrk()
        models = _prepare()
        key = secrets.token_urlsafe(32)
        for round_ in range(rounds):
            sides = [_mlform, _mlflow] if round_ % 2 == 0 else [_mlflow, _mlform]
            for side in sides:
                with side(models, key, round_) as addresses:
                    if round_ % 2:
                        addresses.reverse()
                    for address in addresses:
                        loads[address.name].append(
                            _measure(wrk, address, seconds, f"{_slug(address.name)}-{round_}")
                        )
    except (ServerFailed, WorkerFailed, subprocess.CalledProcessError) as err:
        print(f"   a side failed, so there is no figure. {err}")
        return False

    direct, routed, peer, single = (_medians(loads[name]) for name in names)
    ratio, ratio_direct = routed.rps / peer.rps, direct.rps / peer.rps
    share = routed.rps / direct.rps
    print(
        f"   model: LogisticRegression on iris (scikit-learn {models['sklearn']}, pandas "
        f"{models['pandas']}), one-row dataframe_split; MLflow {models['mlflow']}; "
        f"uvicorn {models['uvicorn']} ({models['http']}, {models['loop']})"
    )
    print(
        f"   load: wrk -t{THREADS} -c{CONNECTIONS} -d{seconds}s --latency after {WARM_UP} s "
        f"warm-up, servers started afresh each round; {rounds} round{'s' if rounds > 1 else ''}"
        f", medians; {WORKERS} worker{'s' if WORKERS > 1 else ''} a server; "
        f"{os.cpu_count()} cores shared by servers, router and wrk "
        f"(load average {busy:.1f} before, {os.getloadavg()[0]:.1f} after)"
    )
    rows = [
        (
            "endpoint requests/s vs MLflow",
            f"{routed.rps:,.0f}/s",
            f"{peer.rps:,.0f}/s",
            _times(ratio),
            f"≥ {TARGET_RATIO:g}×",
            ratio >= TARGET_RATIO,
        ),
        (
            "endpoint p99 latency",
            _ms(routed.p99),
            _ms(peer.p99),
            "",
            f"≤ {_ms(TARGET_P99)}",
            routed.p99 <= TARGET_P99,
        ),
        (
            "endpoint vs deployment requests/s",
            f"{routed.rps:,.0f}/s",
            f"{direct.rps:,.0f}/s",
            _times(share),
            f"≥ {TARGET_ROUTER:g}×",
            share >= TARGET_ROUTER,
        ),
    ]
    ok = _table(rows)
    print(
        f"   deployment's own address vs MLflow: {_times(ratio_direct)}; the same script "
        f"without MLFORM_BATCHABLE: {_times(single.rps / peer.rps)} (information; users call "
        "the endpoint)"
    )
    print(
        f"   {'':<3}{'address':<28} {'requests/s':>11} {'p50':>9} {'p99':>9} {'CPU/req':>9}"
        f" {'req/call':>9}  runs (requests/s)"
    )
    for name, med in zip(names, (direct, routed, peer, single), strict=True):
        runs = ", ".join(f"{load.rps:,.0f}" for load in loads[name])
        per_call = "" if med.per_call is None else f"{med.per_call:.1f}"
        print(
            f"   {'':<3}{name:<28} {med.rps:>11,.0f} {_ms(med.p50):>9} {_ms(med.p99):>9} "
            f"{_ms(med.cpu):>9} {per_call:>9}  {runs}"
        )
    print(
        "   CPU/req: CPU time of the server's processes (with the router's, for the endpoint) "
        "per request answered; req/call: requests the deployment answered per run() call"
    )
    print(
        "   mlform with key auth and its JSON access log on, MLflow with its access log on "
        f"(both defaults); logs in {BASE.relative_to(ROOT)}/logs"
    )
    return ok


def _times(ratio: float) -> str:
    """Two decimals, rounded down: a ratio just under a target never reads as meeting it."""
    return f"{math.floor(ratio * 100) / 100:.2f}×"


def _slug(name: str) -> str:
    return re.sub(r"[^a-z]+", "-", name.lower()).strip("-")


# -- the servers -------------------------------------------------------------------------


def _prepare() -> dict[str, Any]:
    """The model, as model.pkl (the scoring script's) and as an MLflow model folder; the
    example's script, and a copy that does not ask for batching."""
    if BASE.exists():
        shutil.rmtree(BASE)
    (BASE / "logs").mkdir(parents=True)
    marker = "MLFORM_BATCHABLE = True\n"
    code = SCRIPT.read_text(encoding="utf-8")
    if marker not in code:
        raise ServerFailed(f"{SCRIPT.relative_to(ROOT)} no longer sets {marker.strip()}")
    SINGLE.parent.mkdir()
    SINGLE.write_text(code.replace(marker, ""), encoding="utf-8")
    quiet = {"PYTHONWARNINGS": "ignore", "MLFLOW_LOGGING_LEVEL": "ERROR"}
    return worker(HERE, "model", str(IRIS), str(BASE), env=quiet)


@contextmanager
def _mlform(models: dict[str, Any], key: str, round_: int) -> Iterator[list[Address]]:
    """A deployment of the example's script and the endpoint's router in front of it."""
    python = sys.executable
    digest = hashlib.sha256(key.encode()).hexdigest()
    deployment, router, unbatched = _free_port(), _free_port(), _free_port()
    routes = BASE / "routes.json"
    table = {
        "endpoint": "iris",
        "deployments": {"blue": {"url": f"http://127.0.0.1:{deployment}", "weight": 100}},
        "auth": {"mode": "key", "key_hashes": [digest]},  # the router checks keys too
    }
    routes.write_text(json.dumps(table), encoding="utf-8")
    serve = [
        *(python, "-m", "mlform.serving", "--script", str(SCRIPT), "--model-dir", str(BASE)),
        *("--host", "127.0.0.1", "--port", str(deployment), "--key-hashes", digest),
        *("--workers", str(WORKERS), "--name", "blue"),
    ]
    single = [
        *(python, "-m", "mlform.serving", "--script", str(SINGLE), "--model-dir", str(BASE)),
        *("--host", "127.0.0.1", "--port", str(unbatched), "--key-hashes", digest),
        *("--workers", str(WORKERS), "--name", "blue"),
    ]
    route = [
        *(python, "-m", "mlform.serving.router", "--routes", str(routes)),
        *("--host", "127.0.0.1", "--port", str(router)),
    ]
    env = {"MLFORM_ACCESS_LOG": "on", "MLFORM_ENDPOINT": "iris"}
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    with ExitStack() as stack:
        sessions = [
            stack.enter_context(
                _process(
                    command,
                    env,
                    f"http://127.0.0.1:{port}{ready}",
                    BASE / "logs" / f"mlform-{name}-{round_}.log",
                )
            )
            for command, port, ready, name in (
                (serve, deployment, "/ready", "deployment"),
                (route, router, "/health", "router"),
                (single, unbatched, "/ready", "unbatched"),
            )
        ]
        metrics = f"http://127.0.0.1:{deployment}/metrics"
        addresses = [
            Address(
                "mlform, deployment",
                f"http://127.0.0.1:{deployment}/score",
                headers,
                (sessions[0],),
                metrics,
            ),
            Address(
                "mlform, endpoint (router)",
                f"http://127.0.0.1:{router}/score",
                headers,
                (sessions[0], sessions[1]),
                metrics,
            ),
            Address(
                UNBATCHED,
                f"http://127.0.0.1:{unbatched}/score",
                headers,
                (sessions[2],),
            ),
        ]
        for address in addresses:
            got = _post(address)
            if got != EXPECTED:
                raise ServerFailed(f"{address.name} answered {got!r} for {ROW}, not {EXPECTED!r}")
        yield addresses


@contextmanager
def _mlflow(models: dict[str, Any], key: str, round_: int) -> Iterator[list[Address]]:
    port = _free_port()
    python = sys.executable
    command = [
        *(python, "-m", "mlflow", "models", "serve", "-m", models["mlflow_model"]),
        *("--env-manager", "local", "--host", "127.0.0.1", "-p", str(port)),
        *("-w", str(WORKERS)),
    ]
    # `mlflow models serve` starts `uvicorn` by name: the one next to this interpreter.
    env = {"PATH": f"{Path(python).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    log = BASE / "logs" / f"mlflow-{round_}.log"
    with _process(command, env, f"http://127.0.0.1:{port}/ping", log) as served:
        json_only = {"Content-Type": "application/json"}
        address = Address("MLflow", f"http://127.0.0.1:{port}/invocations", json_only, (served,))
        got = _post(address)["predictions"]
        if got != EXPECTED:
            raise ServerFailed(f"MLflow answered {got!r} for {ROW}, not {EXPECTED!r}")
        yield [address]


@contextmanager
def _process(command: list[str], env: dict[str, str], ready: str, log: Path) -> Iterator[int]:
    """`command` started and answering 200 at `ready`; stopped on leaving."""
    full = {**os.environ, **env}
    full.pop("MLFLOW_MODELS_WORKERS", None)
    with log.open("wb") as output:
        # Its own session: `mlflow models serve` runs uvicorn as a child, stopped with it.
        process = subprocess.Popen(
            command,
            env=full,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_ready(process, ready, log)
        yield process.pid
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


def _post(address: Address) -> Any:
    request = urllib.request.Request(address.url, json.dumps(PAYLOAD).encode(), address.headers)
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


def _measure(wrk: str, address: Address, seconds: int, label: str) -> Load:
    lua = BASE / f"{label}.lua"
    headers = "\n".join(
        f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in address.headers.items()
    )
    body = _lua_string(json.dumps(PAYLOAD))
    lua.write_text(WRK_SCRIPT.format(body=body, headers=headers), "utf-8")
    _load(wrk, address.url, lua, WARM_UP)
    before, calls = _cpu(address.sessions), _calls(address.metrics)
    load = _load(wrk, address.url, lua, seconds)
    cpu = (_cpu(address.sessions) - before) / load.requests
    per_call = None
    if address.metrics is not None:
        (answered, made), (answered_before, made_before) = _calls(address.metrics), calls
        made -= made_before
        per_call = (answered - answered_before) / made if made else None
    return replace(load, cpu=cpu, per_call=per_call)


def _calls(metrics: str | None) -> tuple[int, int]:
    """From a deployment's /metrics: the scoring requests it answered, and its run()
    calls (each batched call once, each request not batched once)."""
    if metrics is None:
        return (0, 0)
    with urllib.request.urlopen(metrics, timeout=10) as answer:
        lines = answer.read().decode().splitlines()

    def total(name: str) -> int:
        return sum(int(float(line.split()[-1])) for line in lines if line.startswith(name))

    answered = total("mlform_requests_total")
    batched = total("mlform_batched_requests_total")
    return answered, answered - batched + total("mlform_batch_calls_total")


def _cpu(sessions: tuple[int, ...]) -> float:
    """CPU seconds used so far by every process in these sessions (a server's workers,
    MLflow's uvicorn child): a figure less shaken than requests/s by a busy machine."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) in sessions:  # the session id, field 6 of proc(5)
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


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
    requests = int(count[1])
    return Load(float(rps[1]), _seconds(*p50.groups()), _seconds(*p99.groups()), requests, 0.0)


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
        statistics.median(load.cpu for load in loads),
        statistics.median(calls)
        if (calls := [load.per_call for load in loads if load.per_call])
        else None,
    )


# -- the report --------------------------------------------------------------------------


def _table(rows: list[tuple[str, str, str, str, str, bool]]) -> bool:
    width = max(len(row[0]) for row in rows)
    print(f"   {'':<{width}}  {'mlform':>10}  {'against':>10}  {'ratio':>6}  target")
    for what, ours, theirs, ratio, target, met in rows:
        verdict = "PASS" if met else "FAIL"
        print(f"   {what:<{width}}  {ours:>10}  {theirs:>10}  {ratio:>6}  {target:<8} {verdict}")
    return all(row[5] for row in rows)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


# -- the script that makes the model -----------------------------------------------------


def _model(csv: str, folder: str) -> dict[str, Any]:
    """Fit the classifier as the example's training script does (on a DataFrame, so it
    knows its feature names); save it as model.pkl and as the MLflow model `mlflow/`."""
    import pickle

    import mlflow
    import mlflow.sklearn
    import pandas as pd
    import sklearn
    import uvicorn
    import uvicorn.config
    from sklearn.linear_model import LogisticRegression

    frame = pd.read_csv(csv)
    model = LogisticRegression(max_iter=200).fit(frame[COLUMNS], frame["species"])
    with (Path(folder) / "model.pkl").open("wb") as handle:
        pickle.dump(model, handle)
    saved = Path(folder) / "mlflow"
    # Requirements given, not inferred: inferring loads the model in yet another process,
    # and `--env-manager local` never reads them.
    requirements = [f"scikit-learn=={sklearn.__version__}"]
    mlflow.sklearn.save_model(model, str(saved), pip_requirements=requirements)
    # What uvicorn's "auto" picks here (MLflow's choice), as mlform's servers do too.
    http = "httptools" if _importable("httptools") else "h11"
    loop = "uvloop" if _importable("uvloop") else "asyncio"
    return {
        "sklearn": sklearn.__version__,
        "pandas": pd.__version__,
        "mlflow": mlflow.__version__,
        "uvicorn": uvicorn.__version__,
        "http": http,
        "loop": loop,
        "mlflow_model": str(saved),
    }


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


WORKERS_BY_NAME = {"model": _model}


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        print(json.dumps(WORKERS_BY_NAME[sys.argv[2]](*sys.argv[3:])))
    else:
        sys.exit(0 if run(quick="--quick" in sys.argv) else 1)
