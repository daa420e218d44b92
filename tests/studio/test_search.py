"""MLflow's search syntax, read as MLflow's documentation writes it."""

from __future__ import annotations

import pytest

from mlform.studio.search import Clause, SearchError, parse, where


def test_the_documented_forms_read_as_clauses() -> None:
    assert parse("metrics.test_accuracy > 0.9 and params.n_estimators = 50") == [
        Clause("metrics", "test_accuracy", ">", 0.9),
        Clause("params", "n_estimators", "=", "50"),  # params are text, as MLflow keeps them
    ]
    assert parse("tags.team = 'vision' AND attributes.status = \"completed\"") == [
        Clause("tags", "team", "=", "vision"),
        Clause("attributes", "status", "=", "completed"),
    ]
    assert parse("metrics.`val-loss` <= 1e-3 and params.model LIKE 'res%'") == [
        Clause("metrics", "val-loss", "<=", 0.001),
        Clause("params", "model", "LIKE", "res%"),
    ]
    assert parse("metrics.train.loss < 2") == [Clause("metrics", "train.loss", "<", 2.0)]
    assert parse("status != 'failed' and start_time >= 1700000000000") == [
        Clause("attributes", "status", "!=", "failed"),
        Clause("attributes", "start_time", ">=", 1.7e12),
    ]
    assert parse("") == []


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("metrics.accuracy >", "column 19: the filter ends too soon"),
        ("metrics.accuracy > 'high'", "metrics.accuracy compares with a number"),
        ("params.C > '1'", "params.C compares as text"),
        ("metrics.a > 1 or metrics.b > 2", "MLflow's search has no `or`"),
        ("colour = 'red'", "no attribute 'colour'"),
        ("metrics.a ~ 1", "expected a comparison"),
        ("metrics.a > 1 and", "a clause must follow `and`"),
    ],
)
def test_a_filter_that_cannot_be_read_says_where(text: str, said: str) -> None:
    with pytest.raises(SearchError, match="search, at column") as raised:
        parse(text)
    assert said in str(raised.value)


def test_clauses_become_one_condition_with_their_values_as_parameters() -> None:
    sql, params = where(parse("metrics.acc > 0.5 and params.C = '1' and status = 'completed'"))
    assert params == ["acc", 0.5, "C", "1", "completed"]
    assert sql.count("?") == 5 and "'" not in sql  # no value is ever in the SQL itself
