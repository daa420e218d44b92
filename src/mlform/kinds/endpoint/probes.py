"""Readiness and liveness over HTTP, as Azure ML's probes: a period, a timeout, and how
many failures (or successes) decide."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable

from mlform.kinds.endpoint.spec import Probe


def status(port: int, path: str, timeout: float) -> int | None:
    """The HTTP status of GET `path` on 127.0.0.1:`port`, or None if nothing answers."""
    answer = _get(port, path, timeout)
    return None if answer is None else answer[0]


def answering(port: int, path: str, header: str, timeout: float) -> str | None:
    """The value of `header` in a 200 answer to GET `path` on 127.0.0.1:`port`; None
    when nothing answers, or not with 200."""
    answer = _get(port, path, timeout)
    return answer[1].get(header.lower(), "") if answer is not None and answer[0] == 200 else None


def _get(port: int, path: str, timeout: float) -> tuple[int, dict[str, str]] | None:
    """GET `path` on 127.0.0.1:`port`: the status and headers (names lowercased), or None
    if nothing answers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    except OSError:
        return None
    finally:
        connection.close()


def wait_ready(
    port: int,
    probe: Probe,
    alive: Callable[[], bool],
    cancelled: threading.Event | None = None,
) -> str | None:
    """None once GET /ready has answered 200 `success_threshold` times in a row; else
    why not (the process ended, or the probe failed `failure_threshold` times)."""
    time.sleep(probe.initial_delay)
    failures = successes = 0
    while True:
        if cancelled is not None and cancelled.is_set():
            return "interrupted"
        code = status(port, "/ready", probe.timeout)
        if code == 200:
            successes += 1
            if successes >= probe.success_threshold:
                return None
        else:
            successes = 0
            failures += 1
            if not alive():
                return "it exited before it was ready"
            if failures >= probe.failure_threshold:
                seen = f"answered {code}" if code else "did not answer"
                return (
                    f"its readiness probe failed {failures} times (GET /ready {seen}; "
                    f"every {probe.period:g}s)"
                )
        time.sleep(probe.period)


def live(port: int, probe: Probe) -> bool:
    return status(port, "/health", probe.timeout) == 200


def hung(port: int, probe: Probe, cancelled: threading.Event | None = None) -> str | None:
    """None as soon as GET /health answers 200; else, once it has failed
    `failure_threshold` times in a row, why the instance is taken for hung. As Azure ML's
    liveness probe, which restarts the container then."""
    for failures in range(1, probe.failure_threshold + 1):
        code = status(port, "/health", probe.timeout)
        if code == 200:
            return None
        if failures == probe.failure_threshold or (cancelled is not None and cancelled.is_set()):
            seen = f"answered {code}" if code else f"did not answer within {probe.timeout:g}s"
            return (
                f"its liveness probe failed {failures} times in a row: GET /health {seen}, "
                f"every {probe.period:g}s"
            )
        time.sleep(probe.period)
    return None
