"""Azure's parameter expressions, sampled through Optuna: each gives values of the
distribution Azure defines, and a declaration that cannot be sampled says where."""

from __future__ import annotations

import math
import statistics

import optuna
import pytest

from mlform.sweeps import Invalid
from mlform.sweeps.space import Value, parse

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _sampled(expression: dict[str, object], n: int = 2000) -> list[Value]:
    (parameter,) = parse({"x": expression})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=7))
    return [parameter.suggest(study.ask()) for _ in range(n)]


def test_uniform_and_loguniform_span_their_ranges_as_azure_defines_them() -> None:
    uniform = [float(v) for v in _sampled({"type": "uniform", "min_value": 2, "max_value": 4})]
    assert 2 <= min(uniform) < 2.05 and 3.95 < max(uniform) <= 4
    assert statistics.mean(uniform) == pytest.approx(3, abs=0.05)
    # the bounds are exponents: the logarithm of the value is uniform in [-3, 1]
    logs = [
        math.log(float(v))
        for v in _sampled({"type": "loguniform", "min_value": -3, "max_value": 1})
    ]
    assert min(logs) >= -3 and max(logs) <= 1
    assert statistics.mean(logs) == pytest.approx(-1, abs=0.1)


def test_normals_have_their_mean_and_spread() -> None:
    normal = [float(v) for v in _sampled({"type": "normal", "mu": 10, "sigma": 2})]
    assert statistics.mean(normal) == pytest.approx(10, abs=0.15)
    assert statistics.stdev(normal) == pytest.approx(2, abs=0.15)
    logs = [math.log(float(v)) for v in _sampled({"type": "lognormal", "mu": 0, "sigma": 0.5})]
    assert statistics.mean(logs) == pytest.approx(0, abs=0.05)
    assert statistics.stdev(logs) == pytest.approx(0.5, abs=0.05)


def test_quantized_values_are_multiples_of_q_and_whole_where_q_is() -> None:
    trees = _sampled({"type": "quniform", "min_value": 10, "max_value": 200, "q": 10})
    assert all(isinstance(v, int) and v % 10 == 0 and 10 <= v <= 200 for v in trees)
    assert len(set(trees)) == 20  # every multiple from 10 to 200 appears
    rates = _sampled({"type": "quniform", "min_value": 0.1, "max_value": 0.5, "q": 0.1}, 300)
    assert set(rates) <= {0.1, 0.2, 0.3, 0.4, 0.5} and 0.3 in rates  # not 0.30000000000000004
    for expression in (
        {"type": "qloguniform", "min_value": 0, "max_value": 5, "q": 5},
        {"type": "qnormal", "mu": 50, "sigma": 10, "q": 5},
        {"type": "qlognormal", "mu": 3, "sigma": 0.5, "q": 5},
    ):
        assert all(isinstance(v, int) and v % 5 == 0 for v in _sampled(expression, 300))


def test_discrete_expressions_give_each_value() -> None:
    assert set(_sampled({"type": "randint", "upper": 4}, 200)) == {0, 1, 2, 3}
    picked = _sampled({"type": "choice", "values": ["gini", "entropy", 3, None]}, 200)
    assert set(picked) == {"gini", "entropy", 3, None}


@pytest.mark.parametrize(
    ("expression", "where", "said"),
    [
        ({"type": "beta", "a": 1}, ("search_space", "x", "type"), "no parameter expression 'beta'"),
        ({"min_value": 1}, ("search_space", "x"), "needs a type"),
        ({"type": "uniform", "min_value": 1}, ("search_space", "x"), "max_value is missing"),
        (
            {"type": "uniform", "min_value": 1, "max_value": 2, "q": 1},
            ("search_space", "x", "q"),
            "uniform takes min_value, max_value, not q",
        ),
        (
            {"type": "uniform", "min_value": 2, "max_value": 1},
            ("search_space", "x", "max_value"),
            "greater than min_value",
        ),
        ({"type": "normal", "mu": 0, "sigma": 0}, ("search_space", "x", "sigma"), "sigma"),
        ({"type": "randint", "upper": 0}, ("search_space", "x", "upper"), "whole number"),
        (
            {"type": "uniform", "min_value": "a", "max_value": 2},
            ("search_space", "x", "min_value"),
            "a number",
        ),
        ({"type": "choice", "values": [1, 1]}, ("search_space", "x", "values"), "each value once"),
        (
            {"type": "choice", "values": [{"a": 1}]},
            ("search_space", "x", "values", 0),
            "numbers, strings",
        ),
        ({"type": "choice", "values": []}, ("search_space", "x", "values"), "a list of values"),
    ],
)
def test_a_space_that_cannot_be_sampled_says_where(
    expression: dict[str, object], where: tuple[object, ...], said: str
) -> None:
    with pytest.raises(Invalid) as caught:
        parse({"x": expression})
    assert caught.value.where == where
    assert said in caught.value.message


def test_a_sweep_without_a_space_is_told_how_to_write_one() -> None:
    with pytest.raises(Invalid) as caught:
        parse(None)
    assert caught.value.where == ("search_space",) and "type: uniform" in caught.value.message


def test_what_a_trial_records_is_the_distribution_a_resumed_study_is_told() -> None:
    space = parse(
        {
            "a": {"type": "choice", "values": [1, 2]},
            "b": {"type": "randint", "upper": 5},
            "c": {"type": "qnormal", "mu": 0, "sigma": 1, "q": 1},
            "d": {"type": "loguniform", "min_value": -2, "max_value": 0},
        }
    )
    trial = optuna.create_study().ask()
    for parameter in space:
        parameter.suggest(trial)
    assert trial.distributions == {p.name: p.distribution() for p in space}
