"""The SDK as a training script uses it: in a real process, in a run folder mlform made."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import duckdb
import pytest

from mlform.tracking.ingest import load_metrics, read_run
from mlform.tracking.protocol import METRICS
from mlform.tracking.sdk import Run
from mlform.tracking.tail import Tail
from tests.tracking.conftest import RUN_ID, Script, metric_rows, start_script


def test_a_script_records_metrics_params_and_tags(
    script: Script, run_dir: Path, con: duckdb.DuckDBPyConnection
) -> None:
    before = time.time_ns() // 1_000_000
    done = script(
        """
        import mlform
        run = mlform.get_run()
        print(run.id, run.dir.name, run.outputs.name)
        for epoch in range(3):
            run.log("loss", 1.0 / (epoch + 1))
        run.log("acc", 0.9, step=10)
        run.log("acc", 0.95)
        run.log_params({"lr": 0.1, "optimizer": "adam"})
        run.log_params({"lr": 0.01})
        run.set_tags({"team": "vision"})
        """
    )
    after = time.time_ns() // 1_000_000

    assert (done.returncode, done.stdout, done.stderr) == (0, "run-1 run-1 outputs\n", "")
    assert load_metrics(con, RUN_ID, run_dir) == 5
    assert metric_rows(con) == [
        ("run-1", "acc", 10, 0.9),
        ("run-1", "acc", 11, 0.95),
        ("run-1", "loss", 0, 1.0),
        ("run-1", "loss", 1, 0.5),
        ("run-1", "loss", 2, 1.0 / 3),
    ]
    (low, high) = con.execute("select min(ts), max(ts) from metrics").fetchone() or (0, 0)
    assert before <= low <= high <= after
    data = read_run(run_dir)
    assert data.params == {"lr": "0.01", "optimizer": "adam"}
    assert data.tags == {"team": "vision"}
    assert (data.id, data.status, data.children, data.artifacts) == (None, None, (), ())


def test_points_wait_in_memory_until_flushed(tmp_path: Path) -> None:
    run = Run("r", tmp_path / "r")
    run.log("loss", 0.5)
    assert not (run.dir / METRICS).exists()
    run.flush()
    assert (run.dir / METRICS).read_text().split(",")[:2] == ["loss", "0"]


def test_a_script_that_raises_keeps_what_it_logged(
    script: Script, run_dir: Path, con: duckdb.DuckDBPyConnection
) -> None:
    done = script(
        """
        import mlform
        run = mlform.get_run()
        run.log("loss", 0.25)
        run.log_params({"seed": 7})
        raise RuntimeError("diverged")
        """
    )
    assert done.returncode == 1
    assert done.stderr.strip().endswith("RuntimeError: diverged")
    load_metrics(con, RUN_ID, run_dir)
    assert metric_rows(con) == [("run-1", "loss", 0, 0.25)]
    assert read_run(run_dir).params == {"seed": "7"}


def test_live_points_within_a_second_and_kept_when_stopped(
    run_dir: Path, con: duckdb.DuckDBPyConnection
) -> None:
    process = start_script(
        """
        import time, mlform
        run = mlform.get_run()
        run.log("loss", 0.5)
        with run.child("fold-1") as child:
            child.log("loss", 0.75)
            time.sleep(60)
        """,
        run_dir / "snapshot",
        run_dir,
    )
    with process:
        tail = Tail(run_dir)
        deadline = time.monotonic() + 30
        points = []
        while not points and time.monotonic() < deadline:
            time.sleep(0.1)
            points = tail.points()
        assert [(p.key, p.step, p.value) for p in points] == [("loss", 0, 0.5)]

        process.send_signal(signal.SIGTERM)  # how mlform stops a run
        process.communicate(timeout=30)
    assert process.returncode == -signal.SIGTERM
    load_metrics(con, RUN_ID, run_dir)
    (child,) = read_run(run_dir).children
    assert metric_rows(con) == sorted([("run-1", "loss", 0, 0.5), (child.id, "loss", 0, 0.75)])
    assert (child.name, child.status) == ("fold-1", "canceled")


def test_child_runs_nest_and_end_completed_or_failed(
    script: Script, run_dir: Path, con: duckdb.DuckDBPyConnection
) -> None:
    done = script(
        """
        import mlform
        run = mlform.get_run()
        for fold in (1, 2):
            try:
                with run.child(f"fold-{fold}") as child:
                    child.log_params({"fold": fold})
                    with child.child("epoch 1") as epoch:
                        epoch.log("loss", fold / 10)
                        epoch.set_tags({"deep": "yes"})
                    if fold == 2:
                        raise ValueError("bad fold")
            except ValueError:
                pass
        run.log("folds", 2)
        """
    )
    assert done.returncode == 0, done.stderr
    data = read_run(run_dir)
    summary = [
        (c.name, c.status, c.params, [(g.name, g.status, g.tags) for g in c.children])
        for c in data.children
    ]
    assert summary == [
        ("fold-1", "completed", {"fold": "1"}, [("epoch 1", "completed", {"deep": "yes"})]),
        ("fold-2", "failed", {"fold": "2"}, [("epoch 1", "completed", {"deep": "yes"})]),
    ]
    fold1, fold2 = data.children
    assert fold1.dir == run_dir / "children" / "fold-1"
    assert fold1.children[0].dir == fold1.dir / "children" / "epoch_1"
    for child in (fold1, fold2, *fold1.children, *fold2.children):
        assert child.started_ms is not None and child.ended_ms is not None
        assert child.started_ms <= child.ended_ms

    assert load_metrics(con, RUN_ID, run_dir) == 3
    epoch1, epoch2 = fold1.children[0].id, fold2.children[0].id
    assert metric_rows(con) == sorted(
        [("run-1", "folds", 0, 2.0), (epoch1, "loss", 0, 0.1), (epoch2, "loss", 0, 0.2)]
    )


def test_outside_mlform_a_script_records_an_offline_run(script: Script, tmp_path: Path) -> None:
    work = tmp_path / "project"
    work.mkdir()
    done = script(
        """
        import mlform
        run = mlform.get_run()
        run.log("loss", 0.5)
        print(run.dir.relative_to(__import__("pathlib").Path.cwd()))
        raise SystemExit(0)
        """,
        cwd=work,
        inside=False,
    )
    assert done.returncode == 0
    relative = done.stdout.strip()
    assert relative.startswith(".mlform-offline/runs/")
    assert done.stderr == f"mlform: not started by mlform; recording this run in {relative}\n"
    data = read_run(work / relative)
    assert (data.id, data.name, data.status) == (Path(relative).name, "train", "completed")
    assert (work / ".mlform-offline" / ".gitignore").read_text().endswith("*\n")

    failed = script("import mlform\nmlform.get_run()\n1 / 0\n", cwd=work, inside=False)
    assert failed.returncode == 1
    runs = (work / ".mlform-offline" / "runs").iterdir()
    assert sorted(str(read_run(r).status) for r in runs) == ["completed", "failed"]


def test_upload_copies_a_file_and_a_folder(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(b"weights")
    (tmp_path / "plots" / "roc").mkdir(parents=True)
    (tmp_path / "plots" / "roc" / "a.png").write_bytes(b"png")
    (tmp_path / "plots" / "b.txt").write_text("b")
    run = Run("r", tmp_path / "r")

    assert run.upload(tmp_path / "model.pkl") == run.dir / "artifacts" / "model.pkl"
    run.upload(str(tmp_path / "model.pkl"), name="best/model.pkl")
    run.upload(tmp_path / "plots")

    assert [(a.name, a.size) for a in read_run(run.dir).artifacts] == [
        ("best/model.pkl", 7),
        ("model.pkl", 7),
        ("plots/b.txt", 1),
        ("plots/roc/a.png", 3),
    ]
    with pytest.raises(FileNotFoundError, match="cannot upload"):
        run.upload(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="relative path inside the run"):
        run.upload(tmp_path / "model.pkl", name="../escape.pkl")


def test_log_refuses_what_cannot_be_a_point(tmp_path: Path) -> None:
    run = Run("r", tmp_path / "r")
    with pytest.raises(TypeError, match="must be a number"):
        run.log("acc", "0.9")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="control characters"):
        run.log("a\nb", 1.0)
    with pytest.raises(TypeError, match="non-empty string"):
        run.log("", 1.0)
    with pytest.raises(TypeError, match="non-empty string"):
        run.log_params({1: "x"})  # type: ignore[dict-item]


def test_threads_logging_at_once_lose_nothing(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    run = Run("r", tmp_path / "r")

    def work() -> None:
        for _ in range(20_000):
            run.log("loss", 1.0)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.flush()
    load_metrics(con, "r", run.dir)
    assert con.execute(
        "select count(*), count(distinct step), max(step) from metrics"
    ).fetchone() == (
        80_000,
        80_000,
        79_999,
    )


def test_a_child_is_running_until_its_block_ends(tmp_path: Path) -> None:
    with Run("r", tmp_path / "r").child("c") as child:
        info = json.loads((child.dir / "run.json").read_text())
        assert (info["name"], info["status"], info["ended_ms"]) == ("c", "running", None)


def test_worker_processes_keep_what_they_logged(
    script: Script, run_dir: Path, con: duckdb.DuckDBPyConnection
) -> None:
    done = script(
        """
        import multiprocessing, mlform

        def work(i):
            mlform.get_run().log("fold_score", i, step=i)

        if __name__ == "__main__":
            mlform.get_run().log("started", 1)
            for method, items in (("fork", range(0, 8)), ("spawn", range(8, 12))):
                with multiprocessing.get_context(method).Pool(2) as pool:
                    pool.map(work, items)
        """
    )
    assert done.returncode == 0, done.stderr
    load_metrics(con, RUN_ID, run_dir)
    assert metric_rows(con) == [("run-1", "fold_score", i, float(i)) for i in range(12)] + [
        ("run-1", "started", 0, 1.0)
    ]


def test_the_sdk_needs_only_the_standard_library(script: Script) -> None:
    done = script(
        """
        import sys, mlform
        mlform.get_run().log("x", 1)
        heavy = {"duckdb", "pyarrow", "yaml", "jsonschema", "jinja2", "fsspec", "sqlite3"}
        print(sorted(heavy & set(sys.modules)))
        """
    )
    assert (done.returncode, done.stdout) == (0, "[]\n")
