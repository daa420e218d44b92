"""The plan as a pull-request comment: folded per kind when large, and never past
GitHub's limit on a comment, saying what it left out."""

from __future__ import annotations

from mlform.plan.markdown import BUDGET, FOLD, LIMIT, markdown
from mlform.plan.model import Action, Change, Plan
from mlform.plan.reasons import Reason, ReasonCode
from mlform.state.store import Identity


def _plan(per_kind: dict[str, int]) -> Plan:
    changes = tuple(
        Change(
            Action.CREATE,
            f"{kind}/{kind}-{i:05d}",
            kind,
            f"{kind}-{i:05d}",
            (Reason(ReasonCode.CREATED, "not in the state yet"),),
            None,
            None,
        )
        for kind, n in per_kind.items()
        for i in range(n)
    )
    return Plan(changes, unchanged=3, identity=Identity("lineage", 12))


def test_a_small_plan_is_one_diff_block() -> None:
    text = markdown(_plan({"data": 2, "environment": 1}))
    assert text == (
        "### mlform plan: Plan: 3 to add, 0 to change, 0 to destroy, 0 to run\n\n"
        "```diff\n"
        "+ + data/data-00000  (not in the state yet)\n"
        "+ + data/data-00001  (not in the state yet)\n"
        "+ + environment/environment-00000  (not in the state yet)\n"
        "```\n\n"
        "3 resources unchanged · state serial 12\n"
    )


def test_a_larger_plan_folds_each_kind() -> None:
    text = markdown(_plan({"data": FOLD, "runconfig": 2}))
    assert "<details><summary><b>data</b>: 10 changes (10 to add)</summary>" in text
    assert "<details><summary><b>runconfig</b>: 2 changes (2 to add)</summary>" in text
    assert text.count("</details>") == 2
    assert "not shown here" not in text


def test_a_huge_plan_stays_under_githubs_limit_and_says_what_it_left_out() -> None:
    plan = _plan({"data": 9_000, "environment": 1_000})
    text = markdown(plan)
    assert len(text) <= BUDGET < LIMIT
    shown = sum(line.startswith("+ + ") for line in text.splitlines())
    assert 500 < shown < 10_000
    assert f"> **{10_000 - shown:,} of 10,000 changes are not shown here**" in text
    assert text.count("<details>") == text.count("</details>")  # every fold closed
    assert text.count("```diff") * 2 == text.count("```")
    assert text.endswith("3 resources unchanged · state serial 12\n")
