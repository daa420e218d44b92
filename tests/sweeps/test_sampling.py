"""Azure's sampling algorithms as Optuna's samplers: grid runs each combination once,
Bayesian sampling finds the optimum of a known function, a seed repeats a sweep, and
each algorithm takes only the expressions Azure allows it."""

from __future__ import annotations

import itertools

import optuna
import pytest

from mlform.sweeps import Invalid, engine, sampling, space

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _space() -> tuple[space.Parameter, ...]:
    return space.parse(
        {
            "C": {"type": "choice", "values": [0.1, 1, 10]},
            "kernel": {"type": "choice", "values": ["linear", "rbf"]},
        }
    )


def test_grid_sampling_runs_each_combination_exactly_once() -> None:
    params = _space()
    chosen = sampling.parse("grid", params)
    assert chosen.combinations(params) == 6
    study = optuna.create_study(sampler=engine.sampler(chosen, params, seed=1))
    seen = []
    for _ in range(6):
        trial = study.ask()
        seen.append(tuple(p.suggest(trial) for p in params))
        study.tell(trial, 0.0)
    assert sorted(seen, key=repr) == sorted(
        itertools.product([0.1, 1, 10], ["linear", "rbf"]), key=repr
    )


def test_bayesian_sampling_finds_the_optimum_of_a_known_function() -> None:
    params = space.parse(
        {
            "x": {"type": "uniform", "min_value": 0, "max_value": 10},
            "n": {"type": "quniform", "min_value": 0, "max_value": 20, "q": 1},
        }
    )
    chosen = sampling.parse({"type": "bayesian"}, params)
    study = optuna.create_study(
        direction="maximize", sampler=engine.sampler(chosen, params, seed=3)
    )
    for _ in range(40):
        trial = study.ask()
        x, n = (p.suggest(trial) for p in params)
        assert isinstance(x, float) and isinstance(n, int)
        study.tell(trial, -((x - 3.0) ** 2) - 0.1 * (n - 12) ** 2)
    assert study.best_value > -1.0  # near x = 3, n = 12 (0 at the optimum)


def test_a_small_bayesian_budget_is_spent_searching_not_sampling_at_random() -> None:
    """12 trials, 2 at a time, over seeds: Bayesian sampling finds the optimum's
    neighbourhood far more often than random sampling with the same budget."""
    params = space.parse(
        {
            "x": {"type": "uniform", "min_value": 0, "max_value": 1},
            "kind": {"type": "choice", "values": ["a", "b"]},
        }
    )

    def best(kind: str, seed: int) -> float:
        chosen = sampling.parse({"type": kind}, params)
        study = optuna.create_study(
            direction="maximize", sampler=engine.sampler(chosen, params, seed=seed, trials=12)
        )
        for _ in range(6):
            pair = [study.ask() for _ in range(2)]
            for trial in pair:
                x, k = (p.suggest(trial) for p in params)
                assert isinstance(x, float)
                study.tell(trial, 1 - 4 * (x - 0.3) ** 2 + (0.1 if k == "b" else 0.0))
        return float(study.best_value)

    near = {
        kind: sum(best(kind, seed) >= 1.06 for seed in range(60)) for kind in ("bayesian", "random")
    }
    assert near["bayesian"] >= 48 and near["bayesian"] >= near["random"] + 10, near


def test_a_seed_repeats_a_random_sweep() -> None:
    params = space.parse({"lr": {"type": "loguniform", "min_value": -7, "max_value": -1}})

    def drawn(seed: int, rule: str) -> list[object]:
        chosen = sampling.parse({"type": "random", "rule": rule}, params)
        study = optuna.create_study(sampler=engine.sampler(chosen, params, seed=seed))
        found = []
        for _ in range(5):
            trial = study.ask()
            found.append(params[0].suggest(trial))
            study.tell(trial, 0.0)
        return found

    for rule in ("random", "sobol"):
        assert drawn(11, rule) == drawn(11, rule)
        assert drawn(11, rule) != drawn(12, rule)
    written = sampling.parse({"type": "random", "seed": 5}, params)
    assert written.seed == 5  # a seed written wins over the one the sweep derives


@pytest.mark.parametrize(
    ("algorithm", "expression", "where", "said"),
    [
        (
            "grid",
            {"type": "uniform", "min_value": 0, "max_value": 1},
            ("search_space", "x", "type"),
            "grid sampling takes choice",
        ),
        (
            "bayesian",
            {"type": "normal", "mu": 0, "sigma": 1},
            ("search_space", "x", "type"),
            "Bayesian sampling takes choice, uniform and quniform",
        ),
        (
            {"type": "bayesian", "seed": 1},
            {"type": "choice", "values": [1]},
            ("sampling_algorithm", "seed"),
            "bayesian sampling takes no seed",
        ),
        (
            {"type": "random", "rule": "halton"},
            {"type": "choice", "values": [1]},
            ("sampling_algorithm", "rule"),
            "rule is one of random, sobol",
        ),
        (
            "hyperband",
            {"type": "choice", "values": [1]},
            ("sampling_algorithm", "type"),
            "no sampling algorithm 'hyperband'",
        ),
    ],
)
def test_an_algorithm_takes_only_what_azure_allows_it(
    algorithm: object, expression: dict[str, object], where: tuple[object, ...], said: str
) -> None:
    with pytest.raises(Invalid) as caught:
        sampling.parse(algorithm, space.parse({"x": expression}))
    assert caught.value.where == where
    assert said in caught.value.message
