"""The planner is pure: desired and recorded in, a plan with reasons out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlform.plan import reasons as why
from mlform.plan import render
from mlform.plan.diff import diff
from mlform.plan.model import Action, Change, Desired
from mlform.plan.reasons import ReasonCode
from mlform.state.records import Recorded
from mlform.state.store import Identity


def want(address: str, digest: str = "d1", **kw: Any) -> Desired:
    kind, name = address.split("/")
    fields: dict[str, Any] = {
        "address": address,
        "kind": kind,
        "name": name,
        "digest": digest,
        "components": {"spec": digest},
        "spec": {"name": name},
        "deps": (),
        "source": f"{kind}/{name}.yml:1",
    }
    fields.update(kw)
    return Desired(**fields)


def have(address: str, digest: str | None = "d1", **kw: Any) -> Recorded:
    kind, name = address.split("/")
    fields: dict[str, Any] = {
        "address": address,
        "kind": kind,
        "name": name,
        "digest": digest,
        "components": {"spec": digest or ""},
        "spec": {"name": name},
        "outputs": {},
        "status": "applied",
        "error": None,
        "protect": False,
        "source": f"{kind}/{name}.yml:1",
    }
    fields.update(kw)
    return Recorded(**fields)


def said(change: Change) -> tuple[str, ...]:
    return tuple(r.text for r in change.reasons)


def codes(change: Change) -> tuple[str, ...]:
    return tuple(r.code.value for r in change.reasons)


def test_nothing_to_do() -> None:
    plan = diff({"data/a": want("data/a")}, {"data/a": have("data/a")})
    assert plan.changes == ()
    assert plan.unchanged == 1
    assert (
        render.text(plan) == "No changes. The workspace matches its files (1 resources up to date)."
    )


def test_create_update_delete_in_dependency_order() -> None:
    desired = {
        "data/b": want("data/b", deps=("datastore/s",)),
        "datastore/s": want("datastore/s"),
        "data/kept": want("data/kept", "new", spec={"name": "kept", "description": "x"}),
    }
    recorded = {
        "data/kept": have("data/kept", "old"),
        "data/gone": have("data/gone", components={"dep:datastore/old": "x"}),
        "datastore/old": have("datastore/old"),
    }
    plan = diff(desired, recorded, Identity("L", 7))
    assert [(c.symbol, c.address) for c in plan.changes] == [
        ("-", "data/gone"),  # deleted before the datastore it used
        ("~", "data/kept"),
        ("-", "datastore/old"),
        ("+", "datastore/s"),
        ("+", "data/b"),
    ]
    by = {c.address: c for c in plan.changes}
    assert by["data/b"].deps == ("datastore/s",)
    assert by["datastore/old"].deps == ("data/gone",)
    assert said(by["data/kept"]) == ("description added",)
    assert by["data/kept"].reasons[0].details == {"key": "description", "change": "added"}
    assert codes(by["data/gone"]) == ("deleted",)
    assert said(by["data/gone"]) == ("no longer declared (was data/gone.yml:1)",)
    assert by["data/gone"].reasons[0].details == {"source": "data/gone.yml:1"}
    assert [codes(by[a]) for a in ("datastore/s", "data/b")] == [("created",), ("created",)]
    assert plan.summary() == "Plan: 2 to add, 1 to change, 2 to destroy, 0 to run."


def test_reasons_name_files_and_upstream() -> None:
    old = have(
        "data/a",
        "old",
        components={"spec": "s", "file:a.csv": "1", "file:b.csv": "2", "dep:datastore/s": "x"},
        outputs={"version": "2", "version_key": "k2", "latest_version": "2"},
    )
    new = want(
        "data/a",
        "new",
        components={"spec": "s", "file:a.csv": "9", "file:c.csv": "3", "dep:datastore/s": "y"},
        version_key="k3",
    )
    (change,) = diff({"data/a": new}, {"data/a": old}).changes
    assert change.action is Action.UPDATE
    assert change.version == "3"
    assert said(change) == (
        "content changed: a.csv modified, c.csv added, b.csv removed",
        "datastore/s changed",
        "version 2 → 3",
    )
    assert [r.as_dict() for r in change.reasons] == [
        {
            "code": "content_changed",
            "text": "content changed: a.csv modified, c.csv added, b.csv removed",
            "modified": ["a.csv"],
            "added": ["c.csv"],
            "removed": ["b.csv"],
        },
        {"code": "upstream_changed", "text": "datastore/s changed", "address": "datastore/s"},
        {"code": "version_bump", "text": "version 2 → 3", "before": "2", "after": "3"},
    ]


def test_immutable_key_forces_replace() -> None:
    old = have("datastore/s", "old", spec={"name": "s", "path": "/a"})
    new = want("datastore/s", "new", spec={"name": "s", "path": "/b"}, replace_keys={"path"})
    (change,) = diff({"datastore/s": new}, {"datastore/s": old}).changes
    assert change.action is Action.REPLACE
    assert change.symbol == "-/+"
    assert said(change) == ("path: '/a' → '/b'", "path cannot change in place")
    assert [r.as_dict() for r in change.reasons] == [
        {
            "code": "spec_changed",
            "text": "path: '/a' → '/b'",
            "key": "path",
            "change": "shown",
            "before": "/a",
            "after": "/b",
        },
        {
            "code": "cannot_change_in_place",
            "text": "path cannot change in place",
            "keys": ["path"],
        },
    ]


def test_protected_delete_is_refused() -> None:
    plan = diff({}, {"data/a": have("data/a", protect=True)})
    assert plan.changes == ()
    assert plan.refusals == (
        "data/a is protected (protect: true) and can't be deleted: it is no longer declared "
        "(was data/a.yml:1). Restore its file, or set protect: false and apply before removing it",
    )


def test_failed_and_drifted_resources_are_retried_with_the_reason() -> None:
    desired = {"datastore/d": want("datastore/d"), "data/f": want("data/f")}
    recorded = {
        "datastore/d": have("datastore/d", drift="folder /x is missing"),
        "data/f": have("data/f", None, status="failed", error="disk full\nmore"),
    }
    plan = diff(desired, recorded)
    assert {c.address: (c.action, said(c)) for c in plan.changes} == {
        "datastore/d": (Action.UPDATE, ("folder /x is missing",)),
        "data/f": (Action.CREATE, ("last apply failed: disk full",)),
    }
    assert {c.address: [r.as_dict() for r in c.reasons] for c in plan.changes} == {
        "datastore/d": [
            {"code": "drift", "text": "folder /x is missing", "found": "folder /x is missing"}
        ],
        "data/f": [
            {
                "code": "last_apply_failed",
                "text": "last apply failed: disk full",
                "error": "disk full",
            }
        ],
    }


def test_a_job_reverted_to_its_last_completed_content_after_a_failure_is_up_to_date() -> None:
    failed = have(
        "runconfig/train", "completed", status="failed", error="runconfig/train: run t failed"
    )
    back = {"runconfig/train": want("runconfig/train", "completed", trigger="on_change")}
    assert diff(back, {"runconfig/train": failed}).changes == ()
    edited = {"runconfig/train": want("runconfig/train", "edited", trigger="on_change")}
    (change,) = diff(edited, {"runconfig/train": failed}).changes
    assert said(change) == ("last apply failed: run t failed", "changed")
    assert codes(change) == ("last_apply_failed", "changed")


def test_a_job_reverted_to_an_earlier_completed_content_after_a_failure_is_up_to_date() -> None:
    failed = have(
        "runconfig/train",
        "b",
        status="failed",
        error="runconfig/train: run t failed",
        completed=frozenset({"a", "b"}),
    )
    back = {"runconfig/train": want("runconfig/train", "a", trigger="on_change")}
    plan = diff(back, {"runconfig/train": failed})
    assert (plan.changes, plan.unchanged) == ((), 1)
    never = {"runconfig/train": want("runconfig/train", "c", trigger="on_change")}
    (change,) = diff(never, {"runconfig/train": failed}).changes
    assert said(change) == ("last apply failed: run t failed", "changed")


def test_tombstone_keeps_version_numbering() -> None:
    tomb = have("data/a", None, status="deleted", outputs={"latest_version": "4"})
    (change,) = diff(
        {"data/a": want("data/a", version_key="k", summary="1 file")}, {"data/a": tomb}
    ).changes
    assert change.action is Action.CREATE
    assert change.version == "5"
    assert said(change) == ("new: version 5 (1 file)",)
    assert change.reasons[0].as_dict() == {
        "code": "created",
        "text": "new: version 5 (1 file)",
        "version": "5",
        "summary": "1 file",
    }
    assert diff({}, {"data/a": tomb}).changes == ()  # gone already: nothing to delete


def test_explicit_version_with_new_content_is_refused() -> None:
    old = have("data/a", "old", outputs={"version": "3", "version_key": "k1"})
    new = want("data/a", "new", version_key="k2", version="3")
    plan = diff({"data/a": new}, {"data/a": old})
    assert plan.changes == ()
    assert plan.refusals == (
        "data/a (data/a.yml:1): version 3 is already registered with other content; change "
        "`version:` or remove it to number versions automatically",
    )


def test_environment_variable_values_are_never_a_reason() -> None:
    def spec(token: str) -> dict[str, Any]:
        return {
            "jobs": {"train": {"environment_variables": {"T": token}}},
            "hooks": [{"environment_variables": {"T": token}}],
            "tags": {"T": token},
        }

    plan = diff(
        {"pipeline/p": want("pipeline/p", "d2", spec=spec("new"))},
        {"pipeline/p": have("pipeline/p", spec=spec("old"))},
    )
    assert said(plan.changes[0]) == (
        "hooks: value changed",
        "jobs.train.environment_variables.T: value changed",
        "tags.T: 'old' → 'new'",
    )
    hidden = [r.as_dict() for r in plan.changes[0].reasons[:2]]
    assert hidden == [
        {
            "code": "spec_changed",
            "text": "hooks: value changed",
            "key": "hooks",
            "change": "hidden",
        },
        {
            "code": "spec_changed",
            "text": "jobs.train.environment_variables.T: value changed",
            "key": "jobs.train.environment_variables.T",
            "change": "hidden",
        },
    ]


def _secrets(token: str, key: str = "k1") -> dict[str, str]:
    return {"spec": "d1", "secret:TOKEN": token, "secret:OTHER": "o", "fingerprint-key": key}


def test_a_secret_whose_fingerprint_moved_is_the_only_reason() -> None:
    desired = {
        "endpoint/e": want("endpoint/e", components=_secrets("new")),
        "runconfig/job": want("runconfig/job", components=_secrets("new"), trigger="on_change"),
    }
    recorded = {
        "endpoint/e": have("endpoint/e", components=_secrets("old")),
        "runconfig/job": have("runconfig/job", components=_secrets("old")),
    }
    plan = diff(desired, recorded)
    assert [(c.symbol, c.address, said(c)) for c in plan.changes] == [
        ("~", "endpoint/e", ("secret TOKEN changed",)),
        (">", "runconfig/job", ("secret TOKEN changed",)),
    ]
    assert [r.as_dict() for c in plan.changes for r in c.reasons] == [
        {"code": "secret_changed", "text": "secret TOKEN changed", "name": "TOKEN"}
    ] * 2
    assert plan.notes == ()
    assert diff(recorded_as_desired(recorded), recorded).changes == ()


def recorded_as_desired(recorded: dict[str, Recorded]) -> dict[str, Desired]:
    return {
        a: want(a, components=dict(r.components), trigger="on_change" if "job" in a else None)
        for a, r in recorded.items()
    }


def test_fingerprints_under_another_key_are_a_note_not_a_change() -> None:
    desired = {
        "endpoint/e": want("endpoint/e", components=_secrets("x", key="k2")),
        "runconfig/job": want(
            "runconfig/job", components=_secrets("y", key="k2"), trigger="on_change"
        ),
    }
    recorded = {
        "endpoint/e": have("endpoint/e", components=_secrets("old")),
        "runconfig/job": have("runconfig/job", components=_secrets("old")),
    }
    plan = diff(desired, recorded)
    assert plan.changes == ()
    assert plan.notes == (
        "the secret fingerprints recorded for endpoint/e, runconfig/job were made with another "
        "fingerprint key (id k1), so whether their secrets changed cannot be told here; use the "
        "key the state was applied with (secrets/fingerprint.key beside the state, or "
        "MLFORM_SECRETS_FINGERPRINT_KEY). Their next apply records fingerprints under this key",
    )


def test_a_job_says_why_it_runs_with_a_code_for_each_reason() -> None:
    old = {"spec": "s", "code:src/a.py": "1", "code:src/b.py": "2", "input:train": "iris:1"}
    old |= {"environment": "k1", "input:test": "k1", "dep:data/test": "named"}
    new = {"spec": "s", "code:src/a.py": "9", "code:src/c.py": "3", "input:train": "iris:2"}
    new |= {"environment": "k2", "input:test": "k2", "dep:data/test": "named"}
    job = want(
        "runconfig/train",
        "d2",
        components=new,
        trigger="on_change",
        refs={"input:test": "data/test"},
        spec={"name": "train", "epochs": 2},
    )
    ran = have(
        "runconfig/train",
        components=old,
        outputs={"versions": {"data/test": "4"}},
        spec={"name": "train", "epochs": 1},
    )
    data = {
        "data/test": want("data/test", "t2", version_key="v5"),
    }
    recorded = {
        "runconfig/train": ran,
        "data/test": have("data/test", "t1", outputs={"version": "4", "version_key": "v4"}),
    }
    plan = diff({**data, "runconfig/train": job}, recorded, rerun=["train"])
    change = {c.address: c for c in plan.changes}["runconfig/train"]
    assert said(change) == (
        "--rerun",
        "code: src/a.py modified, src/c.py added, src/b.py removed",
        "environment: k1 → k2",
        "data: test 4 → 5",
        "data (train): iris:1 → iris:2",
        "epochs: 1 → 2",
    )
    assert [r.as_dict() for r in change.reasons] == [
        {"code": "rerun_requested", "text": "--rerun"},
        {
            "code": "code_changed",
            "text": "code: src/a.py modified, src/c.py added, src/b.py removed",
            "modified": ["src/a.py"],
            "added": ["src/c.py"],
            "removed": ["src/b.py"],
        },
        {
            "code": "input_version_changed",
            "text": "environment: k1 → k2",
            "input": "environment",
            "before": "k1",
            "after": "k2",
        },
        {
            "code": "input_version_changed",
            "text": "data: test 4 → 5",
            "input": "test",
            "asset": "test",
            "before": "4",
            "after": "5",
        },
        {
            "code": "input_version_changed",
            "text": "data (train): iris:1 → iris:2",
            "input": "train",
            "before": "iris:1",
            "after": "iris:2",
        },
        {
            "code": "spec_changed",
            "text": "epochs: 1 → 2",
            "key": "epochs",
            "change": "shown",
            "before": 1,
            "after": 2,
        },
    ]


def test_jobs_without_a_change_run_for_their_trigger_or_a_first_run() -> None:
    desired = {
        "runconfig/new": want("runconfig/new", trigger="on_change"),
        "runconfig/nightly": want("runconfig/nightly", trigger="always"),
        "runconfig/big": want("runconfig/big", "d2", components={"code": "2"}, trigger="always"),
    }
    recorded = {
        "runconfig/nightly": have("runconfig/nightly"),
        "runconfig/big": have("runconfig/big", components={"code": "1"}),
    }
    plan = diff(desired, recorded)
    assert [(c.address, codes(c), said(c)) for c in plan.changes] == [
        ("runconfig/big", ("code_changed",), ("code changed",)),
        ("runconfig/new", ("no_run_yet",), ("no run yet",)),
        ("runconfig/nightly", ("trigger_always",), ("trigger: always",)),
    ]


def test_a_manual_job_is_a_note_that_renders_its_reasons() -> None:
    desired = {"runconfig/m": want("runconfig/m", trigger="manual")}
    plan = diff(desired, {})
    assert plan.changes == ()
    assert plan.notes == (
        "runconfig/m would run (no run yet) but its trigger is manual: run it with "
        "`mlform apply --rerun m`",
    )


def test_a_pipeline_says_why_step_by_step() -> None:
    steps = (why.step("prep", "reuse"), why.step("train", "code changed (src/train.py)"))
    pipe = want(
        "pipeline/p", "d2", components={"step:train": "x"}, explain=steps, trigger="on_change"
    )
    plan = diff({"pipeline/p": pipe}, {"pipeline/p": have("pipeline/p")})
    (change,) = plan.changes
    assert said(change) == ("prep: reuse", "train: code changed (src/train.py)")
    assert [r.as_dict() for r in change.reasons] == [
        {"code": "step_reused", "text": "prep: reuse", "step": "prep"},
        {
            "code": "step_changed",
            "text": "train: code changed (src/train.py)",
            "step": "train",
            "why": "code changed (src/train.py)",
        },
    ]


def test_an_image_after_a_job_in_the_plan_waits_for_what_the_run_registers() -> None:
    desired = {
        "runconfig/train": want("runconfig/train", trigger="on_change"),
        "image/i": want("image/i", deps=("runconfig/train",)),
    }
    plan = diff(desired, {"image/i": have("image/i")})
    change = {c.address: c for c in plan.changes}["image/i"]
    assert (change.action, codes(change)) == (Action.UPDATE, ("runs_first",))
    assert change.reasons[0].as_dict() == {
        "code": "runs_first",
        "text": "runconfig/train runs first and may register a new model version",
        "address": "runconfig/train",
    }


def test_parts_and_unchanged_versions_have_their_codes() -> None:
    part = "part:deployment blue model"
    old = have(
        "endpoint/e",
        "old",
        components={part: "m:1", "part:deployment blue code": "a" * 64, "part:gone": "x"},
        outputs={"version": "3", "version_key": "k"},
    )
    new = want(
        "endpoint/e",
        "new",
        components={part: "m:2", "part:deployment blue code": "b" * 64, "part:added": "y"},
        version_key="k",
    )
    (change,) = diff({"endpoint/e": new}, {"endpoint/e": old}).changes
    assert said(change) == (
        "deployment blue model: m:1 → m:2",
        "deployment blue code changed",
        "added added",
        "gone removed",
        "content unchanged, stays version 3",
    )
    assert [r.as_dict() for r in change.reasons] == [
        {
            "code": "part_changed",
            "text": "deployment blue model: m:1 → m:2",
            "part": "deployment blue model",
            "change": "shown",
            "before": "m:1",
            "after": "m:2",
        },
        {
            "code": "part_changed",
            "text": "deployment blue code changed",
            "part": "deployment blue code",
            "change": "changed",
        },
        {"code": "part_changed", "text": "added added", "part": "added", "change": "added"},
        {"code": "part_changed", "text": "gone removed", "part": "gone", "change": "removed"},
        {
            "code": "version_kept",
            "text": "content unchanged, stays version 3",
            "version": "3",
        },
    ]


def test_every_code_has_a_row_in_the_readme() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert [c.value for c in ReasonCode if f"| `{c.value}` |" not in readme] == []
