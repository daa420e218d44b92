"""The planner is pure: desired and recorded in, a plan with reasons out."""

from __future__ import annotations

from typing import Any

from mlform.plan import render
from mlform.plan.diff import diff
from mlform.plan.model import Action, Desired
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
    assert by["data/kept"].reasons == ("description added",)
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
    assert change.reasons == (
        "content changed: a.csv modified, c.csv added, b.csv removed",
        "datastore/s changed",
        "version 2 → 3",
    )


def test_immutable_key_forces_replace() -> None:
    old = have("datastore/s", "old", spec={"name": "s", "path": "/a"})
    new = want("datastore/s", "new", spec={"name": "s", "path": "/b"}, replace_keys={"path"})
    (change,) = diff({"datastore/s": new}, {"datastore/s": old}).changes
    assert change.action is Action.REPLACE
    assert change.symbol == "-/+"
    assert change.reasons == ("path: '/a' → '/b'", "path cannot change in place")


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
    assert {c.address: (c.action, c.reasons) for c in plan.changes} == {
        "datastore/d": (Action.UPDATE, ("folder /x is missing",)),
        "data/f": (Action.CREATE, ("last apply failed: disk full",)),
    }


def test_a_job_reverted_to_its_last_completed_content_after_a_failure_is_up_to_date() -> None:
    failed = have(
        "runconfig/train", "completed", status="failed", error="runconfig/train: run t failed"
    )
    back = {"runconfig/train": want("runconfig/train", "completed", trigger="on_change")}
    assert diff(back, {"runconfig/train": failed}).changes == ()
    edited = {"runconfig/train": want("runconfig/train", "edited", trigger="on_change")}
    (change,) = diff(edited, {"runconfig/train": failed}).changes
    assert change.reasons == ("last apply failed: run t failed", "changed")


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
    assert change.reasons == ("last apply failed: run t failed", "changed")


def test_tombstone_keeps_version_numbering() -> None:
    tomb = have("data/a", None, status="deleted", outputs={"latest_version": "4"})
    (change,) = diff(
        {"data/a": want("data/a", version_key="k", summary="1 file")}, {"data/a": tomb}
    ).changes
    assert change.action is Action.CREATE
    assert change.version == "5"
    assert change.reasons == ("new: version 5 (1 file)",)
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
    assert plan.changes[0].reasons == (
        "hooks: value changed",
        "jobs.train.environment_variables.T: value changed",
        "tags.T: 'old' → 'new'",
    )


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
    assert [(c.symbol, c.address, c.reasons) for c in plan.changes] == [
        ("~", "endpoint/e", ("secret TOKEN changed",)),
        (">", "runconfig/job", ("secret TOKEN changed",)),
    ]
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
