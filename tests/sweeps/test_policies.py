"""Azure's early termination policies as Optuna's pruners: bandit's slack, the median
and truncation, each acting only at the intervals Azure's evaluation_interval and
delay_evaluation give."""

from __future__ import annotations

import optuna
import pytest

from mlform.sweeps import Invalid, engine, policies
from mlform.sweeps.policies import Policy, within_slack

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_bandit_slack_is_azures() -> None:
    # Azure's example: best 0.8, slack_factor 0.2: a trial below 0.8 / 1.2 ≈ 0.667 stops
    factor = Policy("bandit", slack_factor=0.2)
    assert not within_slack(factor, 0.66, 0.8, maximize=True)
    assert within_slack(factor, 0.67, 0.8, maximize=True)
    assert not within_slack(factor, 0.25, 0.2, maximize=False)  # a loss above 0.2 × 1.2
    assert within_slack(factor, 0.23, 0.2, maximize=False)
    amount = Policy("bandit", slack_amount=0.1)
    assert not within_slack(amount, 0.69, 0.8, maximize=True)
    assert within_slack(amount, 0.71, 0.8, maximize=True)
    assert not within_slack(amount, float("nan"), 0.8, maximize=True)


def _study(policy: Policy, leaders: list[list[float]], direction: str = "maximize") -> optuna.Study:
    """A study whose finished trials reported `leaders` (a list of values per trial)."""
    study = optuna.create_study(direction=direction, pruner=engine.pruner(policy))
    for values in leaders:
        trial = study.ask()
        for step, value in enumerate(values, 1):
            trial.report(value, step)
        study.tell(trial, values[-1])
    return study


def _pruned_at(study: optuna.Study, values: list[float]) -> list[int]:
    """The intervals at which a new trial reporting `values` would be stopped."""
    trial = study.ask()
    stopped = []
    for step, value in enumerate(values, 1):
        trial.report(value, step)
        if trial.should_prune():
            stopped.append(step)
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return stopped


def test_bandit_stops_a_trial_behind_and_never_the_leader() -> None:
    policy = Policy("bandit", evaluation_interval=1, slack_factor=0.1)
    study = _study(policy, [[0.5, 0.7, 0.8, 0.9]])
    assert _pruned_at(study, [0.3, 0.4, 0.5, 0.6]) == [1, 2, 3, 4]
    assert _pruned_at(study, [0.5, 0.7, 0.85, 0.95]) == []  # ahead: never stopped
    assert _pruned_at(study, [0.48, 0.65, 0.8, 0.9]) == []  # within 10 % all along


def test_a_policy_acts_at_multiples_of_its_interval_from_its_delay() -> None:
    policy = Policy("bandit", evaluation_interval=2, delay_evaluation=5, slack_amount=0.0)
    assert [n for n in range(1, 11) if policy.acts_at(n)] == [6, 8, 10]
    study = _study(policy, [[1.0] * 10])
    assert _pruned_at(study, [0.0] * 10) == [6, 8, 10]


def test_median_and_truncation_stop_the_trials_at_the_bottom() -> None:
    leaders = [[v] * 4 for v in (0.5, 0.6, 0.7, 0.8, 0.9)]
    median = _study(Policy("median_stopping"), leaders)
    assert _pruned_at(median, [0.55] * 4) == [1, 2, 3, 4]  # below the median (0.7)
    assert _pruned_at(median, [0.75] * 4) == []
    truncation = _study(Policy("truncation_selection", truncation_percentage=20), leaders)
    assert _pruned_at(truncation, [0.45] * 4) == [1, 2, 3, 4]  # in the lowest 20 %
    assert _pruned_at(truncation, [0.65] * 4) == []


def test_policies_read_as_azure_writes_them() -> None:
    assert policies.parse(None) is None
    bandit = policies.parse(
        {"type": "bandit", "slack_factor": 0.1, "evaluation_interval": 0, "delay_evaluation": 3}
    )
    assert bandit == Policy("bandit", 1, 3, slack_factor=0.1)  # 0: every interval
    assert bandit is not None and bandit.describe() == (
        "bandit (slack_factor 0.1, evaluation_interval 1, delay_evaluation 3)"
    )
    truncation = policies.parse({"type": "truncation_selection", "truncation_percentage": 25})
    assert truncation == Policy("truncation_selection", truncation_percentage=25)
    assert truncation.describe() == (
        "truncation_selection (truncation_percentage 25, evaluation_interval 1, delay_evaluation 0)"
    )
    median = policies.parse({"type": "median_stopping", "evaluation_interval": 2})
    assert median is not None
    assert median.describe() == "median_stopping (evaluation_interval 2, delay_evaluation 0)"


@pytest.mark.parametrize(
    ("body", "where", "said"),
    [
        ({"type": "bandit"}, ("early_termination",), "one of slack_factor and slack_amount"),
        (
            {"type": "bandit", "slack_factor": 0.1, "slack_amount": 1},
            ("early_termination",),
            "one of",
        ),
        (
            {"type": "bandit", "slack_factor": -1},
            ("early_termination", "slack_factor"),
            "0 or more",
        ),
        (
            {"type": "median_stopping", "slack_factor": 0.1},
            ("early_termination", "slack_factor"),
            "median_stopping takes",
        ),
        (
            {"type": "truncation_selection", "truncation_percentage": 100},
            ("early_termination", "truncation_percentage"),
            "from 1 to 99",
        ),
        ({"type": "hyperband"}, ("early_termination", "type"), "no early termination 'hyperband'"),
        (
            {"type": "median_stopping", "delay_evaluation": -1},
            ("early_termination", "delay_evaluation"),
            "whole number",
        ),
    ],
)
def test_a_policy_that_cannot_act_says_where(
    body: dict[str, object], where: tuple[object, ...], said: str
) -> None:
    with pytest.raises(Invalid) as caught:
        policies.parse(body)
    assert caught.value.where == where
    assert said in caught.value.message
