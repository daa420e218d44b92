"""Early termination: Azure ML's policies as Optuna's pruners.

A trial's *interval* is each time it logs the sweep's primary metric (Azure's own
definition); the value the pruner sees at interval n is the trial's best so far. A
policy first acts at the first multiple of `evaluation_interval` that is at least
`delay_evaluation`, and then at every multiple.

    bandit                Bandit (mlform's, `pruners`): a trial is stopped when its best so
                          far is not within the slack of the best any trial reached by
                          the same interval: below best / (1 + slack_factor), or below
                          best − slack_amount (for a goal to maximize; mirrored to
                          minimize)
    median_stopping       MedianPruner: stopped when its best so far is worse than the
                          median of the other trials' at the same interval
    truncation_selection  PercentilePruner(truncation_percentage): stopped when its best
                          so far is in the lowest truncation_percentage of the trials'
                          at the same interval

Azure's median compares running averages of the metric; Optuna's MedianPruner compares
the values reported at that interval, each trial's best so far. Optuna's pruners count
their warm-up and interval from their own start; Azure's intervals are multiples of
`evaluation_interval` from 0, so every pruner is asked only where `acts_at` says (`engine.pruner`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlform.sweeps import Invalid

KEYS: dict[str, frozenset[str]] = {
    "bandit": frozenset(
        {"slack_factor", "slack_amount", "evaluation_interval", "delay_evaluation"}
    ),
    "median_stopping": frozenset({"evaluation_interval", "delay_evaluation"}),
    "truncation_selection": frozenset(
        {"truncation_percentage", "evaluation_interval", "delay_evaluation"}
    ),
}


@dataclass(frozen=True, slots=True)
class Policy:
    type: str
    evaluation_interval: int = 1
    delay_evaluation: int = 0
    slack_factor: float | None = None
    slack_amount: float | None = None
    truncation_percentage: int = 0

    def acts_at(self, interval: int) -> bool:
        """Whether the policy looks at a trial at `interval` (1 for its first report)."""
        return interval >= self.delay_evaluation and interval % self.evaluation_interval == 0

    def describe(self) -> str:
        """What a stopped trial's run says, the whole policy (a trial it stopped is reused
        only while the policy is the same): `bandit (slack_factor 0.1, evaluation_interval
        1, delay_evaluation 2)`."""
        if self.type == "bandit":
            said = (
                f"slack_factor {self.slack_factor:g}"
                if self.slack_factor is not None
                else f"slack_amount {self.slack_amount:g}"
            )
        elif self.type == "truncation_selection":
            said = f"truncation_percentage {self.truncation_percentage}"
        else:
            said = ""
        timing = f"evaluation_interval {self.evaluation_interval}, "
        timing += f"delay_evaluation {self.delay_evaluation}"
        return f"{self.type} ({said + ', ' if said else ''}{timing})"


def within_slack(policy: Policy, value: float, best: float, maximize: bool) -> bool:
    """Whether `value` is within the bandit's slack of `best` (Azure's example: a best
    of 0.8 and a slack_factor of 0.2 stop a trial below 0.8 / 1.2 ≈ 0.667)."""
    if math.isnan(value):
        return False
    if policy.slack_factor is not None:
        bound = best / (1 + policy.slack_factor) if maximize else best * (1 + policy.slack_factor)
    else:
        amount = policy.slack_amount or 0.0
        bound = best - amount if maximize else best + amount
    return value >= bound if maximize else value <= bound


def parse(body: Any) -> Policy | None:
    """`early_termination` as written; None without one."""
    if body is None:
        return None
    where: list[str | int] = ["early_termination"]
    if not isinstance(body, Mapping) or "type" not in body:
        raise Invalid(where, f"early_termination needs a type: one of {', '.join(KEYS)}")
    kind = str(body["type"]).lower()
    if kind not in KEYS:
        raise Invalid([*where, "type"], f"no early termination {kind!r}: one of {', '.join(KEYS)}")
    for key in body:
        if key != "type" and key not in KEYS[kind]:
            raise Invalid(
                [*where, str(key)], f"{kind} takes {', '.join(sorted(KEYS[kind]))}, not {key}"
            )
    interval = _whole(body, "evaluation_interval", 1, where) or 1  # Azure's 0 means every one
    delay = _whole(body, "delay_evaluation", 0, where)
    if kind == "bandit":
        factor, amount = body.get("slack_factor"), body.get("slack_amount")
        if (factor is None) == (amount is None):
            raise Invalid(where, "bandit takes one of slack_factor and slack_amount")
        for key, value in (("slack_factor", factor), ("slack_amount", amount)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value < 0
            ):
                raise Invalid([*where, key], f"{key} is a number of 0 or more, not {value!r}")
        return Policy(
            kind,
            interval,
            delay,
            slack_factor=None if factor is None else float(factor),
            slack_amount=None if amount is None else float(amount),
        )
    if kind == "truncation_selection":
        percentage = body.get("truncation_percentage")
        if (
            isinstance(percentage, bool)
            or not isinstance(percentage, int)
            or not (1 <= percentage <= 99)
        ):
            raise Invalid(
                [*where, "truncation_percentage"],
                f"truncation_percentage is a whole number from 1 to 99, not {percentage!r}",
            )
        return Policy(kind, interval, delay, truncation_percentage=percentage)
    return Policy(kind, interval, delay)


def _whole(body: Mapping[str, Any], key: str, default: int, where: list[str | int]) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Invalid([*where, key], f"{key} is a whole number of 0 or more, not {value!r}")
    return value
