"""The studio with 10,000 runs and a run of 200,000 metric points, beside the MLflow UI
loading the same data.

Targets (issue figures, all measured in one run):
- the runs page's server time, a page of 100 of the 10,000 runs, newest first: ≤ 300 ms
  (and the same page searched with `metrics.m0 > 0.5`); MLflow's UI asks its server
  (`mlflow server`, the same SQLite-free data in its own SQLite store) for that page with
  `POST /ajax-api/2.0/mlflow/runs/search`, timed the same way, side by side;
- the run page's chart of 200,000 points drawn in the browser (Debian's Chromium) in
  ≤ 1 s from the page's start, read with the Performance API (`charts-drawn`);
- the studio's peak RSS under 300 MB after all of it.

Both servers warm (one untimed request first), each request timed from this process as
the time to the whole answer, medians of rounds taking turns. The data are generated
(not timed): the same runs, params, tags and final metrics on both sides, written
straight into each store's own tables (MLflow's schema made by MLflow itself first).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

from peers import WORK, at_most, duration

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

describe = "the studio on 10,000 runs and 200,000 points, beside the MLflow UI's server"

RUNS, POINTS, PAGE = 10_000, 200_000, 100
ROUNDS, QUICK_ROUNDS = 9, 3
TARGET_PAGE = 0.300  # seconds, the runs page's server time
TARGET_CHART = 1.0  # seconds, the chart drawn in the browser
TARGET_RSS = 300  # MB, the studio's peak
SEARCH = "metrics.m0 > 0.5"


def _mlform_state(root: Path) -> None:
    from mlform.state.store import Store

    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    (root / "workspace.yml").write_text("name: studio-bench\n")
    state = root / ".mlform" / "state.duckdb"
    with Store.open(state, "bench", write=True) as store, store.transaction() as con:
        con.execute("insert into experiments select 'exp-' || i, now() from range(10) t(i)")
        con.execute(
            f"""
                insert into runs (id, experiment, runconfig, name, status, created_at,
                    started_at, ended_at, duration, inputs, compute, run_dir, seq)
                select 'run-' || lpad(i::varchar, 5, '0'), 'exp-' || (i % 10),
                    'runconfig/train', 'train',
                    case when i % 17 = 0 then 'failed' else 'completed' end,
                    to_timestamp(1700000000 + i * 60), to_timestamp(1700000000 + i * 60),
                    to_timestamp(1700000030 + i * 60), 30.0, '{{}}', 'local',
                    '/nonexistent/run-' || i, i
                from range({RUNS}) t(i)
                """
        )
        for key, value in (
            ("lr", "((i % 100) / 1000)::varchar"),
            ("n_estimators", "(10 + i % 50)::varchar"),
            ("model", "'m' || (i % 3)"),
        ):
            con.execute(
                f"insert into params select 'run-' || lpad(i::varchar, 5, '0'), '{key}', "
                f"{value} from range({RUNS}) t(i)"
            )
        con.execute(
            "insert into tags select 'run-' || lpad(i::varchar, 5, '0'), 'team', "
            f"case when i % 2 = 0 then 'vision' else 'nlp' end from range({RUNS}) t(i)"
        )
        con.execute(
            "insert into metrics select 'run-' || lpad(i::varchar, 5, '0'), 'm' || k, 0, "
            "1700000000000 + i * 60000, ((i * 7919 + k * 104729) % 1000) / 1000.0 "
            f"from range({RUNS}) t(i), range(5) u(k)"
        )
        con.execute(
            """
                insert into runs (id, experiment, runconfig, name, status, created_at,
                    started_at, ended_at, duration, inputs, compute, run_dir, seq)
                values ('run-long', 'exp-0', 'runconfig/long', 'long', 'completed',
                    now(), now(), now(), 600.0, '{}', 'local', '/nonexistent/long', 999999)
                """
        )
        con.execute(
            "insert into metrics select 'run-long', 'loss', i, 1700000000000 + i * 10, "
            f"exp(-i / 50000.0) + 0.02 * sin(i / 40.0) from range({POINTS}) t(i)"
        )


def _mlflow_store(folder: Path) -> tuple[str, str]:
    """MLflow's SQLite store with the same runs: its schema made by MLflow (one run logged
    through its client), the rest written into its tables. The experiment's id, the URI."""
    db = folder / "mlflow.db"
    db.unlink(missing_ok=True)
    uri = f"sqlite:///{db}"
    made = subprocess.run(
        [
            sys.executable,
            "-c",
            "import mlflow, sys; mlflow.set_tracking_uri(sys.argv[1]); "
            "e = mlflow.create_experiment('bench', artifact_location=sys.argv[2]); "
            "r = mlflow.MlflowClient().create_run(e); print(e)",
            uri,
            str(folder / "mlflow-artifacts"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    experiment = made.stdout.strip().splitlines()[-1]
    con = sqlite3.connect(db)
    with con:
        for table in ("latest_metrics", "metrics", "params", "tags", "runs"):
            con.execute(f"delete from {table}")  # the run MLflow made: only its schema stays
        rows = []
        for i in range(RUNS):
            run_id = uuid.UUID(int=i + 1).hex
            start = (1_700_000_000 + i * 60) * 1000
            status = "FAILED" if i % 17 == 0 else "FINISHED"
            rows.append(
                (
                    run_id,
                    f"run-{i:05d}",
                    "LOCAL",
                    "",
                    "",
                    "bench",
                    status,
                    start,
                    start + 30_000,
                    "",
                    "active",
                    f"file:///tmp/{run_id}",
                    experiment,
                )
            )
        con.executemany(
            "insert into runs (run_uuid, name, source_type, source_name, entry_point_name, "
            "user_id, status, start_time, end_time, source_version, lifecycle_stage, "
            "artifact_uri, experiment_id) values (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        params, tags, metrics = [], [], []
        for i in range(RUNS):
            run_id = uuid.UUID(int=i + 1).hex
            params += [
                ("lr", str((i % 100) / 1000), run_id),
                ("n_estimators", str(10 + i % 50), run_id),
                ("model", f"m{i % 3}", run_id),
            ]
            tags += [
                ("team", "vision" if i % 2 == 0 else "nlp", run_id),
                ("mlflow.runName", f"run-{i:05d}", run_id),
            ]
            for k in range(5):
                value = ((i * 7919 + k * 104729) % 1000) / 1000.0  # as on mlform's side
                metrics.append((f"m{k}", value, 1_700_000_000_000 + i * 60_000, run_id, 0, 0))
        con.executemany("insert into params (key, value, run_uuid) values (?,?,?)", params)
        con.executemany("insert into tags (key, value, run_uuid) values (?,?,?)", tags)
        con.executemany(
            "insert into metrics (key, value, timestamp, run_uuid, step, is_nan) "
            "values (?,?,?,?,?,?)",
            metrics,
        )
        con.executemany(
            "insert into latest_metrics (key, value, timestamp, run_uuid, step, is_nan) "
            "values (?,?,?,?,?,?)",
            metrics,
        )
    con.close()
    return experiment, uri


def _wait(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.2)


def _timed(request: urllib.request.Request | str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as answer:
        answer.read()
    return time.perf_counter() - started


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _chart_seconds(url: str) -> float:
    """From the run page's start to its charts drawn, as the browser measures it."""
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("MLFORM_CHROMIUM") or shutil.which("chromium")
    if not chromium:
        raise RuntimeError("no Chromium: scripts/browser-up.sh installs it")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            took = []
            for _ in range(3):
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(url)
                page.wait_for_selector("body[data-charts=drawn]", timeout=60_000)
                took.append(
                    page.evaluate("performance.getEntriesByName('charts-drawn')[0].startTime")
                    / 1000
                )
                page.close()
            return statistics.median(took)
        finally:
            browser.close()


def run(*, quick: bool = False) -> bool:
    rounds = QUICK_ROUNDS if quick else ROUNDS
    folder = WORK / "studio"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"   generating {RUNS:,} runs on both sides and {POINTS:,} points (not timed) …")
    root = folder / "ws"
    _mlform_state(root)
    experiment, uri = _mlflow_store(folder)

    ours_port, theirs_port = _free_port(), _free_port()
    studio = subprocess.Popen(
        [sys.executable, "-m", "mlform.cli.main", "studio", "--port", str(ours_port)],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    mlflow = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(theirs_port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        ours, theirs = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{theirs_port}"
        _wait(ours + "/static/studio.css", studio, "the studio")
        _wait(theirs + "/health", mlflow, "mlflow server")
        page = f"{ours}/runs?size={PAGE}"
        searched = f"{page}&search={urllib.parse.quote(SEARCH)}"

        def search(filter_string: str) -> urllib.request.Request:
            body = {
                "experiment_ids": [experiment],
                "max_results": PAGE,
                "order_by": ["attributes.start_time DESC"],
                "filter": filter_string,
            }
            return urllib.request.Request(
                f"{theirs}/ajax-api/2.0/mlflow/runs/search",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )

        with urllib.request.urlopen(search(""), timeout=60) as answer:
            found = json.loads(answer.read())
        assert len(found["runs"]) == PAGE, "MLflow's search found too few runs"
        # the first request of each: the studio's reads not kept yet (`state.reads`)
        first = {"ours": _timed(page), "theirs": _timed(search(""))}
        with urllib.request.urlopen(page, timeout=60) as answer:
            shown = answer.read().decode()
        listed = shown.count('<td><a href="/runs/')
        assert listed == PAGE and f"{RUNS + 1} runs" in shown, "the studio listed too few runs"
        for warm in (searched,):
            _timed(warm)
        _timed(search(SEARCH))
        times: dict[str, list[float]] = {
            k: [] for k in ("ours", "ours_s", "theirs", "theirs_s", "kept", "kept_s")
        }
        for turn in range(rounds):
            # a page and a threshold not asked for before: the studio reads the state
            # (its kept reads cannot answer), as MLflow's server reads its store
            threshold = f"metrics.m0 > {0.5 + turn / 1000}"
            times["ours"].append(_timed(f"{page}&page={turn + 2}"))
            times["theirs"].append(_timed(search("")))
            times["ours_s"].append(_timed(f"{page}&search={urllib.parse.quote(threshold)}"))
            times["theirs_s"].append(_timed(search(threshold)))
            times["kept"].append(_timed(page))  # asked before: the reads it kept
            times["kept_s"].append(_timed(searched))
        chart = _chart_seconds(f"{ours}/runs/run-long")
        rss = _peak_rss_mb(studio.pid)
    finally:
        studio.terminate()
        os.killpg(mlflow.pid, 15)
        studio.wait(20)
        mlflow.wait(20)

    median = {k: statistics.median(v) for k, v in times.items()}
    page_met = at_most(median["ours"], TARGET_PAGE) and at_most(median["ours_s"], TARGET_PAGE)
    print(f"   {RUNS:,} runs, a page of {PAGE}, {rounds} rounds taking turns, medians, warm")
    print(f"   {'':<40}  {'mlform studio':>14}  {'MLflow server':>14}  {'ratio':>7}  target")
    for label, mine, peer in (
        ("runs page, newest first", median["ours"], median["theirs"]),
        ("runs page, metrics.m0 > 0.5…", median["ours_s"], median["theirs_s"]),
    ):
        print(
            f"   {label:<40}  {duration(mine):>14}  {duration(peer):>14}  "
            f"{peer / mine:>6.2f}×  ≤ {TARGET_PAGE * 1000:.0f} ms "
            f"{'PASS' if at_most(mine, TARGET_PAGE) else 'MISS'}"
        )
    print(
        f"   {'… the same pages asked again':<40}  "
        f"{duration(median['kept']):>14} and {duration(median['kept_s'])} (the reads kept)"
    )
    print(
        f"   {'the first request after each started':<40}  {duration(first['ours']):>14}  "
        f"{duration(first['theirs']):>14}"
    )
    chart_met = at_most(chart, TARGET_CHART)
    rss_met = rss < TARGET_RSS
    print(
        f"   chart of {POINTS:,} points drawn, from the page's start (Chromium): "
        f"{duration(chart)}  ≤ 1 s {'PASS' if chart_met else 'MISS'}"
    )
    print(
        f"   the studio's peak RSS: {rss:,.0f} MB  < {TARGET_RSS} MB "
        f"{'PASS' if rss_met else 'MISS'}"
    )
    print(
        "   (MLflow's side is its server's JSON for the page; the studio's is the whole "
        "HTML page, rendered)"
    )
    return page_met and chart_met and rss_met
