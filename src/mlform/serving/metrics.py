"""What GET /metrics reports about POST /score, in Prometheus' text format (0.0.4).

    mlform_requests_total{code}          scoring requests answered, by HTTP status
    mlform_request_errors_total          those answered with a 5xx: the deployment failed
    mlform_request_duration_seconds      a histogram of the time to answer one
    mlform_requests_in_flight            scoring requests being answered now
    mlform_ready                         1 once init() has succeeded, else 0
    mlform_batched_requests_total        requests answered by a run() call they shared
    mlform_batch_calls_total             those calls (requests ÷ calls: the mean batch)

The last two only for a script that sets MLFORM_BATCHABLE (see `batching`).

Written by hand rather than with prometheus_client, which deployment images do not
hold. Recording a request is a few integer updates and one bisect; all of them run on
the event loop's thread, so nothing is locked. Only POST /score is counted: health
probes would drown it.
"""

from __future__ import annotations

from bisect import bisect_left

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Counters of scoring requests, as one server process has seen them."""

    def __init__(self) -> None:
        self.codes: dict[int, int] = {}
        self.errors = 0
        self.in_flight = 0
        # One count per bucket, the last for +Inf; cumulated only when rendered.
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.seconds = 0.0

    def observe(self, status: int, seconds: float) -> None:
        """One answered request: its status and how long it took."""
        codes = self.codes
        codes[status] = codes.get(status, 0) + 1
        if status >= 500:
            self.errors += 1
        # bisect_left: a duration equal to a bound belongs to that bound's bucket (le).
        self.buckets[bisect_left(BUCKETS, seconds)] += 1
        self.seconds += seconds

    def render(self, ready: bool, batched: tuple[int, int] | None = None) -> bytes:
        """The exposition text, with `ready` as the mlform_ready gauge and `batched`, the
        requests that shared run() calls and those calls, if batching is on."""
        duration = "mlform_request_duration_seconds"
        lines = [
            "# HELP mlform_requests_total Scoring requests answered, by HTTP status code.",
            "# TYPE mlform_requests_total counter",
            *(
                f'mlform_requests_total{{code="{code}"}} {n}'
                for code, n in sorted(self.codes.items())
            ),
            "# HELP mlform_request_errors_total Scoring requests answered with a 5xx status.",
            "# TYPE mlform_request_errors_total counter",
            f"mlform_request_errors_total {self.errors}",
            f"# HELP {duration} Time to answer a scoring request.",
            f"# TYPE {duration} histogram",
        ]
        total = 0
        for bound, n in zip((*map(repr, BUCKETS), "+Inf"), self.buckets, strict=True):
            total += n
            lines.append(f'{duration}_bucket{{le="{bound}"}} {total}')
        lines += [
            f"{duration}_sum {self.seconds!r}",
            f"{duration}_count {total}",
            "# HELP mlform_requests_in_flight Scoring requests being answered now.",
            "# TYPE mlform_requests_in_flight gauge",
            f"mlform_requests_in_flight {self.in_flight}",
            "# HELP mlform_ready 1 once the scoring script's init() has succeeded, else 0.",
            "# TYPE mlform_ready gauge",
            f"mlform_ready {int(ready)}",
        ]
        if batched is not None:
            requests, calls = batched
            lines += [
                "# HELP mlform_batched_requests_total Scoring requests answered by a shared "
                "run() call.",
                "# TYPE mlform_batched_requests_total counter",
                f"mlform_batched_requests_total {requests}",
                "# HELP mlform_batch_calls_total run() calls shared by scoring requests.",
                "# TYPE mlform_batch_calls_total counter",
                f"mlform_batch_calls_total {calls}",
            ]
        return ("\n".join(lines) + "\n").encode("ascii")
