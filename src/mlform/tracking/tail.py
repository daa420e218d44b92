"""Follow what a running script appends: new metric points and log lines, for live progress.

Each call returns only whole lines written since the previous call; a line still being
written is left for the next call, so a reader never shows half a record. Live progress
reads only the run's own metrics.csv (not its children's): enough to show how it goes.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import NamedTuple

from mlform.tracking.protocol import METRICS

MAX_READ = 8 * 1024 * 1024
"""The most one call reads, so a reader that fell behind catches up in bounded steps."""


class LineTail:
    """The complete lines appended to `path` since the last call to `lines`."""

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path = path
        self.offset = offset

    def lines(self) -> list[str]:
        try:
            with self.path.open("rb") as file:
                file.seek(self.offset)
                data = file.read(MAX_READ)
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        if end == 0:
            if len(data) < MAX_READ:
                return []
            end = len(data)  # one line longer than a whole read: hand it over in pieces
        self.offset += end
        text = data[:end].decode("utf-8", errors="replace")
        lines = text.split("\n")
        if text.endswith("\n"):
            lines.pop()
        return [line.removesuffix("\r") for line in lines]


class MetricPoint(NamedTuple):
    key: str
    step: int
    ts: int  # milliseconds since the epoch
    value: float


class Tail:
    """The metric points a run logged since the last call to `points` or `latest`."""

    def __init__(self, run_dir: Path) -> None:
        self._tail = LineTail(run_dir / METRICS)

    def points(self) -> list[MetricPoint]:
        found: list[MetricPoint] = []
        for row in csv.reader(self._tail.lines()):
            try:
                key, step, ts, value = row
                found.append(MetricPoint(key, int(step), int(ts), float(value)))
            except ValueError:
                continue  # not a point (a line cut by a killed writer)
        return found

    def latest(self) -> dict[str, float]:
        """The last value of each key among the new points."""
        return {point.key: point.value for point in self.points()}
