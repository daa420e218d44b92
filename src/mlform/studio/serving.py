"""What an endpoint's servers say about themselves, for the endpoints page: their
counters (GET /metrics, in Prometheus' text format, as `mlform.serving.metrics` writes
it) turned into a request rate, latency percentiles and error counts, and a sample of
the requests they captured (`mlform.serving.capture`'s Parquet files).

A rate needs two looks: the studio keeps each instance's previous counters (`Looks`,
one entry per instance, forgotten once its endpoint no longer has it) and reports the
change since then;
percentiles are of the requests between the two looks when there were any, else of all
the server has answered.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

_SCRAPE_SECONDS = 2.0  # a server that takes longer to count is shown as not answering
_MAX_METRICS_BYTES = 1 << 20
_QUANTILES = (0.5, 0.95, 0.99)
_SAMPLED_FILES = 8  # the newest capture files a sample is read from
_SHOWN_CHARS = 240  # of a captured request's inputs or outputs


@dataclass(frozen=True, slots=True)
class Counters:
    """One server's counters at one instant."""

    at: float  # time.monotonic()
    requests: float
    errors: float
    in_flight: float
    ready: bool
    buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count), +Inf last


def parse(text: str, at: float) -> Counters:
    """The counters in a /metrics answer; a sample it lacks counts as 0."""
    requests = errors = in_flight = 0.0
    ready = False
    buckets: list[tuple[float, float]] = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value_text = line.rpartition(" ")
        try:
            value = float(value_text)
        except ValueError:
            continue
        name, _, labels = name_labels.partition("{")
        if name == "mlform_requests_total":
            requests += value
        elif name == "mlform_request_errors_total":
            errors = value
        elif name == "mlform_requests_in_flight":
            in_flight = value
        elif name == "mlform_ready":
            ready = value == 1
        elif name == "mlform_request_duration_seconds_bucket":
            bound = labels.partition('le="')[2].partition('"')[0]
            buckets.append((math.inf if bound == "+Inf" else float(bound), value))
    return Counters(at, requests, errors, in_flight, ready, tuple(sorted(buckets)))


def scrape(url: str) -> Counters | None:
    """The counters of the server at `url` (http://127.0.0.1:PORT), or None when it does
    not answer within a couple of seconds."""
    host, _, port = url.removeprefix("http://").partition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=_SCRAPE_SECONDS)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        if response.status != 200:
            return None
        text = response.read(_MAX_METRICS_BYTES).decode("utf-8", errors="replace")
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()
    return parse(text, time.monotonic())


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The q-quantile of a cumulative histogram, interpolated in its bucket as
    Prometheus' histogram_quantile does; None without observations. A quantile in the
    +Inf bucket is the highest finite bound."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


@dataclass(frozen=True, slots=True)
class Live:
    """What one instance's server reports, as the endpoints page shows it."""

    answering: bool
    ready: bool = False
    requests: int = 0
    errors: int = 0
    in_flight: int = 0
    rate: float | None = None  # requests a second since the previous look; None: first look
    since: float | None = None  # seconds since the previous look
    latency: tuple[float | None, ...] = (None, None, None)  # p50, p95, p99 in seconds
    latency_of: str = ""  # "since the previous look" | "since it started" | ""

    def as_json(self) -> dict[str, Any]:
        return {
            "answering": self.answering,
            "ready": self.ready,
            "requests": self.requests,
            "errors": self.errors,
            "in_flight": self.in_flight,
            "rate": self.rate,
            "since": self.since,
            "latency_ms": [None if s is None else s * 1000 for s in self.latency],
            "latency_of": self.latency_of,
        }


class Looks:
    """Each instance's counters at the studio's previous look at it."""

    def __init__(self) -> None:
        self._previous: dict[str, Counters] = {}
        self._lock = threading.Lock()  # pages are answered on a pool of threads

    def live(self, key: str, now: Counters | None) -> Live:
        with self._lock:
            before = self._previous.pop(key, None)
            if now is not None:
                self._previous[key] = now
        if now is None:
            return Live(answering=False)
        if before is not None and (now.requests < before.requests or now.at <= before.at):
            before = None  # the server restarted: its counters began again
        rate = since = None
        latency: tuple[float | None, ...] = tuple(quantile(q, now.buckets) for q in _QUANTILES)
        latency_of = "since it started" if now.buckets and now.buckets[-1][1] else ""
        if before is not None:
            since = now.at - before.at
            rate = (now.requests - before.requests) / since
            lately = _difference(now.buckets, before.buckets)
            if lately and lately[-1][1] > 0:
                latency = tuple(quantile(q, lately) for q in _QUANTILES)
                latency_of = "since the previous look"
        return Live(
            True,
            now.ready,
            int(now.requests),
            int(now.errors),
            int(now.in_flight),
            rate,
            since,
            latency,
            latency_of,
        )

    def forget_others(self, prefix: str, keys: Iterable[str]) -> None:
        """Forget the instances whose key starts with `prefix` (one endpoint's) but is not
        in `keys` (those it has now): ended or replaced, they are never looked at again."""
        kept = set(keys)
        with self._lock:
            for key in [k for k in self._previous if k.startswith(prefix) and k not in kept]:
                del self._previous[key]


def _difference(
    now: Sequence[tuple[float, float]], before: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    if [b for b, _ in now] != [b for b, _ in before]:
        return []
    return [(bound, count - then) for (bound, count), (_, then) in zip(now, before, strict=True)]


@dataclass(frozen=True, slots=True)
class Captured:
    at: str
    request_id: str
    deployment: str
    inputs: str
    outputs: str


def captured(folder: Path, endpoint: str, rows: int) -> list[Captured]:
    """The latest `rows` requests `endpoint` captured under `folder` (the datastore's, or
    the outbox's, `captures/`), newest first: read from the newest few files of each
    deployment's newest day, so a year of captures costs what a day does."""
    files: list[str] = []
    for deployment in sorted(p for p in (folder / endpoint).glob("*") if p.is_dir()):
        days = sorted(p for p in deployment.glob("date=*") if p.is_dir())
        for day in reversed(days):
            found = sorted(p for p in day.glob("part-*.parquet") if not p.name.startswith("."))
            if found:
                files += [str(p) for p in found[-_SAMPLED_FILES:]]
                break
    if not files:
        return []
    with duckdb.connect() as con:
        found_rows = con.execute(
            "SELECT strftime(ts, '%Y-%m-%d %H:%M:%S'), request_id, deployment, inputs, outputs "
            "FROM read_parquet($files, union_by_name = true) ORDER BY ts DESC LIMIT $rows",
            {"files": files, "rows": rows},
        ).fetchall()
    return [
        Captured(str(at), str(request_id), str(deployment), _shown(inputs), _shown(outputs))
        for at, request_id, deployment, inputs, outputs in found_rows
    ]


def _shown(text: object) -> str:
    """A captured value as compact JSON, cut to what a table cell can show."""
    value = str(text)
    with contextlib.suppress(ValueError):
        value = json.dumps(json.loads(value), separators=(",", ":"))
    return value if len(value) <= _SHOWN_CHARS else value[:_SHOWN_CHARS] + "…"
