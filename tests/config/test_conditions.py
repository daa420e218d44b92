from __future__ import annotations

import pytest

from mlform.config.conditions import Condition, parse


def test_parse_reads_conditions_joined_with_and_or_listed() -> None:
    assert parse(["accuracy >= 0.9 and rmse<latest", "f1 != 1e-3"]) == (
        Condition("accuracy", ">=", 0.9),
        Condition("rmse", "<", None),
        Condition("f1", "!=", 0.001),
    )


@pytest.mark.parametrize("text", ["accuracy >> 0.9", "accuracy >= best", ">= 0.9", "accuracy"])
def test_parse_says_how_to_write_a_condition(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse([text])
    assert str(caught.value) == (
        f"cannot read condition '{text}': write METRIC OP VALUE with OP one of >= > <= < == != "
        "and VALUE a number or latest, e.g. accuracy >= 0.9 and accuracy > latest"
    )


def test_a_condition_reads_as_written() -> None:
    assert [str(c) for c in parse(["accuracy >= 0.90 and rmse < latest"])] == [
        "accuracy >= 0.9",
        "rmse < latest",
    ]
