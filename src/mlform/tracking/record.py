"""A finished run's folder, written into the state in the transaction that records its end.

`TrackingRecord` is a `mlform.state.records.Record`: the executor writes it right after
the run's own row, so a run and what it logged commit together. Writing it again (a
re-ingest) replaces what it wrote before instead of doubling it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlform.state.runs import FINISHED, RunRow
from mlform.tracking.ingest import RunData, load_metrics, read_run

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True, slots=True)
class TrackingRecord:
    """Params, tags, metrics and artifacts of run `run_id` and its children; the children's
    own rows in `runs` (experiment and compute are the parent's)."""

    run_id: str
    run_dir: Path

    def write(self, con: duckdb.DuckDBPyConnection, apply_id: str) -> None:
        data = read_run(self.run_dir)
        parent = con.execute(
            "select experiment, compute, status from runs where id = ?", [self.run_id]
        ).fetchone()
        experiment, compute, parent_status = parent or ("Default", "local", None)
        family = list(_family(self.run_id, None, data))
        ids = [run_id for run_id, _, _ in family]
        for table in ("params", "tags", "metrics", "artifacts"):
            con.execute(f"delete from {table} where list_contains(?, run_id)", [ids])
        _insert(con, "params", [(i, k, v) for i, _, d in family for k, v in d.params.items()])
        _insert(con, "tags", [(i, k, v) for i, _, d in family for k, v in d.tags.items()])
        _insert(con, "artifacts", [(i, a.name, a.size) for i, _, d in family for a in d.artifacts])
        load_metrics(con, self.run_id, self.run_dir)
        con.execute("delete from runs where list_contains(?, id)", [ids[1:]])
        for run_id, parent_id, child in family[1:]:
            RunRow(
                id=run_id,
                experiment=experiment,
                name=child.name or run_id,
                status=_final_status(child.status, parent_status),
                compute=compute,
                run_dir=str(child.dir or self.run_dir),
                parent_id=parent_id,
                created_at=_seconds(child.started_ms),
                started_at=_seconds(child.started_ms),
                ended_at=_seconds(child.ended_ms),
            ).write(con, apply_id)


def _family(
    run_id: str, parent_id: str | None, data: RunData
) -> Iterator[tuple[str, str | None, RunData]]:
    """(id, parent id, data) of the run and every run below it, parents first."""
    yield run_id, parent_id, data
    for child in data.children:
        if child.id is not None:
            yield from _family(child.id, run_id, child)


def _final_status(status: str | None, parent_status: str | None) -> str:
    """A child still "running" when its process has ended was cut off with it."""
    if status in FINISHED:
        return str(status)
    if parent_status in ("canceled", "timed_out"):
        return str(parent_status)
    return "failed"


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


def _insert(
    con: duckdb.DuckDBPyConnection, table: str, rows: Sequence[tuple[str, str, str | int]]
) -> None:
    """One statement for all rows: a folder upload can name thousands of files."""
    if rows:
        columns = [list(column) for column in zip(*rows, strict=True)]
        con.execute(f"insert into {table} select unnest(?), unnest(?), unnest(?)", columns)
