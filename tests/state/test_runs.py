"""Run rows: listed newest first, in the order they were recorded when the clock ties."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import duckdb

from mlform.runs import children, list_runs
from mlform.state.runs import RunRow
from mlform.state.store import Store

TICK = 1_764_000_000.0  # every run below is created at this same instant


def _row(run_id: str, parent_id: str | None = None) -> RunRow:
    return RunRow(
        id=run_id,
        experiment="exp",
        name=run_id,
        status="queued",
        compute="local",
        run_dir=f"runs/{run_id}",
        parent_id=parent_id,
        created_at=TICK,
    )


def test_runs_created_within_one_tick_keep_their_order(tmp_path: Path) -> None:
    state = tmp_path / "state.duckdb"
    # Ids sort against the order they are recorded in, as random ids may.
    ids = ["run_c", "run_a", "run_b"]
    with Store.open(state, "test", write=True) as store:
        for run_id in ids:
            store.write("apply1", [_row(run_id)])
        # Rewriting a run (its status as it goes) keeps its place.
        store.write("apply1", [replace(_row("run_c"), status="completed")])
        for child in ("fold_z", "fold_y"):
            store.write("apply1", [_row(child, parent_id="run_b")])
    with Store.open(state, "test", write=False) as store:
        assert [r.id for r in list_runs(store) if r.parent_id is None] == ids[::-1]
        assert [r.id for r in children(store, "run_b")] == ["fold_z", "fold_y"]


def test_older_states_number_their_runs_when_upgraded(tmp_path: Path) -> None:
    state = tmp_path / "state.duckdb"
    with Store.open(state, "test", write=True) as store:
        store.write("apply1", [_row("run_b"), replace(_row("run_a"), created_at=TICK + 1)])
    with duckdb.connect(str(state)) as con:  # as mlform wrote it before runs were numbered
        con.execute("alter table runs drop column seq")
        con.execute("delete from migrations where name = '0007_run_sequence'")
    with Store.open(state, "test", write=True) as store:
        store.write("apply2", [replace(_row("run_c"), created_at=TICK + 1)])
    with duckdb.connect(str(state), read_only=True) as con:
        assert con.execute("select id, seq from runs order by seq").fetchall() == [
            ("run_b", 1),
            ("run_a", 2),
            ("run_c", 3),
        ]
