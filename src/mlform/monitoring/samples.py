"""Counting a numerical feature's two samples in DuckDB so that the drift metrics
(`metrics` holds their formulas) get the Kolmogorov-Smirnov statistic D and the
Wasserstein-1 distance exactly, and the histogram; Python sees counts, never rows. Kept
apart from `metrics`: this says how to count exactly, that what each metric is.

The exact D and Wasserstein distance need the two samples merged in order. Rather than
sort them, a first read counts both samples in equal-width buckets (about one per 32
values, at most 2^16, so that the counts stay in cache), which settle D and the distance
everywhere but in the few buckets where the gap between the two distribution functions may
reach D or change sign. When those hold many values (undrifted data of millions of rows), a
second read splits them finer; a last read counts the distinct values of the buckets still
unsettled. The histogram comes from the same buckets: each lies inside one bin but those a
bin's edge touches, whose values numpy.histogram bins one by one.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
from numpy.typing import NDArray

from mlform.monitoring.names import KOLMOGOROV_SMIRNOV, WASSERSTEIN
from mlform.monitoring.relations import _array, _run

_MAX_BUCKETS = 1 << 16
# at most how many finer buckets a split makes (it counts only the unsettled values)
_MAX_SPLIT = 1 << 18


@dataclass(frozen=True, slots=True)
class _Sample:
    """A numerical feature's finite values on both sides, as SQL: `v` the value, `s` true
    for the reference."""

    reference: str
    production: str
    ref_value: str
    prod_value: str
    n_r: int
    n_p: int

    def sql(self, *columns: str) -> str:
        union = (
            f"SELECT {self.ref_value} AS v, true AS s FROM {self.reference} UNION ALL "
            f"SELECT {self.prod_value}, false FROM {self.production}"
        )
        return f"(SELECT v, s{''.join(', ' + c for c in columns)} FROM ({union}) WHERE isfinite(v))"


def _bucket_count(values: int) -> int:
    """A power of two near one bucket per 32 values, at most _MAX_BUCKETS: few enough
    that their counts stay in cache, fine enough that few values are left unsettled."""
    power = math.ceil(math.log2(max(values, 1) / 32))
    return 1 << min(max(power, 0), _MAX_BUCKETS.bit_length() - 1)


def _split_shift(rows: int, parents: int) -> int:
    """Into how many finer buckets (a power of two) to split each unsettled bucket: about
    32 values in each, and no more than _MAX_SPLIT in all."""
    shift = max(math.ceil(math.log2(rows / parents / 32)), 1)
    while shift > 1 and parents << shift > _MAX_SPLIT:
        shift -= 1
    return shift


@dataclass(frozen=True, slots=True)
class _Grid:
    """`count` equal-width buckets across [low, high], named `name` in SQL: bucket i
    holds [i·width + low, (i + 1)·width + low), the last one closed. The bucket is
    monotone in the value, so equal values share one and buckets are ordered as their
    values; a finer grid's buckets split a coarser one's exactly (its scale is a power
    of two times larger)."""

    name: str
    low: float
    high: float
    count: int

    @property
    def width(self) -> float:
        return (self.high - self.low) / self.count

    @property
    def bucket(self) -> str:
        if self.count == 1:
            return f"0 AS {self.name}"
        scale, last = f"$scale_{self.name}", f"$last_{self.name}"
        return f"least(CAST(trunc((v - $low) * {scale}) AS BIGINT), {last}) AS {self.name}"

    def params(self) -> dict[str, object]:
        span = self.high - self.low
        return {
            "low": self.low,
            f"width_{self.name}": self.width,
            f"scale_{self.name}": self.count / span if span else 0.0,
            f"last_{self.name}": self.count - 1,
        }

    def start(self, buckets: NDArray[np.int64]) -> NDArray[np.float64]:
        """The lower edge of each of `buckets`, as SQL computes it."""
        return np.asarray(buckets * self.width + self.low, dtype=np.float64)

    def finer(self, shift: int) -> _Grid:
        return _Grid("f", self.low, self.high, self.count << shift)

    def straddling(self, bins: int) -> NDArray[np.bool_]:
        """The buckets that an inner edge of `bins` equal-width bins across the grid
        (numpy.histogram's edges) touches, within a rounding error: only their values
        need binning one by one; every other bucket lies inside one bin."""
        near = np.zeros(self.count, dtype=bool)
        edges = np.linspace(self.low, self.high, bins + 1)[1:-1]
        # far above the few units in the last place a bucket's or an edge's rounding moves
        error = max(abs(self.low), abs(self.high)) * 1e-12
        first = np.floor((edges - error - self.low) / self.width).astype(np.int64)
        last = np.floor((edges + error - self.low) / self.width).astype(np.int64)
        if np.sum(last - first + 1) >= self.count:
            return ~near
        for a, b in zip(
            np.clip(first, 0, self.count - 1), np.clip(last, 0, self.count - 1), strict=True
        ):
            near[a : b + 1] = True
        return near


@dataclass(frozen=True, slots=True)
class _Tally:
    """Both samples counted in some buckets of a grid (`ids`, in order): each sample's
    count, its sum of (value − bucket edge), and the reference's sum of squares of that."""

    ids: NDArray[np.int64]
    count_r: NDArray[np.int64]
    count_p: NDArray[np.int64]
    offset_r: NDArray[np.float64]
    offset_p: NDArray[np.float64]
    squares_r: NDArray[np.float64]

    def reference_std(self, grid: _Grid, n: int) -> float:
        """The reference's sample standard deviation, combining each bucket's count,
        sum and sum of squares (Chan's parallel variance)."""
        if n < 2:
            return 0.0
        some = self.count_r > 0
        counts, offsets = self.count_r[some], self.offset_r[some]
        means = grid.start(self.ids[some]) + offsets / counts
        within = np.maximum(self.squares_r[some] - offsets * offsets / counts, 0.0)
        mean = float(np.sum(counts * means) / n)
        return math.sqrt(float(np.sum(within) + np.sum(counts * (means - mean) ** 2)) / (n - 1))


def _tally(
    con: duckdb.DuckDBPyConnection,
    sample: _Sample,
    grid: _Grid,
    ids: NDArray[np.int64],
    parent: _Grid | None = None,
    parents: NDArray[np.int64] | None = None,
) -> _Tally:
    """Count `sample` in `grid`'s buckets `ids`: all its values, or those in `parents`,
    buckets of the coarser grid `parent`."""
    g = grid.name
    columns, where, params = [grid.bucket], "", grid.params()
    if parent is not None and parents is not None:
        columns.append(parent.bucket)
        where = f"WHERE {parent.name} IN (SELECT unnest($parents))"
        params |= parent.params() | {"parents": parents.tolist()}
    counted = _run(
        con,
        f"""SELECT {g}, s, count(*) AS n, sum(o) AS total, sum(o * o) AS squares FROM (
                SELECT {g}, s, v - ({g} * $width_{g} + $low) AS o
                FROM {sample.sql(*columns)} {where})
            GROUP BY {g}, s""",
        params,
    )
    at = np.searchsorted(ids, _array(counted, g, np.int64))
    s = _array(counted, "s", np.bool_)

    def dense(column: str, side: NDArray[np.bool_]) -> NDArray[np.float64]:
        weights = _array(counted, column, np.float64)[side]
        return np.bincount(at[side], weights=weights, minlength=ids.size).astype(np.float64)

    return _Tally(
        ids,
        dense("n", s).astype(np.int64),
        dense("n", ~s).astype(np.int64),
        dense("total", s),
        dense("total", ~s),
        dense("squares", s),
    )


@dataclass(frozen=True, slots=True)
class _Cells:
    """Consecutive intervals across the samples' range, in order, each a bucket of the
    grid or of a finer one, with both samples' counts and sums in it. `key` is a cell's
    first bucket in the finest grid.

    With F and G the two empirical distribution functions, let gap = F − G just left of
    a cell: inside the cell it stays within [gap − q, gap + p], p and q the cell's shares
    of each sample. Where that interval holds no sign change, the integral of |F − G|
    over the cell is |∫ (F − G)|, which the sums give; where it cannot exceed the largest
    gap met at a cell's edge, the cell cannot hold the Kolmogorov-Smirnov statistic. The
    other cells are split, or read value by value."""

    key: NDArray[np.int64]
    fine: NDArray[np.bool_]
    start: NDArray[np.float64]
    end: NDArray[np.float64]
    count_r: NDArray[np.int64]
    count_p: NDArray[np.int64]
    offset_r: NDArray[np.float64]
    offset_p: NDArray[np.float64]
    n_r: int
    n_p: int
    before_r: NDArray[np.int64]  # values in the cells before
    before_p: NDArray[np.int64]
    gap: NDArray[np.float64]  # F − G just left of the cell, as ks_2samp computes it

    @classmethod
    def build(
        cls,
        key: NDArray[np.int64],
        fine: NDArray[np.bool_],
        start: NDArray[np.float64],
        end: NDArray[np.float64],
        counts: tuple[
            NDArray[np.int64], NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]
        ],
        n_r: int,
        n_p: int,
    ) -> _Cells:
        count_r, count_p, offset_r, offset_p = counts
        before_r, before_p = np.cumsum(count_r) - count_r, np.cumsum(count_p) - count_p
        gap = before_r / n_r - before_p / n_p
        return cls(
            key, fine, start, end, count_r, count_p, offset_r, offset_p, n_r, n_p,
            before_r, before_p, gap,
        )  # fmt: skip

    @classmethod
    def of(cls, grid: _Grid, tally: _Tally, n_r: int, n_p: int) -> _Cells:
        counts = (tally.count_r, tally.count_p, tally.offset_r, tally.offset_p)
        start, end = grid.start(tally.ids), grid.start(tally.ids + 1)
        return cls.build(
            tally.ids, np.zeros(tally.ids.size, dtype=bool), start, end, counts, n_r, n_p
        )

    def split(
        self,
        chosen: NDArray[np.bool_],
        read: NDArray[np.bool_],
        fine: _Grid,
        tally: _Tally,
        shift: int,
    ) -> tuple[_Cells, NDArray[np.bool_]]:
        """These cells with the `chosen` ones replaced by `tally`'s finer buckets, and
        `read` carried over to them (no finer bucket is read yet)."""
        kept = ~chosen
        key = np.r_[self.key[kept] << shift, tally.ids]
        order = np.argsort(key, kind="stable")

        def merged(old: NDArray[Any], new: NDArray[Any]) -> NDArray[Any]:
            return np.concatenate([old[kept], new])[order]

        counts = (
            merged(self.count_r, tally.count_r),
            merged(self.count_p, tally.count_p),
            merged(self.offset_r, tally.offset_r),
            merged(self.offset_p, tally.offset_p),
        )
        cells = _Cells.build(
            key[order],
            merged(self.fine, np.ones(tally.ids.size, dtype=bool)),
            merged(self.start, fine.start(tally.ids)),
            merged(self.end, fine.start(tally.ids + 1)),
            counts,
            self.n_r,
            self.n_p,
        )
        return cells, merged(read, np.zeros(tally.ids.size, dtype=bool))

    @property
    def occupied(self) -> NDArray[np.bool_]:
        return (self.count_r + self.count_p) > 0

    def rows(self, chosen: NDArray[np.bool_]) -> int:
        return int(self.count_r[chosen].sum() + self.count_p[chosen].sum())

    @property
    def edge_gap(self) -> float:
        """The largest |F − G| at a cell's edge: each is met just after some value."""
        return float(np.abs(self.gap).max())

    def unsettled(self, wanted: Collection[str]) -> NDArray[np.bool_]:
        """The occupied cells whose values the wanted metrics need one by one."""
        unsettled = np.zeros(self.key.size, dtype=bool)
        if WASSERSTEIN in wanted:
            # in integers, gap × n_r n_p: no rounding decides a sign
            scaled = self.before_r * self.n_p - self.before_p * self.n_r
            low, high = scaled - self.count_p * self.n_r, scaled + self.count_r * self.n_p
            unsettled |= (low < 0) & (high > 0)
        if KOLMOGOROV_SMIRNOV in wanted:
            lowest = np.abs(self.gap - self.count_p / self.n_p)
            highest = np.abs(self.gap + self.count_r / self.n_r)
            unsettled |= np.maximum(lowest, highest) > self.edge_gap
        return unsettled & self.occupied

    def settled_integral(self, settled: NDArray[np.bool_]) -> float:
        """∫ |F − G| over the `settled` cells, where F − G keeps its sign."""
        width = self.end - self.start
        inside_r = (self.count_r * width - self.offset_r) / self.n_r
        inside_p = (self.count_p * width - self.offset_p) / self.n_p
        integral = width * self.gap + inside_r - inside_p
        return float(np.abs(integral[settled]).sum())


def _histograms(
    grid: _Grid, tally: _Tally, bins: int, straddling: NDArray[np.bool_], values: _Values
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Each sample's numpy.histogram in `bins` bins across the grid: a bucket inside a bin
    counts there, a `straddling` one's values are binned one by one."""
    edges = np.linspace(grid.low, grid.high, bins + 1)
    middle = grid.start(tally.ids) + grid.width / 2
    inside = np.clip(np.searchsorted(edges, middle, side="right") - 1, 0, bins - 1)
    whole = ~straddling
    hist_r = np.bincount(inside[whole], weights=tally.count_r[whole], minlength=bins)
    hist_p = np.bincount(inside[whole], weights=tally.count_p[whole], minlength=bins)
    one_by_one = straddling[values.b]
    across = (grid.low, grid.high) if grid.high > grid.low else None
    v = values.v[one_by_one]
    hist_r = hist_r + np.histogram(v, bins, across, weights=values.r[one_by_one])[0]
    hist_p = hist_p + np.histogram(v, bins, across, weights=values.p[one_by_one])[0]
    return hist_r.astype(np.float64), hist_p.astype(np.float64)


@dataclass(frozen=True, slots=True)
class _Values:
    """The distinct values of some cells, in order: each one's bucket in the grid (`b`),
    its cell, and each sample's count of it."""

    v: NDArray[np.float64]
    b: NDArray[np.int64]
    cell: NDArray[np.int64]
    r: NDArray[np.int64]
    p: NDArray[np.int64]

    @classmethod
    def read(
        cls,
        con: duckdb.DuckDBPyConnection,
        sample: _Sample,
        grid: _Grid,
        fine: _Grid | None,
        cells: _Cells,
        chosen: NDArray[np.bool_],
    ) -> _Values:
        chosen = chosen & cells.occupied
        if not chosen.any():
            empty = np.zeros(0, dtype=np.int64)
            return cls(np.zeros(0), empty, empty, empty, empty)
        columns = [grid.bucket] if fine is None else [grid.bucket, fine.bucket]
        shift = 0 if fine is None else (fine.count // grid.count).bit_length() - 1
        params = grid.params() | (fine.params() if fine else {})
        params["direct"] = (cells.key[chosen & ~cells.fine] >> shift).tolist()
        params["finer"] = cells.key[chosen & cells.fine].tolist()
        where = "WHERE b IN (SELECT unnest($direct))"
        if fine is not None:
            where += " OR f IN (SELECT unnest($finer))"
        elif bool(np.all(chosen | ~cells.occupied)):
            where = ""
        finest = "b" if fine is None else "f"
        rows = _run(
            con,
            f"""SELECT v, b, {finest} AS k, count_if(s) AS r, count_if(NOT s) AS p
                FROM {sample.sql(*columns)} {where}
                GROUP BY v, b, k ORDER BY v""",
            params,
        )
        key = _array(rows, "k", np.int64)
        return cls(
            _array(rows, "v", np.float64),
            _array(rows, "b", np.int64),
            np.searchsorted(cells.key, key, side="right") - 1,
            _array(rows, "r", np.int64),
            _array(rows, "p", np.int64),
        )

    def _after(self, cells: _Cells) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        """F − G just right of each value, and whether a value is its cell's first."""
        first = np.r_[True, self.cell[1:] != self.cell[:-1]]
        group = np.cumsum(first) - 1
        starts = np.flatnonzero(first)
        cum_r, cum_p = np.cumsum(self.r), np.cumsum(self.p)
        seen_r = cells.before_r[self.cell] + cum_r - (cum_r - self.r)[starts][group]
        seen_p = cells.before_p[self.cell] + cum_p - (cum_p - self.p)[starts][group]
        return seen_r / cells.n_r - seen_p / cells.n_p, first

    def largest_gap(self, cells: _Cells) -> float:
        if self.v.size == 0:
            return 0.0
        return float(np.abs(self._after(cells)[0]).max())

    def integral(self, cells: _Cells) -> float:
        """∫ |F − G| over these values' cells: from the cell's edge to its first value,
        between values, and from its last value to the cell's end."""
        if self.v.size == 0:
            return 0.0
        after, first = self._after(cells)
        last = np.r_[first[1:], True]
        following = np.where(last, cells.end[self.cell], np.r_[self.v[1:], 0.0])
        leading = np.abs(cells.gap[self.cell[first]]) * (
            self.v[first] - cells.start[self.cell[first]]
        )
        return float(np.sum(np.abs(after) * (following - self.v)) + np.sum(leading))
