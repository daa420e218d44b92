"""GET /metrics: Prometheus text that adds up to the requests made."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlform.serving.app import create_app
from mlform.serving.metrics import BUCKETS, Metrics
from mlform.serving.scoring import import_script, load_script
from tests.serving.conftest import call, serving_in_thread, write_deployment

DURATION = "mlform_request_duration_seconds"
LE = [*map(repr, BUCKETS), "+Inf"]


def samples(text: str) -> dict[str, float]:
    """`name{labels}` → value, for every sample line; comments checked for their form."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert line.split()[1] in ("HELP", "TYPE"), line
            continue
        name, value = line.rsplit(" ", 1)
        assert name not in found, f"{name} twice"
        found[name] = float(value)
    return found


@pytest.mark.usefixtures("isolated_import")
def test_metrics_count_scoring_requests_by_status_with_their_durations(tmp_path: Path) -> None:
    app = create_app(load_script(*write_deployment(tmp_path)), keys=["alpha"])
    key = {"Authorization": "Bearer alpha"}
    with serving_in_thread(app) as port:
        for n in range(3):
            assert call(port, "POST", "/score", b'{"data": [%d]}' % n, key).status == 200
        assert call(port, "POST", "/score", b"{", key).status == 400
        assert call(port, "POST", "/score", b'{"data": "boom"}', key).status == 500
        assert call(port, "POST", "/score", b'{"data": [1]}').status == 401
        for path in ("/health", "/ready", "/", "/nowhere"):  # not counted
            call(port, "GET", path)
        reply = call(port, "GET", "/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    found = samples(reply.body.decode("ascii"))
    buckets = [found.pop(f'{DURATION}_bucket{{le="{le}"}}') for le in LE]
    seconds = found.pop(f"{DURATION}_sum")
    assert found == {
        'mlform_requests_total{code="200"}': 3,
        'mlform_requests_total{code="400"}': 1,
        'mlform_requests_total{code="401"}': 1,
        'mlform_requests_total{code="500"}': 1,
        "mlform_request_errors_total": 1,
        f"{DURATION}_count": 6,
        "mlform_requests_in_flight": 0,
        "mlform_ready": 1,
    }
    assert buckets == sorted(buckets) and buckets[-1] == 6
    assert 0 < seconds < 6 * 10


@pytest.mark.usefixtures("isolated_import")
def test_metrics_before_init_show_not_ready_and_no_requests(tmp_path: Path) -> None:
    app = create_app(import_script(*write_deployment(tmp_path)))
    with serving_in_thread(app) as port:
        found = samples(call(port, "GET", "/metrics").body.decode("ascii"))
    assert found["mlform_ready"] == 0
    assert found[f"{DURATION}_count"] == 0
    assert not any(name.startswith("mlform_requests_total") for name in found)


def test_a_duration_on_a_bound_falls_in_that_bounds_bucket() -> None:
    metrics = Metrics()
    for seconds in (0.0, 0.001, 0.0011, 10.0, 11.0):
        metrics.observe(200, seconds)
    text = metrics.render(ready=True).decode("ascii")
    found = samples(text)
    cumulative = [found[f'{DURATION}_bucket{{le="{le}"}}'] for le in LE]
    assert cumulative == [2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 5]
    assert found[f"{DURATION}_sum"] == pytest.approx(21.0021)
    assert f'{DURATION}_bucket{{le="0.0025"}} 3\n' in text
    assert f'{DURATION}_bucket{{le="1.0"}} 3\n' in text
    assert text.endswith("# TYPE mlform_ready gauge\nmlform_ready 1\n")
