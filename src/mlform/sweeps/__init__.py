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

from collections.abc import Mapping, Sequence
from typing import Any


class Invalid(ValueError):
    """A sweep's declaration that cannot be run: `where` below the job's body, and why."""

    def __init__(self, where: Sequence[str | int], message: str) -> None:
        super().__init__(message)
        self.where = tuple(where)
        self.message = message


def whole(body: Mapping[str, Any], where: Sequence[str | int], key: str) -> int | None:
    """`body[key]`, a whole number of 1 or more (a limit's count), or None if not written."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise Invalid([*where, key], f"{key} is a whole number of 1 or more, not {value!r}")
    return value


def above_zero(
    body: Mapping[str, Any], where: Sequence[str | int], key: str, unit: str
) -> float | None:
    """`body[key]`, a number of `unit` above 0 (a limit's time), or None if not written."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise Invalid([*where, key], f"{key} is a number of {unit} above 0, not {value!r}")
    return float(value)
