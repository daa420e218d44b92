"""A metric's history as a chart draws it: at most a few points per pixel.

A history of 200,000 points drawn on a chart 1,000 pixels wide shows, in each pixel's
column, where the line enters, where it leaves, and how low and how high it goes. So the
state is asked for exactly those four points of each bucket of the x axis (the M4
aggregation: first, last, lowest and highest), which draws the same picture as every
point, spikes included, from a few thousand. DuckDB computes the buckets where the
points are; only what is drawn reaches Python and the browser. The full history stays
downloadable as CSV.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mlform.state.store import Store

Axis = Literal["step", "time"]
MAX_POINTS = 8_000  # the most a chart is sent, whatever it asks for


@dataclass(frozen=True, slots=True)
class Series:
    key: str
    x: list[float]  # steps, or milliseconds since the epoch
    y: list[float]
    total: int  # points in the full history

    @property
    def reduced(self) -> bool:
        return len(self.x) < self.total


def series(store: Store, run_id: str, key: str, axis: Axis = "step", points: int = 2_000) -> Series:
    """The history of `key` in run `run_id`, reduced to at most about `points` points."""
    points = max(16, min(points, MAX_POINTS))
    x = "step" if axis == "step" else "ts"
    (total, low, high), *_ = store.query(
        f"select count(*), min({x}), max({x}) from metrics where run_id = ? and key = ?",
        [run_id, key],
    )
    if total <= points:
        rows = store.query(
            f"select {x}, value from metrics where run_id = ? and key = ? order by {x}, step, ts",
            [run_id, key],
        )
        return Series(key, [float(r[0]) for r in rows], [float(r[1]) for r in rows], int(total))
    buckets = points // 4
    width = (high - low + 1) / buckets
    rows = store.query(
        f"""
        select min({x}), arg_min(value, {x}), max({x}), arg_max(value, {x}),
               arg_min({x}, value), min(value), arg_max({x}, value), max(value)
        from metrics
        where run_id = ? and key = ?
        group by floor(({x} - ?) / ?)
        order by 1
        """,
        [run_id, key, low, width],
    )
    xs: list[float] = []
    ys: list[float] = []
    for first_x, first_y, last_x, last_y, low_x, low_y, high_x, high_y in rows:
        kept = sorted({(first_x, first_y), (low_x, low_y), (high_x, high_y), (last_x, last_y)})
        for px, py in kept:
            xs.append(float(px))
            ys.append(float(py))
    return Series(key, xs, ys, int(total))
