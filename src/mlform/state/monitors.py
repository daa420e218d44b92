"""What monitor runs record (table `monitor_results`, migration 0013_monitor_results,
beside the run's row in `runs` and its values in `metrics`): each value with the
threshold it was held to, and the history `monitors show` charts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from mlform.state.runs import RunRow
from mlform.state.store import Store

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True, slots=True)
class Value:
    signal: str
    signal_type: str  # data_drift | prediction_drift | data_quality | model_performance
    feature: str | None  # None: a value of the whole signal (no data in the window)
    metric: str
    value: float | None
    threshold: float | None
    breached: bool
    note: str | None = None

    @property
    def key(self) -> str:
        """Its metric key in the run: `drift.sepal_length.jensen_shannon_distance`."""
        return ".".join(p for p in (self.signal, self.feature, self.metric) if p)

    @property
    def where(self) -> str:
        """What it is a value of: `drift.sepal_length`, or the signal for the whole one."""
        return f"{self.signal}.{self.feature}" if self.feature else self.signal


@dataclass(frozen=True, slots=True)
class MonitorRun:
    """A monitor run's whole record, written in one transaction."""

    run: RunRow
    monitor: str  # its address
    start: datetime
    end: datetime
    values: Sequence[Value]
    # the breached window's production rows, kept for its on_breach job (a CSV file)
    production_data: str | None = None

    def write(self, con: duckdb.DuckDBPyConnection, apply_id: str) -> None:
        self.run.write(con, apply_id)
        ms = int((self.run.ended_at or 0) * 1000)
        con.executemany(
            "insert into metrics values (?, ?, 0, ?, ?)",
            [[self.run.id, v.key, ms, v.value] for v in self.values if v.value is not None],
        )
        con.executemany(
            "insert into monitor_results values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                [
                    self.run.id,
                    self.monitor,
                    v.signal,
                    v.signal_type,
                    v.feature,
                    v.metric,
                    v.value,
                    v.threshold,
                    v.breached,
                    self.start,
                    self.end,
                    v.note,
                ]
                for v in self.values
            ],
        )


@dataclass(frozen=True, slots=True)
class Recorded:
    run_id: str
    end: datetime
    values: list[Value]

    def breaches(self) -> list[str]:
        """Where the run found drift (or another breach): `drift.petal_length`, …"""
        return sorted({v.where for v in self.values if v.breached})


def history(store: Store, monitor: str, limit: int = 20) -> list[Recorded]:
    """The latest runs of `monitor`, newest first, each with its values."""
    runs = store.query(
        "select run_id, max(window_end) from monitor_results where monitor = ? "
        "group by run_id order by max(window_end) desc limit ?",
        [monitor, limit],
    )
    found = []
    for run_id, end in runs:
        rows = store.query(
            "select signal, signal_type, feature, metric, value, threshold, breached, note "
            "from monitor_results where run_id = ? order by signal, feature, metric",
            [run_id],
        )
        found.append(Recorded(run_id, end, [Value(*row) for row in rows]))
    return found


def last_end(store: Store, monitor: str) -> datetime | None:
    """Where the latest run's window ended: the next run's default window starts there."""
    rows = store.query("select max(window_end) from monitor_results where monitor = ?", [monitor])
    return rows[0][0] if rows and rows[0][0] is not None else None
