"""The scoring server against its own OpenAPI document: Schemathesis generates requests
from `/openapi.json` and sends them to a real server of the example's scoring script."""

from __future__ import annotations

import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import schemathesis
import schemathesis.checks as checks
from hypothesis import HealthCheck, given, settings
from sklearn.linear_model import LogisticRegression

from tests.serving.conftest import Server, serving

EXAMPLE = Path(__file__).parents[2] / "examples" / "iris"
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


@pytest.fixture(scope="module")
def iris_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The example's score.py serving a model trained as the example trains it."""
    folder = tmp_path_factory.mktemp("iris")
    frame = pd.read_csv(EXAMPLE / "data" / "iris.csv")
    model = LogisticRegression(max_iter=200).fit(frame.drop(columns="species"), frame["species"])
    (folder / "model").mkdir()
    with (folder / "model" / "model.pkl").open("wb") as handle:
        pickle.dump(model, handle)
    script = shutil.copy(EXAMPLE / "score" / "score.py", folder / "score.py")
    args = ("--script", str(script), "--model-dir", str(folder / "model"), "--name", "iris")
    with serving(*args, log=folder / "server.log") as server:
        yield server


def test_no_generated_request_is_a_server_error(iris_server: Server) -> None:
    schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{iris_server.port}/openapi.json")
    # Schemathesis's pytest plugin does not load lazily under this pytest, so each
    # operation's strategy is driven by Hypothesis here, bounded and deterministic.
    operations = [result.ok() for result in schema.get_all_operations()]
    assert sorted(f"{o.method.upper()} {o.path}" for o in operations) == [
        "GET /",
        "GET /health",
        "GET /metrics",
        "GET /ready",
        "POST /score",
    ]
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=150 if operation.path == "/score" else 5,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            # No 5xx, and every answer as the document describes it; not that every
            # request the document allows is accepted: it cannot know what run() takes.
            case.call_and_validate(checks=CHECKS)

        check()


@pytest.mark.parametrize(
    ("body", "status", "answer"),
    [
        (b'{"data": [[5.1, 3.5, 1.4, 0.2]]}', 200, ["setosa"]),
        (b'{"data": []}', 200, []),
        (b'{"data": null}', 200, []),
        (b'{"dataframe_split": {"columns": ["sepal_length"], "data": []}}', 200, []),
        (b'{"dataframe_records": []}', 200, []),
        (
            b'{"data": "flowers"}',
            400,
            "the data is not rows of flowers; send rows of 4 numbers (sepal_length, "
            "sepal_width, petal_length, petal_width), or records with those keys",
        ),
        (
            b'{"dataframe_records": [{"sepal_length": 1}]}',
            400,
            "the rows have no sepal_width, petal_length, petal_width; send rows of 4 numbers "
            "(sepal_length, sepal_width, petal_length, petal_width), or records with those keys",
        ),
        (
            b'{"data": [[5.1, 3.5, 1.4, "wide"]]}',
            400,
            "every measurement must be a finite number; send rows of 4 numbers (sepal_length, "
            "sepal_width, petal_length, petal_width), or records with those keys",
        ),
    ],
)
def test_the_example_scores_no_rows_to_nothing_and_refuses_what_is_not_flowers(
    iris_server: Server, body: bytes, status: int, answer: object
) -> None:
    reply = iris_server.call("POST", "/score", body)
    expected = answer if status == 200 else {"error": answer, "status": status}
    assert (reply.status, reply.json()) == (status, expected)
