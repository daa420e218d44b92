"""What the endpoints page makes of a server's /metrics: the counters, percentiles as
Prometheus interpolates them, and a rate between two looks."""

from __future__ import annotations

import math

import pytest

from mlform.serving.metrics import BUCKETS, Metrics
from mlform.studio.serving import Looks, parse, quantile


def _served(durations: list[float], statuses: list[int] | None = None) -> Metrics:
    metrics = Metrics()
    for seconds, status in zip(durations, statuses or [200] * len(durations), strict=True):
        metrics.observe(status, seconds)
    return metrics


def test_the_counters_are_read_from_what_a_server_renders() -> None:
    metrics = _served([0.003, 0.004, 0.02, 0.3], [200, 200, 400, 503])
    counters = parse(metrics.render(ready=True).decode(), at=1.0)
    assert counters.requests == 4 and counters.errors == 1 and counters.ready
    assert [bound for bound, _ in counters.buckets] == [*BUCKETS, math.inf]
    assert counters.buckets[-1][1] == 4


def test_percentiles_interpolate_within_a_bucket_as_prometheus_does() -> None:
    buckets = [(0.1, 0.0), (0.2, 10.0), (0.4, 20.0), (math.inf, 20.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.2)
    assert quantile(0.25, buckets) == pytest.approx(0.15)
    assert quantile(0.75, buckets) == pytest.approx(0.3)
    assert quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]) is None
    assert quantile(0.99, [(0.1, 1.0), (math.inf, 5.0)]) == 0.1  # beyond the last bound


def test_a_rate_and_recent_percentiles_need_two_looks_and_a_restart_begins_again() -> None:
    looks = Looks()
    first = looks.live("a", parse(_served([0.002] * 10).render(True).decode(), at=10.0))
    assert first.answering and first.requests == 10 and first.rate is None
    assert first.latency_of == "since it started"
    slower = _served([0.002] * 10 + [0.3] * 5).render(True).decode()
    second = looks.live("a", parse(slower, at=15.0))
    assert second.rate == pytest.approx(1.0) and second.since == pytest.approx(5.0)
    assert second.latency_of == "since the previous look"
    assert second.latency[0] is not None and second.latency[0] > 0.25  # only the 5 slow
    restarted = looks.live("a", parse(_served([0.002]).render(True).decode(), at=20.0))
    assert restarted.rate is None and restarted.requests == 1
    assert not looks.live("a", None).answering
    looks.live("e1 a", parse(slower, at=30.0))
    looks.live("e2 b", parse(slower, at=30.0))
    looks.forget_others("e1 ", ["e1 c"])  # endpoint e1 has another instance now
    assert looks.live("e1 a", parse(slower, at=31.0)).rate is None  # forgotten
    assert looks.live("e2 b", parse(slower, at=31.0)).rate == 0.0  # another endpoint's: kept
