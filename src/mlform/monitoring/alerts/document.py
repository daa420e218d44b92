"""The alert itself: `Alert`, its `Signal`s and their `Breach`es, and the JSON document
that receivers parse (drawn in `Alert`'s docstring). Both channels send this document,
so it is defined once, apart from any I/O.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from mlform.errors import printable

SCHEMA = "mlform.alert/1"


@dataclass(frozen=True, slots=True)
class Breach:
    """One metric over its threshold; `feature` is None for a signal over the whole
    model (performance, say). Which side of the threshold breaches depends on the
    metric, so the value and the threshold are given, not a comparison."""

    metric: str
    value: float
    threshold: float
    feature: str | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.value) and math.isfinite(self.threshold)):
            raise ValueError(f"{self.metric}: value and threshold must be finite numbers")


@dataclass(frozen=True, slots=True)
class Signal:
    """A monitor's signal, named as in its YAML, of an Azure ML type (`data_drift`,
    `prediction_drift`, `data_quality`, ...), with the breaches it found."""

    name: str
    type: str
    breaches: tuple[Breach, ...]

    def __post_init__(self) -> None:
        if not self.breaches:
            raise ValueError(f"signal {self.name}: an alert names at least one breach")


@dataclass(frozen=True, slots=True)
class Alert:
    """What a monitor's run found in one window of production data.

    The JSON document (`to_json`), for receivers to parse, with its keys in this order:

        {
          "schema": "mlform.alert/1",
          "monitor": "iris-drift",
          "endpoint": "iris",
          "deployment": "blue",                  (null: the endpoint as a whole)
          "run_id": "...",                       (the run that computed the signals)
          "window": {"start": "2024-05-01T00:00:00Z", "end": "2024-05-02T00:00:00Z"},
          "signals": [
            {"name": "drift", "type": "data_drift", "breaches": [
              {"feature": "petal_length",        (null: a metric of the whole model)
               "metric": "jensen_shannon_distance", "value": 0.31, "threshold": 0.1}
            ]}
          ],
          "summary": "..."                        (the plain text of the email's body)
        }

    Times are ISO 8601 in UTC with a `Z`. A later mlform adds keys, never changes the
    meaning of one, and changes `schema` when it must.
    """

    monitor: str
    endpoint: str
    deployment: str | None
    signals: tuple[Signal, ...]
    start: datetime
    end: datetime
    run_id: str

    def __post_init__(self) -> None:
        if not self.signals:
            raise ValueError(f"monitor {self.monitor}: an alert names at least one signal")
        for moment in (self.start, self.end):
            if moment.utcoffset() is None:
                raise ValueError(f"monitor {self.monitor}: the window's times need a zone")
        if self.end < self.start:
            raise ValueError(f"monitor {self.monitor}: the window ends before it starts")

    @property
    def target(self) -> str:
        """The monitored resource's address, as `mlform plan` shows it."""
        if self.deployment is None:
            return f"endpoint/{self.endpoint}"
        return f"deployment/{self.endpoint}/{self.deployment}"

    @property
    def subject(self) -> str:
        """`[mlform] data drift on endpoint/iris: 2 features breached`."""
        kinds = _listing(list(dict.fromkeys(s.type.replace("_", " ") for s in self.signals)))
        breaches = [b for s in self.signals for b in s.breaches]
        features = len({b.feature for b in breaches if b.feature is not None})
        metrics = sum(1 for b in breaches if b.feature is None)
        counts = [_count(features, "feature"), _count(metrics, "metric")]
        counted = " and ".join(c for c in counts if c)
        return printable(f"[mlform] {kinds} on {self.target}: {counted} breached")

    @property
    def summary(self) -> str:
        """The plain-text account, without links: mail clients and chat rooms differ in
        what they make of them, and the receiver knows where its own pages are."""
        lines = [
            f"Monitor {self.monitor} found breaches on {self.target}",
            f"in the window {_iso(self.start)} to {_iso(self.end)} (run {self.run_id}).",
        ]
        for signal in self.signals:
            lines += ["", f"{signal.type.replace('_', ' ')} (signal {signal.name}):"]
            for b in signal.breaches:
                what = f"{b.feature}: {b.metric}" if b.feature is not None else b.metric
                lines.append(f"  {what} = {b.value:.6g} (threshold {b.threshold:.6g})")
        return "\n".join(lines) + "\n"

    def to_json(self) -> bytes:
        """The JSON document of the class docstring, as UTF-8: the bytes a webhook signs."""
        document = {
            "schema": SCHEMA,
            "monitor": self.monitor,
            "endpoint": self.endpoint,
            "deployment": self.deployment,
            "run_id": self.run_id,
            "window": {"start": _iso(self.start), "end": _iso(self.end)},
            "signals": [
                {
                    "name": s.name,
                    "type": s.type,
                    "breaches": [
                        {
                            "feature": b.feature,
                            "metric": b.metric,
                            "value": b.value,
                            "threshold": b.threshold,
                        }
                        for b in s.breaches
                    ],
                }
                for s in self.signals
            ],
            "summary": self.summary,
        }
        text = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False)
        return (text + "\n").encode("utf-8")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _listing(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _count(n: int, noun: str) -> str:
    return "" if n == 0 else f"{n} {noun}" if n == 1 else f"{n} {noun}s"
