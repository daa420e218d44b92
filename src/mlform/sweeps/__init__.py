"""Hyperparameter sweeps as Azure ML's sweep jobs declare them, sampled and pruned by
Optuna.

- `space`: the search space (`choice`, `randint`, `uniform`, `quniform`, `loguniform`,
  `qloguniform`, `normal`, `qnormal`, `lognormal`, `qlognormal`), each parameter as the
  bounded distribution Optuna samples and the transform that gives Azure's value;
- `sampling`: `random` (with its `seed` and `rule`), `grid` and `bayesian`, as Optuna's
  samplers, with the distributions Azure allows each;
- `policies`: early termination (`bandit`, `median_stopping`, `truncation_selection`) as
  Optuna's pruners, bandit's slack rule a pruner of mlform's own.

What is wrong in a sweep's declaration raises `Invalid` with where it is written (a path
below the job's body), for the job's spec to place in its file.
"""

from __future__ import annotations

from collections.abc import Sequence


class Invalid(ValueError):
    """A sweep's declaration that cannot be run: `where` below the job's body, and why."""

    def __init__(self, where: Sequence[str | int], message: str) -> None:
        super().__init__(message)
        self.where = tuple(where)
        self.message = message
