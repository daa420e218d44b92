"""Production data from capture files written by the real writer: one row per scored
input row, its prediction beside it, only the window's requests, only its days' folders."""

from __future__ import annotations

import datetime
import math
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest

from mlform.errors import MlformError
from mlform.masking import Masker
from mlform.monitoring.production import infer_features, production
from mlform.serving.capture import Capture
from mlform.serving.scoring import parse_payload

UTC = datetime.UTC
MAY_1 = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)
WEEK = (datetime.datetime(2024, 4, 28, tzinfo=UTC), datetime.datetime(2024, 5, 5, tzinfo=UTC))
IRIS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
REFERENCE = [*IRIS, "species"]

Request = tuple[datetime.datetime, Any, Any]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def capture(root: Path, *requests: Request, masker: Masker | None = None) -> str:
    """Capture each (time, run()'s data, run()'s result) as request r0, r1, …, write them
    all, and return the captures' folder."""
    clock = Clock()
    writer = Capture(root, "iris", "blue", flush_seconds=3600, clock=clock, masker=masker)
    try:
        for i, (at, data, result) in enumerate(requests):
            clock.now = at.timestamp()
            writer.offer(data, result, f"r{i}")
    finally:
        writer.close()
    assert writer.written_rows == len(requests)
    return str(root / "captures")


def read(
    captures: str,
    features: list[str],
    outputs: str | None = "prediction",
    window: tuple[datetime.datetime, datetime.datetime] = WEEK,
) -> tuple[list[tuple[Any, ...]], dict[str, str]]:
    """The production table's rows, by request and row, and its columns' types."""
    con = duckdb.connect()
    table = production(con, captures, "iris", "blue", *window, features, outputs=outputs)
    types = {name: kind for name, kind, *_ in con.execute(f"DESCRIBE {table}").fetchall()}
    rows = con.execute(f"SELECT * FROM {table} ORDER BY request_id, row").fetchall()
    return rows, types


def features_of(captures: str, reference: list[str], target: str | None) -> list[str]:
    return infer_features(duckdb.connect(), captures, "iris", "blue", *WEEK, reference, target)


def test_rows_of_a_list_map_to_the_features_by_position(tmp_path: Path) -> None:
    payload = {"data": [[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, float("nan")]]}
    captures = capture(tmp_path, (MAY_1, parse_payload(payload), np.array([0, 2])))

    rows, types = read(captures, IRIS)

    assert types == {
        "sepal_length": "DOUBLE",
        "sepal_width": "DOUBLE",
        "petal_length": "DOUBLE",
        "petal_width": "DOUBLE",
        "prediction": "DOUBLE",
        "ts": "TIMESTAMP WITH TIME ZONE",
        "request_id": "VARCHAR",
        "row": "BIGINT",
    }
    assert rows[0] == (5.1, 3.5, 1.4, 0.2, 0.0, MAY_1, "r0", 0)
    assert rows[1][:3] == (6.3, 3.3, 6.0) and math.isnan(rows[1][3])
    assert rows[1][4:] == (2.0, MAY_1, "r0", 1)


def test_records_of_a_dataframe_map_to_the_features_by_name(tmp_path: Path) -> None:
    split = {
        "columns": ["petal_width", "sepal_length", "colour"],
        "data": [[0.2, 5.1, "blue"], [1.8, 6.3, "red"]],
    }
    payload = parse_payload({"dataframe_split": split})
    captures = capture(tmp_path, (MAY_1, payload, ["setosa", "virginica"]))

    rows, types = read(captures, ["sepal_length", "petal_width", "colour"])

    assert rows == [
        (5.1, 0.2, "blue", "setosa", MAY_1, "r0", 0),
        (6.3, 1.8, "red", "virginica", MAY_1, "r0", 1),
    ]
    assert types["colour"] == types["prediction"] == "VARCHAR"


def test_a_key_a_record_lacks_is_null_and_other_keys_are_left_out(tmp_path: Path) -> None:
    records = [{"sepal_length": 5.1, "sepal_width": 3.5, "id": 7}, {"sepal_width": 3.0}]
    captures = capture(tmp_path, (MAY_1, records, [0, 1]))

    rows, _ = read(captures, ["sepal_length", "sepal_width"], outputs=None)

    assert rows == [(5.1, 3.5, MAY_1, "r0", 0), (None, 3.0, MAY_1, "r0", 1)]


def test_a_single_row_may_be_one_flat_list_or_one_record(tmp_path: Path) -> None:
    captures = capture(
        tmp_path,
        (MAY_1, [5.1, 3.5, 1.4, 0.2], 0),
        (MAY_1, {"petal_width": 1.8, "sepal_length": 6.3}, [2]),
    )

    rows, _ = read(captures, IRIS)

    assert rows == [
        (5.1, 3.5, 1.4, 0.2, 0.0, MAY_1, "r0", 0),
        (6.3, None, None, 1.8, 2.0, MAY_1, "r1", 0),
    ]


def test_predictions_join_their_rows_only_when_they_line_up_one_per_row(tmp_path: Path) -> None:
    rows_of_two = [[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]]
    captures = capture(
        tmp_path,
        (MAY_1, rows_of_two, {"predictions": ["setosa", "virginica"]}),  # MLflow's answer
        (MAY_1, rows_of_two, {"result": ["setosa", "virginica"]}),  # an object's only member
        (MAY_1, rows_of_two, ["setosa"]),  # fewer predictions than rows
        (MAY_1, rows_of_two, {"labels": ["a", "b"], "scores": [0.1, 0.9]}),
        (MAY_1, rows_of_two, "setosa"),
        (MAY_1, rows_of_two, object()),  # JSON cannot hold it: written as null
    )

    rows, _ = read(captures, ["sepal_length"])

    assert [(request, row, prediction) for _, prediction, _, request, row in rows] == [
        ("r0", 0, "setosa"),
        ("r0", 1, "virginica"),
        ("r1", 0, "setosa"),
        ("r1", 1, "virginica"),
        ("r2", 0, None),
        ("r2", 1, None),
        ("r3", 0, None),
        ("r3", 1, None),
        ("r4", 0, None),
        ("r4", 1, None),
        ("r5", 0, None),
        ("r5", 1, None),
    ]


def test_the_window_holds_requests_from_its_start_up_to_not_including_its_end(
    tmp_path: Path,
) -> None:
    start, end = MAY_1, MAY_1 + DAY
    ms = datetime.timedelta(milliseconds=1)
    captures = capture(
        tmp_path,
        (start - ms, [1.0], 0),
        (start, [2.0], 0),
        (end - ms, [3.0], 0),
        (end, [4.0], 0),
    )

    rows, _ = read(captures, ["x"], window=(start, end))
    naive, _ = read(captures, ["x"], window=(start.replace(tzinfo=None), end.replace(tzinfo=None)))

    assert [(x, ts, request) for x, _, ts, request, _ in rows] == [
        (2.0, start, "r1"),
        (3.0, end - ms, "r2"),
    ]
    assert naive == rows


def test_only_the_folders_of_the_windows_days_are_read(tmp_path: Path) -> None:
    captures = capture(tmp_path, (MAY_1, [[1.0], [2.0]], [0, 1]))
    for day in ("2024-04-27", "2024-05-05"):  # the days either side of the window
        folder = tmp_path / "captures" / "iris" / "blue" / f"date={day}"
        folder.mkdir()
        (folder / "part-0-0-0.parquet").write_bytes(b"not a Parquet file")

    rows, _ = read(captures, ["x"])
    assert [x for x, *_ in rows] == [1.0, 2.0]

    # the same file inside the window fails the read: it would have been noticed
    with pytest.raises(duckdb.Error, match=r"date=2024-05-05/part-0-0-0\.parquet"):
        read(captures, ["x"], window=(WEEK[0], WEEK[1] + DAY))


@pytest.mark.parametrize(
    ("deployment", "window"),
    [
        ("blue", (MAY_1 - 9 * DAY, MAY_1 - 2 * DAY)),  # no folder of the window's days
        ("blue", (MAY_1 + HOUR, MAY_1 + 2 * HOUR)),  # the day's folder, no request in the hour
        ("green", WEEK),  # no folder of the deployment
    ],
)
def test_no_capture_in_the_window_gives_a_table_without_rows(
    tmp_path: Path, deployment: str, window: tuple[datetime.datetime, datetime.datetime]
) -> None:
    captures = capture(tmp_path, (MAY_1, [[1.0]], [0]))
    con = duckdb.connect()

    table = production(con, captures, "iris", deployment, *window, ["x"], outputs="prediction")

    assert con.execute(f"SELECT * FROM {table}").fetchall() == []
    assert con.execute(f"DESCRIBE {table}").fetchall() == [
        ("x", "DOUBLE", "YES", None, None, None),
        ("prediction", "DOUBLE", "YES", None, None, None),
        ("ts", "TIMESTAMP WITH TIME ZONE", "YES", None, None, None),
        ("request_id", "VARCHAR", "YES", None, None, None),
        ("row", "BIGINT", "YES", None, None, None),
    ]
    assert features_of(str(tmp_path / "nowhere"), REFERENCE, "species") == IRIS


def test_a_column_of_mixed_values_is_text_and_of_true_or_false_boolean(tmp_path: Path) -> None:
    captures = capture(
        tmp_path,
        (MAY_1, [{"size": 1.5, "flag": True}, {"size": "large", "flag": False}], None),
        (MAY_1, [{"size": [1, 2], "flag": None}], None),
    )

    rows, types = read(captures, ["size", "flag"], outputs=None)

    assert types["size"] == "VARCHAR" and types["flag"] == "BOOLEAN"
    assert [(size, flag) for size, flag, *_ in rows] == [
        ("1.5", True),
        ("large", False),
        ("[1,2]", None),
    ]


def test_requests_without_rows_give_none_and_do_not_fail_the_window(tmp_path: Path) -> None:
    captures = capture(
        tmp_path,
        (MAY_1, "x=5.1&y=3.5", 0),  # text the scoring script parsed itself
        (MAY_1, [], []),
        (MAY_1, [[1234.5]], [0]),  # the secret 1234 masked: no longer JSON
        (MAY_1, [[2.0]], [1]),
        masker=Masker(["1234"]),
    )

    rows, _ = read(captures, ["x"])

    assert [(x, prediction, request) for x, prediction, _, request, _ in rows] == [(2.0, 1.0, "r3")]


def test_features_of_lists_are_the_references_columns_but_the_target(tmp_path: Path) -> None:
    captures = capture(tmp_path, (MAY_1, [[5.1, 3.5, 1.4, 0.2]], [0]))

    assert features_of(captures, REFERENCE, "species") == IRIS


def test_features_of_records_are_their_keys_in_the_references_order(tmp_path: Path) -> None:
    captures = capture(
        tmp_path,
        (MAY_1, [{"petal_width": 0.2, "sepal_length": 5.1, "species": "setosa"}], [0]),
        (MAY_1, {"colour": "blue", "sepal_length": 6.3, "age": 3}, [0]),
    )

    assert features_of(captures, REFERENCE, "species") == [
        "sepal_length",
        "petal_width",
        "age",
        "colour",
    ]


def test_rows_narrower_than_the_references_columns_say_to_name_the_target(
    tmp_path: Path,
) -> None:
    captures = capture(tmp_path, (MAY_1, [[5.1, 3.5, 1.4, 0.2]], [0]))

    with pytest.raises(MlformError) as raised:
        features_of(captures, REFERENCE, None)

    assert str(raised.value) == (
        "the requests captured from endpoint `iris` deployment `blue` hold rows of 4 "
        "values, which are matched to the reference data's columns by position, but it "
        "has 5: `sepal_length`, `sepal_width`, `petal_length`, `petal_width`, `species`. "
        "If one of them is the target, name it (`target_column_name`, or "
        "`data_column_names.target_column`); else list the columns the rows hold, in their "
        "order, under the signal's `features:`"
    )


def test_rows_of_another_width_than_the_features_say_to_list_them(tmp_path: Path) -> None:
    captures = capture(tmp_path, (MAY_1, [[5.1, 3.5, 1.4]], [0]), (MAY_1, [[5.1, 3.5]], [0]))

    with pytest.raises(MlformError) as raised:
        features_of(captures, REFERENCE, "species")

    assert str(raised.value) == (
        "the requests captured from endpoint `iris` deployment `blue` hold rows of 2 and 3 "
        "values, which are matched to the reference data's columns by position, but it "
        "has 4 besides the target `species`: `sepal_length`, `sepal_width`, "
        "`petal_length`, `petal_width`. List the columns the rows hold, in their order, "
        "under the signal's `features:`"
    )


def test_a_target_the_reference_lacks_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MlformError) as raised:
        features_of(str(tmp_path / "captures"), REFERENCE, "label")

    assert str(raised.value) == (
        "the target column `label` is not a column of the reference data, whose columns are "
        "`sepal_length`, `sepal_width`, `petal_length`, `petal_width`, `species`: name one "
        "of them as the target (`target_column_name`, or `data_column_names.target_column`), "
        "or none"
    )
