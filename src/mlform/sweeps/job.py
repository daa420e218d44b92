"""A sweep job as Azure ML's YAML declares it (`type: sweep`): its search space, sampling,
objective, early termination and limits, read and checked; what each trial is given.

    objective    {goal: maximize | minimize, primary_metric}
    limits       max_total_trials (Azure's default 1000), max_concurrent_trials (default:
                 as many as the total), timeout and trial_timeout (seconds)

A trial runs the job's `trial` command with `${{search_space.NAME}}` replaced by its
value (and, as on Azure, `AZUREML_SWEEP_NAME` set to it). Its digest is the digest of
the trial job (code, data, environment, command) and its parameters: what a re-applied
sweep finds done. What steers the search (sampling, objective, early termination,
limits) is not part of it: a trial computes the same whatever picked it.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlform.hashing import sha256_text
from mlform.sweeps import Invalid, above_zero, policies, sampling, space, whole
from mlform.sweeps.policies import Policy
from mlform.sweeps.sampling import Sampling
from mlform.sweeps.space import Parameter, Value

# What steers the search, never part of a trial's digest.
STEERING = ("search_space", "sampling_algorithm", "objective", "early_termination", "limits")
_GOALS = ("maximize", "minimize")
_LIMITS = ("max_total_trials", "max_concurrent_trials", "timeout", "trial_timeout")
SUMMARY = "sweep.json"  # in a sweep's run folder: its trials, ranked (`mlform runs show`)
_MOST_TRIALS = 1000  # Azure's default max_total_trials
_REFERENCE = re.compile(r"\$\{\{\s*search_space\.([A-Za-z0-9_.-]+)\s*\}\}")


@dataclass(frozen=True, slots=True)
class Objective:
    goal: str  # maximize | minimize
    primary_metric: str

    @property
    def maximize(self) -> bool:
        return self.goal == "maximize"

    def better(self, value: float, than: float) -> bool:
        return value > than if self.maximize else value < than


@dataclass(frozen=True, slots=True)
class Limits:
    max_total_trials: int = _MOST_TRIALS
    max_concurrent_trials: int | None = None  # None: as many as the total
    timeout: float | None = None  # the whole sweep's, in seconds
    trial_timeout: float | None = None

    @property
    def concurrent(self) -> int:
        return min(self.max_concurrent_trials or self.max_total_trials, self.max_total_trials)


@dataclass(frozen=True, slots=True)
class Sweep:
    space: tuple[Parameter, ...]
    sampling: Sampling
    objective: Objective
    policy: Policy | None
    limits: Limits

    @property
    def total(self) -> int:
        """How many trials the sweep runs at most: its limit, or every grid point."""
        grid = self.sampling.combinations(self.space)
        return (
            self.limits.max_total_trials
            if grid is None
            else min(grid, self.limits.max_total_trials)
        )


def parse(body: Mapping[str, Any]) -> Sweep:
    """A sweep job's steering keys, as written; `Invalid` says what is wrong and where."""
    parameters = space.parse(body.get("search_space"))
    return Sweep(
        parameters,
        sampling.parse(body.get("sampling_algorithm", "random"), parameters),
        _objective(body.get("objective")),
        policies.parse(body.get("early_termination")),
        _limits(body.get("limits")),
    )


def _objective(body: Any) -> Objective:
    where: list[str | int] = ["objective"]
    if not isinstance(body, Mapping) or "primary_metric" not in body:
        raise Invalid(
            where,
            "a sweep needs an objective: `objective: {goal: maximize, primary_metric: "
            "accuracy}`, the metric its trials log",
        )
    goal = str(body.get("goal", "")).lower()
    if goal not in _GOALS:
        raise Invalid([*where, "goal"], f"goal is maximize or minimize, not {body.get('goal')!r}")
    metric = body["primary_metric"]
    if not isinstance(metric, str) or not metric:
        raise Invalid([*where, "primary_metric"], "primary_metric is the name of a metric")
    return Objective(goal, metric)


def _limits(body: Any) -> Limits:
    where: list[str | int] = ["limits"]
    if body is None:
        return Limits()
    if not isinstance(body, Mapping):
        raise Invalid(where, f"limits takes {', '.join(_LIMITS)}")
    found: dict[str, Any] = {}
    for key in ("max_total_trials", "max_concurrent_trials"):
        count = whole(body, where, key)
        if count is not None:
            found[key] = count
    for key in ("timeout", "trial_timeout"):
        seconds = above_zero(body, where, key, "seconds")
        if seconds is not None:
            found[key] = seconds
    return Limits(**found)


def references(command: str) -> list[str]:
    """The parameters a trial's command names."""
    return [match[1] for match in _REFERENCE.finditer(command)]


def substitute(command: str, params: Mapping[str, Value]) -> str:
    """The trial's command: each `${{search_space.NAME}}` its value, quoted for the shell."""
    return _REFERENCE.sub(lambda m: shlex.quote(shown(params[m[1]])), command)


def shown(value: Value) -> str:
    """A parameter's value as a command line and a run's inputs show it."""
    if value is None:
        return "None"  # as Azure passes a null choice
    if isinstance(value, float):
        return repr(value)
    return str(value)


def trial_digest(job: str, params: Mapping[str, Value]) -> str:
    """A trial's digest: its job's and its parameters'."""
    return sha256_text(_canonical({"job": job, "params": {k: shown(v) for k, v in params.items()}}))


def _canonical(value: Any) -> str:
    """One text for one value, as resource digests write theirs."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def seed(name: str, steering: Mapping[str, Any]) -> int:
    """The seed of a sweep that writes none: the same for the same sweep declaration, so an
    unchanged sweep proposes the same trials again. Its limits are left out: raising
    max_total_trials proposes the trials it proposed before, then more."""
    kept = {k: v for k, v in steering.items() if k != "limits"}
    return int(sha256_text(_canonical({"name": name, "sweep": kept}))[:8], 16)
