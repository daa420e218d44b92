from __future__ import annotations

from mlform.config.conditions import parse
from mlform.registry.gate import evaluate


def test_thresholds_and_latest_both_have_to_hold() -> None:
    conditions = parse(["accuracy >= 0.9 and accuracy > latest"])
    better = evaluate(conditions, {"accuracy": 0.97}, {"accuracy": 0.95}, "m:1")
    assert better.passed
    assert str(better) == "accuracy 0.97 >= 0.9; accuracy 0.97 > latest 0.95 (m:1)"
    worse = evaluate(conditions, {"accuracy": 0.93}, {"accuracy": 0.95}, "m:1")
    assert not worse.passed
    assert str(worse) == "accuracy 0.93 >= 0.9; accuracy 0.93 is not > latest 0.95 (m:1)"


def test_a_first_version_has_nothing_to_beat() -> None:
    verdict = evaluate(parse(["rmse < latest"]), {"rmse": 2.5}, None, "")
    assert verdict.passed
    assert verdict.reasons == ("rmse 2.5: no version yet to compare with",)


def test_a_latest_version_without_the_metric_does_not_block() -> None:
    verdict = evaluate(parse(["rmse < latest"]), {"rmse": 2.5}, {}, "m:3")
    assert verdict.passed
    assert verdict.reasons == ("rmse 2.5: m:3 has no rmse to compare with",)


def test_a_metric_the_run_did_not_log_fails_its_condition() -> None:
    verdict = evaluate(parse(["accuracy >= 0.9"]), {"acc": 0.99, "loss": 0.1}, None, "")
    assert not verdict.passed
    assert verdict.reasons == ("the run logged no accuracy (logged: acc, loss)",)


def test_no_conditions_always_pass() -> None:
    assert evaluate((), {}, None, "").passed
