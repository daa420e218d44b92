"""Data capture: sampled requests, written as date-partitioned Parquet off the request path."""

from __future__ import annotations

import datetime
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from mlform.masking import Masker
from mlform.serving.capture import Capture

MAY_1 = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC).timestamp()
MAY_2 = datetime.datetime(2024, 5, 2, 9, 30, tzinfo=datetime.UTC).timestamp()
# Long enough that only max_batch or close() can make the writer write.
NEVER = 3600.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def captures() -> Iterator[list[Capture]]:
    made: list[Capture] = []
    yield made
    for capture in made:
        capture.close()


def make(captures: list[Capture], root: Path, **options: Any) -> Capture:
    options = {"flush_seconds": NEVER, "clock": Clock(MAY_1), **options}
    capture = Capture(root, "iris", "blue", **options)
    captures.append(capture)
    return capture


def read(root: Path, select: str, rest: str = "") -> list[tuple[Any, ...]]:
    files = root / "captures" / "iris" / "blue" / "*" / "*.parquet"
    source = f"read_parquet('{files}', hive_partitioning = true, filename = true)"
    query = f"select {select} from {source} {rest}"
    return duckdb.sql(query).fetchall()


def parquet_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.parquet"))


def test_every_request_is_captured_at_rate_one(tmp_path: Path, captures: list[Capture]) -> None:
    capture = make(captures, tmp_path, max_batch=100)
    for i in range(250):
        capture.offer({"data": [[i]]}, [i * 2], f"r{i}")
    capture.close()

    assert (capture.captured, capture.dropped, capture.errors) == (250, 0, 0)
    assert capture.written_rows == 250
    assert len(parquet_files(tmp_path)) == capture.written_files >= 3
    sizes = read(tmp_path, "count(*)", "group by filename")
    assert max(size for (size,) in sizes) <= 100  # one file per batch of at most max_batch
    rows = read(tmp_path, "request_id, inputs, outputs")
    assert sorted(rows, key=lambda row: int(row[0][1:])) == [
        (f"r{i}", f'{{"data":[[{i}]]}}', f"[{i * 2}]") for i in range(250)
    ]


def test_nothing_is_captured_at_rate_zero(tmp_path: Path, captures: list[Capture]) -> None:
    capture = make(captures, tmp_path, sampling_rate=0.0)
    for i in range(1000):
        capture.offer([i], [i], f"r{i}")
    capture.close()

    assert (capture.captured, capture.written_files) == (0, 0)
    assert not (tmp_path / "captures").exists()


def test_a_quarter_is_captured_at_rate_a_quarter(tmp_path: Path, captures: list[Capture]) -> None:
    capture = make(captures, tmp_path, sampling_rate=0.25, seed=7)
    for i in range(4000):
        capture.offer([i], [i], f"r{i}")
    capture.close()

    # Binomial(4000, 0.25): mean 1000, standard deviation about 27.
    assert 850 <= capture.captured <= 1150
    assert read(tmp_path, "count(*)") == [(capture.captured,)]


def test_the_same_seed_samples_the_same_requests(tmp_path: Path, captures: list[Capture]) -> None:
    samples = []
    for name in ("a", "b"):
        capture = make(captures, tmp_path / name, sampling_rate=0.1, seed=3)
        for i in range(500):
            capture.offer([i], [i], f"r{i}")
        capture.close()
        samples.append(sorted(read(tmp_path / name, "request_id")))
    assert samples[0] == samples[1]
    assert samples[0]


def test_records_land_in_the_date_partition_of_their_utc_day(
    tmp_path: Path, captures: list[Capture]
) -> None:
    clock = Clock(MAY_1)
    capture = make(captures, tmp_path, clock=clock)
    capture.offer([1], [2], "first")
    capture.offer([3], [4], "second")
    clock.now = MAY_2
    capture.offer([5], [6], "third")
    capture.close()

    folder = tmp_path / "captures" / "iris" / "blue"
    assert sorted(p.name for p in folder.iterdir()) == ["date=2024-05-01", "date=2024-05-02"]
    assert [len(list(p.iterdir())) for p in sorted(folder.iterdir())] == [1, 1]
    (name,) = (p.name for p in (folder / "date=2024-05-02").iterdir())
    assert name.startswith(f"part-{int(MAY_2 * 1000)}-")
    assert name.endswith(".parquet")

    rows = read(
        tmp_path,
        "date, count(*), epoch_ms(min(ts)), epoch_ms(max(ts)), "
        "any_value(endpoint), any_value(deployment)",
        "group by date order by date",
    )
    assert rows == [
        (
            datetime.date(2024, 5, 1),
            2,
            int(MAY_1 * 1000),
            int(MAY_1 * 1000),
            "iris",
            "blue",
        ),
        (
            datetime.date(2024, 5, 2),
            1,
            int(MAY_2 * 1000),
            int(MAY_2 * 1000),
            "iris",
            "blue",
        ),
    ]


def test_duckdb_reads_the_captured_json_back(tmp_path: Path, captures: list[Capture]) -> None:
    capture = make(captures, tmp_path)
    capture.offer(
        [{"sepal_length": 5.1, "species": "setosa"}, {"sepal_length": 6.2, "species": None}],
        {"labels": [0, 2], "scores": [0.9, 0.7]},
        "r1",
    )
    capture.close()

    assert read(
        tmp_path,
        "count(*), strftime(timezone('UTC', min(ts)), '%Y-%m-%d %H:%M:%S'), "
        "json_extract(any_value(inputs), '$[1].sepal_length')::double, "
        "json_extract_string(any_value(inputs), '$[0].species'), "
        "json_extract(any_value(outputs), '$.labels')::integer[]",
    ) == [(1, "2024-05-01 12:00:00", 6.2, "setosa", [0, 2])]


def test_numpy_and_pandas_values_are_written_as_plain_json(
    tmp_path: Path, captures: list[Capture]
) -> None:
    capture = make(captures, tmp_path)
    frame = pd.DataFrame({"x": [1.5, 2.5], "y": ["a", "b"]})
    capture.offer(frame, np.array([1, 0], dtype=np.int64), "frame")
    capture.offer(np.array([[1.0, 2.0]]), {"score": np.float32(0.5)}, "array")
    capture.close()

    assert sorted(read(tmp_path, "request_id, inputs, outputs")) == [
        ("array", "[[1.0,2.0]]", '{"score":0.5}'),
        ("frame", '[{"x":1.5,"y":"a"},{"x":2.5,"y":"b"}]', "[1,0]"),
    ]


def test_a_value_json_cannot_hold_is_written_as_null(
    tmp_path: Path, captures: list[Capture], caplog: pytest.LogCaptureFixture
) -> None:
    capture = make(captures, tmp_path)
    capture.offer([1], object(), "odd")
    capture.close()

    assert read(tmp_path, "request_id, inputs, outputs") == [("odd", "[1]", None)]
    assert "capture of request odd: a value of type object cannot be encoded as JSON" in caplog.text


def test_offer_does_not_touch_the_disk(tmp_path: Path, captures: list[Capture]) -> None:
    capture = make(captures, tmp_path, max_batch=1000)
    for i in range(999):
        capture.offer([i], [i], f"r{i}")
    time.sleep(0.2)  # a writer that wrote on offer would have done so by now

    assert capture.captured == 999
    assert not (tmp_path / "captures").exists()
    capture.close()
    assert capture.written_rows == 999


def test_max_batch_pending_records_wake_the_writer(tmp_path: Path, captures: list[Capture]) -> None:
    capture = make(captures, tmp_path, max_batch=50)
    for i in range(50):
        capture.offer([i], [i], f"r{i}")

    deadline = time.monotonic() + 30
    while capture.written_files == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (capture.written_files, capture.written_rows) == (1, 50)


def test_the_writer_flushes_every_flush_seconds(tmp_path: Path, captures: list[Capture]) -> None:
    capture = make(captures, tmp_path, flush_seconds=0.05)
    capture.offer([1], [2], "r1")

    deadline = time.monotonic() + 30
    while capture.written_files == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert capture.written_rows == 1


def test_a_full_queue_drops_new_offers_and_counts_them(
    tmp_path: Path, captures: list[Capture]
) -> None:
    capture = make(captures, tmp_path, max_batch=1000, max_pending=100)
    for i in range(105):
        capture.offer([i], [i], f"r{i}")
    capture.close()

    assert (capture.captured, capture.dropped, capture.written_rows) == (100, 5, 100)
    assert read(tmp_path, "max(request_id::varchar)") == [("r99",)]


def test_offers_after_close_are_dropped(tmp_path: Path, captures: list[Capture]) -> None:
    capture = make(captures, tmp_path)
    capture.close()
    capture.offer([1], [2], "late")
    capture.close()

    assert (capture.captured, capture.dropped) == (0, 1)


def test_a_failed_write_is_logged_and_counted_not_raised(
    tmp_path: Path, captures: list[Capture], caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "root"
    root.write_text("a file where the captures folder should be")
    capture = make(captures, root)
    capture.offer([1], [2], "r1")
    capture.close()
    capture.offer([3], [4], "r2")  # still fine after a failure

    assert (capture.captured, capture.errors, capture.written_files) == (1, 1, 0)
    (record,) = [r for r in caplog.records if r.name == "mlform.serving.capture"]
    assert record.levelno == logging.ERROR
    assert record.getMessage().startswith(
        f"capture could not write 1 records to {root}/captures/iris/blue/date=2024-05-01: "
    )
    assert record.getMessage().endswith(
        "; they are lost. Check that the folder is writable and the disk has space"
    )


def test_a_failing_clock_does_not_fail_the_request(
    tmp_path: Path, captures: list[Capture], caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> float:
        raise RuntimeError("no time")

    capture = make(captures, tmp_path, clock=broken)
    capture.offer([1], [2], "r1")

    assert (capture.captured, capture.dropped) == (0, 1)
    assert "capture of request r1 failed" in caplog.text


def test_a_record_that_breaks_the_writer_loses_only_its_batch(
    tmp_path: Path, captures: list[Capture], caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock(float("nan"))  # no date partition can hold it
    capture = make(captures, tmp_path, clock=clock, max_batch=1)
    capture.offer([1], [2], "bad")
    clock.now = MAY_1
    capture.offer([3], [4], "good")
    capture.close()

    assert (capture.captured, capture.errors, capture.written_rows) == (2, 1, 1)
    assert read(tmp_path, "request_id") == [("good",)]
    assert "capture lost a batch of 1 records" in caplog.text


def test_no_temporary_files_are_left_behind(tmp_path: Path, captures: list[Capture]) -> None:
    capture = make(captures, tmp_path)
    capture.offer([1], [2], "r1")
    capture.close()

    names = [p.name for p in tmp_path.rglob("*") if p.is_file()]
    assert len(names) == 1
    assert names[0].endswith(".parquet")
    assert not names[0].startswith(".")


def test_close_is_idempotent(tmp_path: Path, captures: list[Capture]) -> None:
    capture = make(captures, tmp_path)
    capture.offer([1], [2], "r1")
    capture.close()
    capture.close()

    assert capture.written_files == 1


@pytest.mark.parametrize(
    ("endpoint", "deployment"), [("", "blue"), ("iris", "a/b"), ("..", "blue"), ("iris", ".x")]
)
def test_names_that_are_not_folder_names_are_refused(
    tmp_path: Path, endpoint: str, deployment: str
) -> None:
    with pytest.raises(ValueError, match="cannot be a folder name"):
        Capture(tmp_path, endpoint, deployment)


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_a_sampling_rate_outside_zero_to_one_is_refused(tmp_path: Path, rate: float) -> None:
    with pytest.raises(ValueError, match="sampling_rate must be between 0 and 1"):
        Capture(tmp_path, "iris", "blue", sampling_rate=rate)


def test_importing_capture_imports_neither_pyarrow_nor_duckdb() -> None:
    code = (
        "import json, sys\n"
        "import mlform.serving.capture\n"
        "print(json.dumps(sorted(m for m in ('pyarrow', 'duckdb', 'numpy', 'pandas') "
        "if m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_pending_records_are_written_at_exit(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from mlform.serving.capture import Capture\n"
        "capture = Capture(Path(sys.argv[1]), 'iris', 'blue', flush_seconds=3600)\n"
        "capture.offer([1], [2], 'r1')\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)

    assert read(tmp_path, "request_id, inputs, outputs") == [("r1", "[1]", "[2]")]


def test_the_deployments_secret_values_are_masked_in_what_is_captured(
    tmp_path: Path, captures: list[Capture]
) -> None:
    capture = make(captures, tmp_path, masker=Masker(["tok-5f3a9c1e77b2"]))
    capture.offer({"data": [[1]], "token": "tok-5f3a9c1e77b2"}, ["sent tok-5f3a9c1e77b2"], "r1")
    capture.close()
    assert read(tmp_path, "inputs, outputs") == [('{"data":[[1]],"token":"***"}', '["sent ***"]')]
