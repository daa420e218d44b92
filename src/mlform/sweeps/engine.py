"""Optuna's parts of a sweep: the sampler of its `sampling` and the pruner of its
`policies` (the declarations, which need no Optuna to be read and checked). Imported
only when a sweep runs."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import optuna
from optuna.pruners import BasePruner, MedianPruner, PercentilePruner
from optuna.samplers import BaseSampler, GridSampler

from mlform.sweeps.policies import Policy, within_slack
from mlform.sweeps.sampling import Sampling
from mlform.sweeps.space import Parameter


def sampler(
    sampling: Sampling, space: Sequence[Parameter], seed: int, trials: int = 100
) -> BaseSampler:
    """Optuna's sampler for `sampling` over `space`; `seed` when none is written. A
    Bayesian sweep of `trials` samples its first quarter of them at random (2 to 10,
    Optuna's default being 10 whatever the budget), then models what they found: a
    sweep of 12 trials spends 9 of them searching, not 2."""
    chosen = sampling.seed if sampling.seed is not None else seed
    if sampling.type == "grid":
        return Grid({p.name: p.grid for p in space}, seed=chosen)
    with warnings.catch_warnings():  # constant_liar and QMC: "experimental" in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if sampling.type == "bayesian":
            return optuna.samplers.TPESampler(
                seed=chosen, constant_liar=True, n_startup_trials=min(10, max(2, trials // 4))
            )
        if sampling.rule == "sobol":
            return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=chosen)
    return optuna.samplers.RandomSampler(seed=chosen)


class Grid(GridSampler):
    """Optuna's grid, which does not stop the study itself once every point is taken
    (it may only do that inside `optimize`): a sweep asks for as many trials as the grid
    has, and no more."""

    def after_trial(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        state: optuna.trial.TrialState,
        values: Sequence[float] | None,
    ) -> None:
        return None


def pruner(policy: Policy) -> BasePruner:
    """Optuna's pruner for `policy`, asked only at the intervals where it acts."""
    inner: BasePruner
    if policy.type == "bandit":
        inner = Bandit(policy)
    elif policy.type == "median_stopping":
        inner = MedianPruner(n_startup_trials=0, n_warmup_steps=0, interval_steps=1)
    else:
        # Optuna's percentile is the share of trials kept, Azure's the share stopped
        inner = PercentilePruner(
            100.0 - policy.truncation_percentage,
            n_startup_trials=0,
            n_warmup_steps=0,
            interval_steps=1,
        )
    return Gated(policy, inner)


class Gated(BasePruner):
    """`inner`, asked only at the intervals where Azure's policy acts."""

    def __init__(self, policy: Policy, inner: BasePruner) -> None:
        self.policy = policy
        self.inner = inner

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        interval = trial.last_step
        if interval is None or not self.policy.acts_at(interval):
            return False
        return bool(self.inner.prune(study, trial))


class Bandit(BasePruner):
    """Azure's bandit policy: stop a trial whose best so far is not within the slack of
    the best value any trial had reached by the same interval."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        interval = trial.last_step
        if interval is None:
            return False
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        mine = trial.intermediate_values[interval]
        best = mine
        for other in study.get_trials(deepcopy=False):
            if other.number == trial.number:
                continue
            reached = [v for step, v in other.intermediate_values.items() if step <= interval]
            if reached:
                theirs = max(reached) if maximize else min(reached)
                best = max(best, theirs) if maximize else min(best, theirs)
        return not within_slack(self.policy, mine, best, maximize)
