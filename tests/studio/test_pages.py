"""The studio's pages and feeds over HTTP, on the applied example: what each answers,
the runs search, a metric's points reduced for a chart, and pages that answer while an
apply runs."""

from __future__ import annotations

import hashlib
import html
import http.client
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from tests.studio.conftest import Studio, apply_ticking


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _post(
    studio: Studio, path: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, object]]:
    sent = {"Content-Type": "application/json", **(headers or {})}
    asked = urllib.request.Request(studio.url + path, data=body, headers=sent, method="POST")
    try:
        with urllib.request.urlopen(asked, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _live(studio: Studio) -> dict[str, object]:
    code, body = _get(studio.url + "/endpoints/iris/live")
    assert code == 200, body
    found: dict[str, object] = json.loads(body)["deployments"]["blue"]
    return found


def _listed(studio: Studio, **query: str) -> list[str]:
    """The run names the runs page lists for `query`."""
    code, body = _get(f"{studio.url}/runs?{urllib.parse.urlencode(query)}")
    assert code == 200, body
    return re.findall(r'<td><a href="/runs/[^"]+">([^<]+)</a></td>', body)


def test_every_page_answers(studio: Studio) -> None:
    code, overview = _get(studio.url + "/")
    assert code == 200
    assert "runconfig/train" in overview and "data/iris" in overview
    assert "No changes. The workspace matches its files" in overview
    monitor = re.search(r"<tr><td><code>monitor/iris-drift</code>.*?</tr>", overview)
    assert monitor and '<span class="muted">none</span>' in monitor[0]  # found no drift
    assert "The workspace is not in a git repository." in overview
    # an edit of the files while the studio runs shows in its plan at once
    train = studio.root / "runconfigs" / "curve-fast.yml"
    declared = train.read_text()
    train.write_text(declared.replace("curve.py 0.01", "curve.py 0.011"))
    try:
        code, overview = _get(studio.url + "/")
        assert code == 200 and "runconfig/curve-fast" in overview
        assert "1 to run" in overview
        # and in its resource's row: it has drifted from its file, the plan says why
        row = re.search(r"<tr><td><code>runconfig/curve-fast</code>.*?</tr>", overview)
        assert row and '<span class="warn">&gt; command changed' in row[0], overview
    finally:
        train.write_text(declared)
    code, runs = _get(studio.url + "/runs")
    assert code == 200 and "Train the iris classifier" in runs
    code, run = _get(studio.url + "/runs/train")
    assert code == 200
    assert "learning_curve_accuracy" in run and "logistic-regression" in run  # a tag
    assert "/code/train.py" in run  # the code snapshot's tree
    code, shown = _get(studio.url + "/runs/train/code/train.py")
    assert code == 200 and "run.log_params(" in shown  # the snapshot's own text
    assert (studio.root / "src" / "train.py").read_text() in html.unescape(shown)
    for wrong in ("../launch.json", "%2E%2E/launch.json", "nothere.py"):
        assert _get(studio.url + f"/runs/train/code/{wrong}")[0] == 404, wrong
    assert _get(studio.url + "/runs/no-such-run")[0] == 404
    assert _get(studio.url + "/nowhere")[0] == 404


def test_the_runs_search_finds_what_mlflow_would(studio: Studio) -> None:
    every = _listed(studio)
    assert len(every) >= 4  # train, the pipeline, the two curves; the manual one never ran
    fast = _listed(studio, search="params.lr = '0.01'")
    assert len(fast) == 1 and fast[0].startswith("curve-fast")
    assert len(_listed(studio, search="metrics.final_score > 0.9")) == 2
    assert _listed(studio, search="metrics.final_score > 0.9 and params.lr = '0.002'")[
        0
    ].startswith("curve-slow")
    assert _listed(studio, search="tags.team = 'vision'", experiment="curves") == _listed(
        studio, experiment="curves"
    )
    assert _listed(studio, search="metrics.accuracy >= 0.9")[0].startswith("Train the iris")
    by_score = _listed(studio, experiment="curves", sort="metrics.final_score", order="asc")
    assert [name.split("_")[0] for name in by_score] == ["curve-slow", "curve-fast"]
    by_rate = _listed(studio, experiment="curves", sort="params.lr", order="desc")
    assert [name.split("_")[0] for name in by_rate] == ["curve-fast", "curve-slow"]
    code, body = _get(f"{studio.url}/runs?search=" + urllib.parse.quote("metrics.accuracy >"))
    assert code == 200 and "the filter ends too soon" in body  # the page says what to mend


def test_a_long_history_reaches_the_chart_reduced_with_its_extremes(studio: Studio) -> None:
    code, body = _get(f"{studio.url}/runs/curve-fast/points?key=loss&points=100")
    assert code == 200
    data = json.loads(body)
    assert data["total"] == 2000 and data["reduced"]
    assert len(data["x"]) <= 100
    assert data["x"][0] == 0 and data["y"][0] == 1.0  # where it starts
    assert data["x"][-1] == 1999  # and where it ends
    assert (1234, 5.0) in zip(data["x"], data["y"], strict=True)  # a spike is kept
    assert data["x"] == sorted(data["x"])
    code, body = _get(f"{studio.url}/runs/curve-fast/points?key=loss&points=5000")
    assert len(json.loads(body)["x"]) == 2000  # fewer points than asked for: every one
    code, body = _get(f"{studio.url}/runs/curve-fast/metrics.csv?key=loss")
    assert code == 200 and len(body.splitlines()) == 2001


def test_pages_answer_while_an_apply_runs(studio: Studio) -> None:
    """A run of 30 s in an apply that holds the state: every page keeps answering, in
    seconds, from its start to its end."""
    apply = apply_ticking(studio)
    paths = (  # every page, and the feeds its charts and tables read
        "/",
        "/runs",
        "/runs/ticking",
        "/runs/train",
        "/runs/train/code/train.py",
        "/runs/curve-fast/points?key=loss",
        "/compare?run=curve-fast&run=curve-slow",
        "/models",
        "/models/iris-classifier/1",
        "/pipelines",
        "/pipelines/retrain",
        "/endpoints",
        "/endpoints/iris",
        "/endpoints/iris/live",
        "/monitors",
        "/monitors/iris-drift",
    )
    try:
        deadline = time.monotonic() + 120
        while "ticking" not in _get(studio.url + "/runs?status=running")[1]:
            assert apply.poll() is None, apply.communicate()[0]
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.3)
        started, rounds = time.monotonic(), 0
        while apply.poll() is None:
            for path in paths:
                asked = time.monotonic()
                code, body = _get(studio.url + path)
                assert code == 200, (path, body[:500])
                assert time.monotonic() - asked < 10, path
            rounds += 1
        ran = time.monotonic() - started
    finally:
        out, _ = apply.communicate(timeout=120)
    assert apply.returncode == 0, out
    assert ran > 20 and rounds >= 5, (ran, rounds)  # the pages were asked all along


def test_runs_compare_side_by_side(studio: Studio) -> None:
    ids = [name for name in _listed(studio, experiment="curves")]
    assert len(ids) == 2
    code, body = _get(f"{studio.url}/compare?" + urllib.parse.urlencode([("run", i) for i in ids]))
    assert code == 200
    differs = re.search(r'<tr class="differs"><th scope="row">lr', body)
    same = re.search(r'<tr class="same"><th scope="row">optimizer', body)
    assert differs and same  # lr differs between the two, the optimizer does not
    assert "final_score" in body
    code, body = _get(f"{studio.url}/compare?run={ids[0]}")
    assert code == 400 and "Pick 2 to 10 runs" in body
    assert _get(f"{studio.url}/compare?run={ids[0]}&run=nope")[0] == 404


def test_a_models_lineage_and_its_files(studio: Studio) -> None:
    code, body = _get(studio.url + "/models")
    assert code == 200 and "iris-classifier:1" in body
    code, body = _get(studio.url + "/models/iris-classifier/1")
    assert code == 200
    run = re.search(r'<a href="/runs/([^"]+)" id="lineage-run">', body)
    assert run and run.group(1).startswith("train_")
    assert "data <code>iris:1</code>" in body  # the data version it was trained on
    assert "environment <code>sklearn-env:1</code>" in body
    files = re.findall(r'<a href="(/models/iris-classifier/1/files/[^"]+)" download>', body)
    assert files
    registered = json.loads(
        subprocess.run(
            [
                sys.executable,
                "-m",
                "mlform.cli.main",
                "models",
                "show",
                "iris-classifier:1",
                "--json",
            ],
            cwd=studio.root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    first = registered["files"][0]
    with urllib.request.urlopen(
        studio.url + f"/models/iris-classifier/1/files/{first['path']}"
    ) as got:
        content = got.read()
    assert hashlib.sha256(content).hexdigest() == first["sha256"]
    assert _get(studio.url + "/models/iris-classifier/9")[0] == 404


def test_a_pipeline_run_is_drawn_as_its_steps(studio: Studio) -> None:
    code, body = _get(studio.url + "/pipelines")
    assert code == 200 and '<a href="/pipelines/retrain">retrain</a>' in body
    again = subprocess.run(
        [sys.executable, "-m", "mlform.cli.main", "apply", "--yes", "--rerun", "pipeline/retrain"],
        cwd=studio.root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    code, body = _get(studio.url + "/pipelines/retrain")
    assert code == 200
    steps = re.findall(r'<g class="step ([a-z_ ]+)" data-step="([a-z]+)">', body)
    assert sorted(name for _, name in steps) == ["evaluate", "prepare", "register", "train"]
    assert all(kind == "completed reused" for kind, _ in steps), steps  # nothing changed
    assert body.count("reused from ") == 4
    assert body.count('class="edge"') == 5  # prepare→train, prepare→evaluate, train→evaluate,
    # train→register, evaluate→register
    assert _get(studio.url + "/pipelines/nope")[0] == 404


def test_an_endpoint_shows_its_traffic_its_counters_and_what_it_captured(studio: Studio) -> None:
    code, body = _get(studio.url + "/endpoints")
    assert code == 200
    assert '<a href="/endpoints/iris">iris</a>' in body and "blue 100%" in body
    code, body = _get(studio.url + "/endpoints/iris")
    assert code == 200
    assert '<a href="/models/iris-classifier/1">iris-classifier:1</a>' in body
    # the latest 20 of the requests the fixture sent (two rounds of 150 rows, 25 a request)
    captured = re.findall(r'<tr><td class="when">[^<]+</td><td>blue</td>', body)
    assert 12 <= len(captured) <= 20, body  # other tests may have sent some since
    assert "[[" in body.split('class="captured"')[1]  # rows as they were sent
    assert _get(studio.url + "/endpoints/nope")[0] == 404

    before = _live(studio)
    assert before["answering"] and before["ready"]
    assert before["requests"] >= 12  # the fixture's, through the endpoint's router
    request = (studio.root / "request.json").read_text()
    code, answer = _post(
        studio, "/endpoints/iris/invoke", json.dumps({"body": request, "deployment": None}).encode()
    )
    assert code == 200 and answer["status"] == 200, answer
    assert json.loads(str(answer["body"])) == ["setosa", "virginica"]
    code, answer = _post(
        studio,
        "/endpoints/iris/invoke",
        json.dumps({"body": request, "deployment": "blue"}).encode(),
    )
    assert code == 200 and answer["status"] == 200, answer
    after = _live(studio)
    assert after["requests"] == before["requests"] + 2  # counted by the server itself
    assert isinstance(after["rate"], float) and after["rate"] > 0  # two since the last look
    latency = after["latency_ms"]
    assert isinstance(latency, list) and 0 < latency[0] <= latency[1] <= latency[2]
    assert after["latency_of"] == "since the previous look"
    assert after["errors"] == 0


def test_a_test_request_is_taken_only_as_json_from_the_studios_own_page(studio: Studio) -> None:
    asked = json.dumps({"body": '{"data": [[5.1, 3.5, 1.4, 0.2]]}', "deployment": None}).encode()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert _post(studio, "/endpoints/iris/invoke", asked, form)[0] == 403
    elsewhere = {"Origin": "http://elsewhere.example"}
    code, answer = _post(studio, "/endpoints/iris/invoke", asked, elsewhere)
    assert code == 403 and "elsewhere.example" in str(answer["error"])
    own = {"Origin": studio.url}
    assert _post(studio, "/endpoints/iris/invoke", asked, own)[0] == 200
    # a body said to be too long is refused before it is sent
    host, port = studio.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.putrequest("POST", "/endpoints/iris/invoke")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str((1 << 20) + 1))
    connection.endheaders()
    refused = connection.getresponse()
    assert refused.status == 413 and b"at most 1048576 bytes" in refused.read()
    connection.close()
    code, answer = _post(studio, "/endpoints/iris/invoke", json.dumps({"body": "{nope"}).encode())
    assert code == 400 and "not JSON" in str(answer["error"])
    code, answer = _post(studio, "/endpoints/nope/invoke", asked)
    assert code == 404 and "no endpoint named 'nope'" in str(answer["error"])
    code, answer = _post(
        studio, "/endpoints/iris/invoke", json.dumps({"body": "{}", "deployment": "green"}).encode()
    )
    assert code == 404 and "no deployment 'green'" in str(answer["error"])


def test_a_monitors_history_is_a_heat_map_per_signal(studio: Studio) -> None:
    code, body = _get(studio.url + "/monitors")
    assert code == 200
    assert '<a href="/monitors/iris-drift">iris-drift</a>' in body and "iris:blue" in body
    code, body = _get(studio.url + "/monitors/iris-drift")
    assert code == 200
    assert re.findall(r'<table class="heat" data-signal="([a-z_]+)">', body) == [
        "drift",
        "quality",
    ]
    drift = body.split('data-signal="drift"')[1].split("</table>")[0]
    rows = re.findall(r'<th scope="row">([a-z_]+)</th>\s*<td>([a-z ]+)</td>', drift)
    features = {"sepal_length", "sepal_width", "petal_length", "petal_width"}
    assert {f for f, m in rows if m == "normalized wasserstein distance"} == features
    # two runs, a column each, every cell coloured against its threshold (0.1)
    assert len(re.findall(r'<th scope="col" class="num"><a href="/runs/iris-drift_', drift)) == 2
    cells = re.findall(r'class="num cell( breached)?" style="background:#([0-9a-f]{6})', drift)
    assert len(cells) == 2 * len(rows)
    assert not any(breached for breached, _ in cells)  # the iris rows are the training data
    assert _get(studio.url + "/monitors/nope")[0] == 404
