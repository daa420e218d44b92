"""Following a running script's files: whole lines only, each once."""

from __future__ import annotations

from pathlib import Path

from mlform.tracking.sdk import Run
from mlform.tracking.tail import LineTail, Tail


def test_tail_returns_each_complete_line_once(tmp_path: Path) -> None:
    log = tmp_path / "std_log.txt"
    tail = LineTail(log)
    assert tail.lines() == []
    log.write_bytes(b"epoch 1\r\nepoch 2\nepo")
    assert tail.lines() == ["epoch 1", "epoch 2"]
    assert tail.lines() == []
    with log.open("ab") as file:
        file.write(b"ch 3\n")
    assert tail.lines() == ["epoch 3"]


def test_metrics_tail_gives_new_points(tmp_path: Path) -> None:
    run = Run("r", tmp_path / "r")
    tail = Tail(run.dir)
    run.log("a,b", 1.0)
    assert tail.points() == []  # still in the script's memory
    run.flush()
    run.log("loss", 2.0, step=5)
    run.flush()
    assert [(p.key, p.step, p.value) for p in tail.points()] == [("a,b", 0, 1.0), ("loss", 5, 2.0)]
    assert tail.points() == []
    for value in (3.0, 4.0):
        run.log("loss", value)
    run.flush()
    assert tail.latest() == {"loss": 4.0}
