"""The planner: `diff(desired, recorded) -> Plan`, pure, with a reason for every change."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from mlform.graph import topological
from mlform.plan import fingerprints as fingerprint
from mlform.plan import keys
from mlform.plan import reasons as why
from mlform.plan.model import Action, Change, Desired, Plan
from mlform.plan.reasons import Reason
from mlform.state.records import Recorded
from mlform.state.store import Identity

DELETED = "deleted"  # a tombstone: the resource is gone, its version numbering is kept
NO_STATE = Identity(None, 0)
_SHORT_VALUE = 40
_SECRET = "environment_variables"  # whose values no plan shows


def diff(
    desired: Mapping[str, Desired],
    recorded: Mapping[str, Recorded],
    identity: Identity = NO_STATE,
    rerun: Collection[str] = (),
) -> Plan:
    """The plan from what the files declare to what the state records.

    Jobs (runconfigs) are compared last, so their reasons can name the versions the
    other changes in this plan are about to register ("data: iris 2 → 3").
    `rerun` names jobs to run whatever changed (`mlform apply --rerun NAME`).
    """
    changes: dict[str, Change] = {}
    refusals: list[str] = []
    notes: list[str] = []
    unchanged = 0
    rekeyed: dict[str, str] = {}  # address → the key its secret fingerprints were made with
    order = sorted(desired, key=lambda a: desired[a].trigger is not None)
    for address in order:
        want = desired[address]
        have = recorded.get(address)
        secrets = _secrets(want, have, rekeyed)
        if want.trigger is None:
            change = _compare(want, have, refusals, secrets)
        else:
            forced = want.name in rerun or address in rerun
            change = _job(want, have, forced, notes, changes, recorded, secrets)
        if change is None:
            unchanged += 1
        else:
            changes[address] = change
    for address in order:
        if address not in changes:
            change = _after_jobs(desired[address], recorded.get(address), changes)
            if change is not None:
                changes[address] = change
                unchanged -= 1
    removed = [a for a, r in recorded.items() if a not in desired and r.status != DELETED]
    for address in removed:
        have = recorded[address]
        if have.protect:
            refusals.append(
                f"{address} is protected (protect: true) and can't be deleted: it is no longer "
                f"declared (was {have.source}). Restore its file, or set protect: false and "
                "apply before removing it"
            )
            continue
        changes[address] = Change(
            Action.DELETE,
            address,
            have.kind,
            have.name,
            (why.deleted(have.source),),
            have,
            None,
        )
    unknown = sorted(
        name
        for name in rerun
        if not any(d.name == name or a == name for a, d in desired.items() if d.trigger)
    )
    for name in unknown:
        jobs = sorted(d.name for d in desired.values() if d.trigger)
        refusals.append(
            f"--rerun {name}: no runconfig named '{name}'"
            + (f" (runconfigs: {', '.join(jobs)})" if jobs else " (none are declared)")
        )
    if rekeyed:
        notes.append(_rekeyed_note(rekeyed))
    return Plan(_ordered(changes, recorded), unchanged, identity, tuple(refusals), tuple(notes))


def _secrets(want: Desired, have: Recorded | None, rekeyed: dict[str, str]) -> list[Reason]:
    """`secret NAME changed` for each secret whose value changed since the last apply."""
    if have is None or have.digest is None or have.status == DELETED:
        return []
    compared = fingerprint.compare(have.components, want.components)
    if compared.other_key is not None:
        rekeyed[want.address] = compared.other_key
    return [why.secret_changed(name) for name in compared.changed]


def _rekeyed_note(rekeyed: Mapping[str, str]) -> str:
    """Fingerprints made under another key cannot be compared: said once, not taken for
    a change of every secret."""
    addresses = sorted(rekeyed)
    shown = ", ".join(addresses[: why.SHOWN_FILES])
    if len(addresses) > why.SHOWN_FILES:
        shown += f" and {len(addresses) - why.SHOWN_FILES} more"
    keys = ", ".join(sorted(set(rekeyed.values())))
    return (
        f"the secret fingerprints recorded for {shown} were made with another fingerprint "
        f"key (id {keys}), so whether their secrets changed cannot be told here; use the "
        f"key the state was applied with (secrets/fingerprint.key beside the state, or "
        f"{fingerprint.ENV}). Their next apply records fingerprints under this key"
    )


def _job(
    want: Desired,
    have: Recorded | None,
    forced: bool,
    notes: list[str],
    changes: Mapping[str, Change],
    recorded: Mapping[str, Recorded],
    secrets: list[Reason],
) -> Change | None:
    """A runconfig runs when no completed run matches its digest (or the secrets it gets
    changed since), or when forced."""
    reasons: list[Reason] = [why.rerun_requested()] if forced else []
    if have is None or have.status == DELETED or have.digest is None:
        reasons.append(_failure(have) if have and have.status == "failed" else why.no_run_yet())
    elif have.digest != want.digest and want.digest not in have.completed:
        # A failed run keeps the digest of the last completed one (apply's `_failed_row`);
        # back at that content, or at any other a completed run satisfies, nothing needs
        # to run again: the row keeps pointing at its last completed run.
        if have.status == "failed":
            reasons.append(_failure(have))
        reasons.extend(want.explain or _job_reasons(have, want, changes, recorded))
        reasons.extend(r for r in secrets if r not in reasons)
    elif secrets:
        if have.status == "failed":
            reasons.append(_failure(have))
        reasons.extend(secrets)
    if not reasons and want.trigger == "always":
        reasons.append(why.trigger_always())
    if not reasons:
        return None
    if want.note and not (want.trigger == "manual" and not forced):
        notes.append(want.note)
    if want.trigger == "manual" and not forced:
        notes.append(
            f"{want.address} would run ({why.texts(reasons)}) but its trigger is manual: "
            f"run it with `mlform apply --rerun {want.name}`"
        )
        return None
    return Change(Action.RUN, want.address, want.kind, want.name, tuple(reasons), have, want)


def _after_jobs(
    want: Desired, have: Recorded | None, changes: Mapping[str, Change]
) -> Change | None:
    """A resource built from what a job in this plan may register (an image of a model
    that a run registers when it passes its gate): known only after the run, so it is
    planned as an update that its apply re-checks, rebuilding nothing if nothing changed."""
    if want.trigger is not None or have is None:
        return None
    jobs = [d for d in want.deps if d in changes and changes[d].action is Action.RUN]
    if not jobs:
        return None
    reasons = tuple(why.runs_first(job) for job in jobs)
    return Change(Action.UPDATE, want.address, want.kind, want.name, reasons, have, want)


def _job_reasons(
    have: Recorded, want: Desired, changes: Mapping[str, Change], recorded: Mapping[str, Recorded]
) -> list[Reason]:
    old, new = keys.typed(have.components), keys.typed(want.components)
    reasons: list[Reason] = []
    files = _files_changed(old, new, keys.CodeFile)
    if any(files):
        reasons.append(why.code_changed(*files))
    elif old.get(keys.Code()) != new.get(keys.Code()):
        reasons.append(why.code_changed([], [], []))
    versions = have.outputs.get("versions") or {}
    for key in sorted(new, key=str):
        name = _input_of(key)
        if name is None or old.get(key) == new[key]:
            continue
        upstream = want.refs.get(str(key))
        if upstream is None:  # pinned: the component is the reference itself
            reasons.append(why.input_version_changed(name, before=old.get(key), after=new[key]))
            continue
        change = changes.get(upstream)
        after = change.version if change is not None and change.version else None
        if after is None and upstream in recorded:
            after = recorded[upstream].outputs.get("version")
        reasons.append(
            why.input_version_changed(
                name,
                asset=upstream.partition("/")[2],
                before=versions.get(upstream),
                after=after,
            )
        )
    for changed in _changed_keys(have.spec, want.spec):
        reasons.append(_spec_reason(changed, have.spec, want.spec))
    return reasons or [why.changed()]


def _input_of(key: keys.Key) -> str | None:
    """What a job takes that a component stands for: its environment, or a data input
    (code and spec are said on their own, secrets beside the digest)."""
    match key:
        case keys.Environment():
            return "environment"
        case keys.Input(name):
            return name
    return None


def _compare(
    want: Desired, have: Recorded | None, refusals: list[str], secrets: list[Reason]
) -> Change | None:
    def change(action: Action, reasons: list[Reason], version: str | None = None) -> Change:
        return Change(
            action, want.address, want.kind, want.name, tuple(reasons), have, want, version=version
        )

    if have is None or have.digest is None or have.status == DELETED:
        version = None
        if want.version_key is not None:  # a tombstone keeps numbering where it stopped
            last = have.outputs.get("latest_version", 0) if have else 0
            version = want.version or _next(_highest(last, want.numbered_from))
        failed = have is not None and have.status == "failed"
        return change(
            Action.CREATE,
            [_failure(have)] if failed and have else [why.created(version, want.summary)],
            version,
        )

    reasons: list[Reason] = []
    if have.status == "failed":
        reasons.append(_failure(have))
    if have.drift:
        reasons.append(why.drift(have.drift))
    changed_keys: list[str] = []
    if have.digest != want.digest:
        changed_keys = _changed_keys(have.spec, want.spec)
        reasons.extend(_explain(have, want, changed_keys))
    reasons.extend(secrets)
    if not reasons:
        return None

    version = None
    if want.version_key is not None:
        current = have.outputs.get("version")
        if have.outputs.get("version_key") != want.version_key:
            if want.version is not None and want.version == current:
                refusals.append(
                    f"{want.address} ({want.source}): version {current} is already registered "
                    "with other content; change `version:` or remove it to number versions "
                    "automatically"
                )
                return None
            last = have.outputs.get("latest_version", current)
            version = want.version or _next(_highest(last, want.numbered_from))
            reasons.append(why.version_bump(current, version))
        elif have.digest != want.digest:
            reasons.append(why.version_kept(current))
    top_keys = {key.split(".", 1)[0].split("[", 1)[0] for key in changed_keys}
    if top_keys & want.replace_keys:
        forced = sorted(top_keys & want.replace_keys)
        return change(Action.REPLACE, [*reasons, why.cannot_change_in_place(forced)], version)
    return change(Action.UPDATE, reasons, version)


def _explain(have: Recorded, want: Desired, changed_keys: list[str]) -> list[Reason]:
    reasons: list[Reason] = []
    old, new = keys.typed(have.components), keys.typed(want.components)
    files = _files_changed(old, new, keys.File)
    if any(files):
        reasons.append(why.content_changed(*files))
    elif old.get(keys.Content()) != new.get(keys.Content()):
        reasons.append(why.content_changed([], [], []))
    for key, digest in new.items():
        match key:
            case keys.Dep(address) if old.get(key) not in (None, digest):
                reasons.append(why.upstream_changed(address))
            case keys.Part(name) if old.get(key) != digest:
                reasons.append(_part_reason(name, old.get(key), digest))
    for key in old:
        if isinstance(key, keys.Part) and key not in new:
            reasons.append(why.part_changed(key.name, "removed"))
    for changed in changed_keys:
        reasons.append(_spec_reason(changed, have.spec, want.spec))
    if not reasons:
        reasons.append(why.changed())
    return reasons


def _files_changed(
    old: Mapping[keys.Key, str], new: Mapping[keys.Key, str], kind: type[keys.CodeFile | keys.File]
) -> tuple[list[str], list[str], list[str]]:
    """The files (of code or content) modified, added and removed."""
    return (
        [k.path for k in new if isinstance(k, kind) and k in old and old[k] != new[k]],
        [k.path for k in new if isinstance(k, kind) and k not in old],
        [k.path for k in old if isinstance(k, kind) and k not in new],
    )


def _part_reason(name: str, before: str | None, after: str) -> Reason:
    """A named part of a resource (`deployment blue model`), its change shown when short."""
    if before is None:
        return why.part_changed(name, "added")
    if len(before) + len(after) <= _SHORT_VALUE and " " not in before + after:
        return why.part_changed(name, "shown", before, after)
    return why.part_changed(name, "changed")


def _failure(have: Recorded) -> Reason:
    first = (have.error or "").strip().splitlines()
    return why.last_apply_failed(
        first[0].removeprefix(f"{have.address}: ") if first else "unknown error"
    )


def _changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    flat_old, flat_new = _flatten(old), _flatten(new)
    keys = sorted(set(flat_old) | set(flat_new))
    return [k for k in keys if flat_old.get(k, _MISSING) != flat_new.get(k, _MISSING)]


_MISSING = object()


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _spec_reason(key: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> Reason:
    before, after = _flatten(old).get(key, _MISSING), _flatten(new).get(key, _MISSING)
    if before is _MISSING:
        return why.spec_changed(key, "added")
    if after is _MISSING:
        return why.spec_changed(key, "removed")
    if _SECRET in key.split(".") or _holds_secret(before) or _holds_secret(after):
        # Values may be secrets (an API token), and a plan is posted on pull requests.
        return why.spec_changed(key, "hidden")
    if len(repr(before)) + len(repr(after)) <= _SHORT_VALUE:
        return why.spec_changed(key, "shown", before, after)
    return why.spec_changed(key, "changed")


def _holds_secret(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(k == _SECRET or _holds_secret(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_holds_secret(item) for item in value)
    return False


def _highest(version: Any, other: str | None) -> Any:
    """The higher of two version numbers (a name other things register versions of)."""
    if other is None:
        return version
    try:
        return max(int(str(version)), int(other))
    except ValueError:
        return version


def _next(version: Any) -> str:
    try:
        return str(int(str(version)) + 1)
    except ValueError:
        return "1"


def _ordered(changes: dict[str, Change], recorded: Mapping[str, Recorded]) -> tuple[Change, ...]:
    """Creates and updates after what they depend on; deletes before what they depended on."""
    edges: dict[str, list[str]] = {}
    for address, change in changes.items():
        if change.after is not None:
            edges[address] = [d for d in change.after.deps if d in changes]
    for address, change in changes.items():
        if change.action is Action.DELETE and change.before is not None:
            for key in map(keys.parse, change.before.components):
                if isinstance(key, keys.Dep) and key.address in changes:
                    edges.setdefault(key.address, []).append(address)  # delete users first
    order = topological(changes, edges)
    return tuple(
        _with_deps(changes[a], tuple(d for d in edges.get(a, ()) if d in changes)) for a in order
    )


def _with_deps(change: Change, deps: tuple[str, ...]) -> Change:
    return Change(
        change.action,
        change.address,
        change.kind,
        change.name,
        change.reasons,
        change.before,
        change.after,
        deps,
        change.version,
    )
