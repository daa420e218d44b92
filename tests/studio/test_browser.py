"""The studio in a real browser (Debian's Chromium, driven by Playwright): every page
loads with no console error and no failed request and passes an accessibility check
(axe-core); a chart has really drawn and shows a value under the pointer; the search
form finds the runs; a running run's log grows while its page is open. A screenshot of
each page is saved in tests/studio/screenshots/ for people to look at."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.studio.conftest import Studio, apply_ticking

SHOTS = Path(__file__).with_name("screenshots")
PAGES = {
    "overview": "/",
    "runs": "/runs",
    "run": "/runs/train",
    "curve": "/runs/curve-fast",
    "compare": "/compare?run=curve-fast&run=curve-slow&run=train",
    "models": "/models",
    "model": "/models/iris-classifier/1",
    "pipelines": "/pipelines",
    "pipeline": "/pipelines/retrain",
    "code": "/runs/train/code/train.py",
    "endpoints": "/endpoints",
    "endpoint": "/endpoints/iris",
    "monitors": "/monitors",
    "monitor": "/monitors/iris-drift",
}


class Watched:
    """A page, and what went wrong on it: console errors, failed or refused requests."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.problems.append(f"console: {message.text}")

    def _failed(self, request: Any) -> None:
        failure = request.failure or ""
        if "ERR_ABORTED" not in failure:  # a log stream closed as the page leaves
            self.problems.append(f"request failed: {request.url} {failure}")

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            self.problems.append(f"{response.status}: {response.url}")


@pytest.fixture
def watched(browser: Any) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield Watched(context.new_page())
    finally:
        context.close()


def _open(watched: Watched, studio: Studio, path: str) -> Any:
    page = watched.page
    page.goto(studio.url + path, wait_until="load")
    if path.startswith(("/runs/", "/compare")) and "/code/" not in path:
        page.wait_for_selector("body[data-charts]", timeout=20_000)
    return page


def test_every_page_loads_cleanly_and_passes_an_accessibility_check(
    studio: Studio, watched: Watched
) -> None:
    SHOTS.mkdir(exist_ok=True)
    axe = os.environ.get("MLFORM_AXE")
    if not axe:
        pytest.skip("no axe-core here: scripts/browser-up.sh fetches it")
    for name, path in PAGES.items():
        page = _open(watched, studio, path)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
        page.add_script_tag(path=axe)
        found = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        serious = [
            f"{v['id']} ({v['impact']}): {v['help']} at {v['nodes'][0]['target']}"
            for v in found["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert serious == [], f"{path}: {serious}"
    assert watched.problems == []


def test_a_chart_draws_its_points_and_shows_a_value_under_the_pointer(
    studio: Studio, watched: Watched
) -> None:
    page = _open(watched, studio, "/runs/curve-fast")
    chart = page.locator('.chart[data-key="loss"]')
    assert chart.get_attribute("data-total") == "2000"
    drawn = page.evaluate(
        """() => {
          const canvas = document.querySelector('.chart[data-key="loss"] canvas');
          const context = canvas.getContext('2d');
          const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
          let inked = 0;
          for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) inked++;
          return inked;
        }"""
    )
    assert drawn > 300, f"only {drawn} pixels drawn"
    took = page.evaluate(
        "performance.getEntriesByName('chart:loss').map((entry) => entry.duration)"
    )
    assert len(took) == 1 and took[0] < 1000  # measured in the browser
    value = chart.locator(".u-legend .u-series:nth-child(2) .u-value")
    before = value.inner_text()
    box = chart.locator(".u-over").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] / 2)
    page.wait_for_function(
        "(before) => document.querySelector("
        "'.chart[data-key=\"loss\"] .u-legend .u-series:nth-child(2) .u-value').textContent "
        "!== before",
        arg=before,
    )
    shown = float(value.inner_text())
    assert 0 < shown < 1  # exp(-0.01 × step), a quarter of the way along
    assert watched.problems == []


def test_the_search_form_finds_the_runs(studio: Studio, watched: Watched) -> None:
    page = _open(watched, studio, "/runs")
    page.fill("#search", "metrics.final_score > 0.9 and params.lr = '0.01'")
    page.click("form[role=search] button")
    page.wait_for_url("**/runs?**")
    names = page.locator("table.runs tbody tr td:nth-child(2) a").all_inner_texts()
    assert len(names) == 1 and names[0].startswith("curve-fast"), names
    page.fill("#search", "metrics.final_score >")
    page.click("form[role=search] button")
    assert "the filter ends too soon" in page.locator("[role=alert]").inner_text()
    assert watched.problems == []


def test_a_running_runs_log_grows_while_its_page_is_open(studio: Studio, watched: Watched) -> None:
    apply = apply_ticking(studio)
    try:
        page = watched.page
        deadline = time.monotonic() + 120
        while True:  # its page, once the run is recorded as running
            page.goto(studio.url + "/runs?status=running&experiment=ticking")
            if page.locator("table.runs tbody tr").count():
                break
            assert apply.poll() is None, apply.communicate()[0]
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.3)
        page.click("table.runs tbody tr td:nth-child(2) a")
        page.wait_for_function("document.getElementById('log').textContent.includes('tick 2')")
        first = page.locator("#log").inner_text().count("tick")
        page.wait_for_function(
            "(seen) => (document.getElementById('log').textContent.match(/tick/g) || []).length"
            " >= seen + 10",
            arg=first,
            timeout=30_000,
        )
    finally:
        os.killpg(apply.pid, signal.SIGINT)  # Ctrl-C: the run is canceled
        apply.communicate(timeout=60)
    assert watched.problems == []


def test_compared_runs_overlay_their_curves_and_lines_cross_params_to_a_metric(
    studio: Studio, watched: Watched
) -> None:
    page = _open(watched, studio, "/runs")
    page.fill("#search", "params.optimizer = 'sgd'")
    page.click("form[role=search] button")
    page.wait_for_url("**/runs?**")
    for box in page.locator("table.runs tbody input[type=checkbox]").all():
        box.check()
    page.click("form#compare button")
    page.wait_for_selector("body[data-charts=drawn]")
    loss = page.locator('.chart[data-key="loss"] .u-legend .u-series')
    assert loss.count() == 3  # the x axis and one series a run
    page.select_option("#target", "final_score")
    lines = page.locator("#parallel polyline.run-line")
    assert lines.count() == 2  # lr → final_score, one line a run
    assert page.locator("#parallel text").all_text_contents() == ["lr", "final_score"]
    assert watched.problems == []


def test_a_model_leads_to_its_run_and_its_data_version(studio: Studio, watched: Watched) -> None:
    page = _open(watched, studio, "/models")
    page.click("text=iris-classifier:1")
    page.wait_for_selector("#lineage-run")
    assert "iris:1" in page.locator("ol.lineage").inner_text()
    page.click("#lineage-run")
    page.wait_for_selector("body[data-charts=drawn]")
    assert page.url.startswith(studio.url + "/runs/train_")
    assert "iris:1" in page.locator("table").first.inner_text()  # its inputs, versioned
    assert watched.problems == []


def test_a_test_request_sent_from_the_endpoints_page_is_answered_and_counted(
    studio: Studio, watched: Watched
) -> None:
    page = _open(watched, studio, "/endpoints/iris")
    requests = page.locator('tr[data-deployment="blue"] [data-field="requests"]')
    counted = int(requests.inner_text())
    page.fill("#try-body", (studio.root / "request.json").read_text())
    page.select_option("#try-deployment", "blue")
    page.click("#try button[type=submit]")
    page.wait_for_function("document.getElementById('try-status').textContent.startsWith('HTTP')")
    assert page.locator("#try-status").inner_text().startswith("HTTP 200 in ")
    assert json.loads(page.locator("#try-answer").inner_text()) == ["setosa", "virginica"]
    # the page looks at the servers again by itself: the request is counted there
    page.wait_for_function(
        "(before) => Number(document.querySelector("
        '\'tr[data-deployment="blue"] [data-field="requests"]\').textContent) > before',
        arg=counted,
        timeout=15_000,
    )
    assert (
        page.locator('tr[data-deployment="blue"] [data-field="rate"]').inner_text().endswith("/s")
    )
    page.fill("#try-body", "{not json")
    page.click("#try button[type=submit]")
    page.wait_for_function("document.getElementById('try-status').textContent.includes('not JSON')")
    assert "The request is not JSON" in page.locator("#try-status").inner_text()
    assert watched.problems == []  # the page said so itself, and sent nothing
