"""The library's front door: a workspace you can validate, plan and apply.

    >>> ws = Workspace("examples/iris")
    >>> plan = ws.plan()            # what would change, and why
    >>> report = ws.apply(auto_approve=True)
    >>> report.ok, ws.run("train").status, ws.metrics("train", "accuracy")

The CLI is a thin layer over this class, and so is anything a user scripts.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlform import gitinfo
from mlform import loader as config_loader
from mlform.apply.executor import Report, Result, Status, execute
from mlform.config.specs import Spec
from mlform.context import Context
from mlform.errors import ConfigInvalid, NotFound, PlanError, StalePlan, StateError
from mlform.hashing import Hasher
from mlform.kind import desire_all, refresh_all, refusals
from mlform.loader import Config
from mlform.plan.diff import diff
from mlform.plan.model import Action, Change, Plan
from mlform.state import fires, syncs
from mlform.state.fires import Fire
from mlform.state.lock import LockInfo

if TYPE_CHECKING:
    from mlform.leftovers import Leftovers
    from mlform.runs import Run
    from mlform.state.backends import RemoteSpec
    from mlform.state.monitors import MonitorRun
    from mlform.state.remote import RemoteState
from mlform.state.store import Store

Log = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class Monitored:
    run: MonitorRun
    invoke: str | None  # the job its on_breach runs, when a signal breached
    inputs: Mapping[str, str] = field(default_factory=dict)  # its on_breach `with:`, resolved


def breach_jobs(done: Collection[Monitored]) -> dict[str, dict[str, str]]:
    """The jobs the breached monitors' on_breach runs, each once, with the inputs their
    `with:` gives (the first monitor's, where two give the same input)."""
    jobs: dict[str, dict[str, str]] = {}
    for monitored in done:
        if monitored.invoke is not None:
            given = jobs.setdefault(monitored.invoke, {})
            given.update({k: v for k, v in monitored.inputs.items() if k not in given})
    return jobs


@dataclass
class ApplyReport:
    plan: Plan
    results: list[Result] = field(default_factory=list)
    apply_id: str | None = None
    resumed: LockInfo | None = None  # an earlier apply that died holding the lock
    abandoned: list[str] = field(default_factory=list)  # runs it left unfinished
    stopped: list[str] = field(default_factory=list)  # what killed mlform processes left running
    confirmed: bool = True
    # What a plan made right after still shows, though every change succeeded (an
    # instance that died once ready, a file edited while applying): not done yet.
    unsettled: list[Change] = field(default_factory=list)
    fired: list[Fire] = field(default_factory=list)  # the schedules whose jobs it ran

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if r.status is not Status.SUCCEEDED]

    @property
    def ok(self) -> bool:
        return self.confirmed and not self.failed and not self.unsettled


def _behind_or_ahead(root: Path, commit: str) -> str | None:
    """What to say when this checkout is not at the commit the state reflects."""
    found = gitinfo.relation(root, commit)
    short = commit[:10]
    if found is None:
        return (
            f"the state reflects commit {short} (applied by `mlform agent`), which this "
            "checkout does not have: fetch to compare"
        )
    ahead, behind = found

    def commits(n: int) -> str:
        return f"{n} commit" + ("" if n == 1 else "s")

    if ahead and behind:
        return (
            f"this checkout and commit {short}, which the state reflects, have diverged "
            f"({commits(ahead)} here, {commits(behind)} there)"
        )
    if ahead:
        return (
            f"this checkout is {commits(ahead)} ahead of commit {short}, which the state reflects"
        )
    if behind:
        return (
            f"this checkout is {commits(behind)} behind commit {short}, which the state "
            "reflects: pull before you plan"
        )
    return None


def _warn(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr)


class Workspace:
    def __init__(self, path: Path | str = ".") -> None:
        self.root = config_loader.find_root(Path(path))

    @cached_property
    def config(self) -> Config:
        with _gc_paused():
            return config_loader.load(self.root)

    @property
    def state_path(self) -> Path:
        """The state's DuckDB file on this machine (a remote state's working copy)."""
        return self.config.state_path

    @property
    def home(self) -> Path:
        """Where what stays on this machine is kept (`Config.home`)."""
        return self.config.home

    def validate(self) -> Config:
        """The configuration, with every secret its resources use readable here."""
        config = self.config
        unresolved = config.unresolved()
        if unresolved:
            raise ConfigInvalid(unresolved)
        return config

    @property
    def state_name(self) -> str:
        """The state as messages name it: its URL, or its file."""
        remote = self.config.remote_state
        return remote.url if remote is not None else str(self.state_path)

    @property
    def state_location(self) -> Path | RemoteSpec:
        """The state's file, or the remote state's address."""
        return self.config.remote_state or self.state_path

    @cached_property
    def remote(self) -> RemoteState | None:
        """The remote state's client and this machine's copies of it, if the state is remote."""
        spec = self.config.remote_state
        if spec is None:
            return None
        # start-up: remote states only for workspaces that have one
        from mlform.state.remote import RemoteState

        return RemoteState(spec, self.home)

    def state_exists(self) -> bool:
        return self.remote.exists() if self.remote is not None else self.state_path.exists()

    def store(
        self, operation: str, *, write: bool = False, wait: float = 0.0, log: Log | None = None
    ) -> Store:
        """The state, open; a writer is refused a state another workspace applies to."""
        if self.remote is not None:
            say = (lambda line: log("state", line)) if log is not None else _warn
            store = self.remote.open(operation, write=write, wait=wait, log=say)
        else:
            store = Store.open(self.state_path, operation, write=write, wait=wait)
        if write:
            try:
                _check_owner(self.config, store)
                # start-up: every command loads this module; the audit log only for a writer
                from mlform.access import audit

                audit.ingest(store, self.home)  # what servers saw meanwhile
                self.keep_captures()
            except BaseException:
                store.close()
                raise
        return store

    def keep_captures(self) -> int:
        """Move what deployments captured into the outbox to the default datastore, when
        that is not a local folder (storage/captures.py); return how many files."""
        # start-up: every command loads this module; the outbox only for writers
        from mlform.storage import captures, open_storage

        box = captures.outbox(self.home)
        if not box.is_dir():
            return 0
        config = self.config
        spec = config.datastore(config.default_datastore)
        return captures.upload(open_storage(spec, config.storage_options(spec)), box)

    def plan(self, *, rerun: Collection[str] = (), lock_wait: float = 0.0) -> Plan:
        with self.store("plan", wait=lock_wait) as store:
            plan, _ = self._plan(store, rerun=rerun)
            synced = syncs.last(store, applied=True) if store.exists else None
        if synced is not None:
            note = _behind_or_ahead(self.root, synced.commit)
            if note:
                plan = replace(plan, notes=(*plan.notes, note))
        return plan

    def apply(
        self,
        *,
        saved: Mapping[str, Any] | None = None,
        confirm: Callable[[Plan], bool] = lambda plan: True,
        parallelism: int = 4,
        report: Report = lambda result: None,
        log: Log = lambda address, message: None,
        lock_wait: float = 0.0,
        rerun: Collection[str] = (),
        progress: Callable[[str, str | None], None] | None = None,
        auto_approve: bool = False,
        reinit: bool = False,
        schedules_at: datetime | None = None,
        inputs: Mapping[str, Mapping[str, str]] | None = None,
    ) -> ApplyReport:
        """Plan again and apply that plan. `confirm(plan)` is asked first unless
        `auto_approve` (as `mlform apply --yes`) or `saved` (a plan already reviewed);
        `report` hears of each change as it ends, `log` of each line of progress.
        Where the state is missing but an earlier one left processes or registered files,
        only `reinit` starts a new one (and stops those processes first).
        With `schedules_at`, the jobs of the schedules due at that instant run too; the
        occurrences are recorded as fired as the apply starts (kinds/schedule/due.py).
        `inputs` runs jobs (addresses) with inputs of their own, as a monitor's on_breach
        `with:` gives them: each runs, and its declared state stays as it was."""
        leftovers = self._leftovers(reinit)
        with self.store("apply", write=True, wait=lock_wait, log=log) as store:
            # start-up: every command loads this module; process groups only for apply
            from mlform.compute import groups

            # first, so a pip a killed apply left running stops writing into the cache
            stopped = groups.reap()
            due = self._due(store, schedules_at, log)
            variants = self._variants(store, inputs or {})
            plan, ctx = self._plan(
                store, log, [*rerun, *(fire.job for fire in due), *variants], variants
            )
            ctx.progress = progress
            ctx.invoked = frozenset(variants)
            if saved is not None:
                _check_saved(saved, plan)
            if plan.refusals:
                raise PlanError("\n".join(plan.refusals))
            store.claim(self.config.name)
            outcome = ApplyReport(plan, resumed=store.interrupted, stopped=stopped)
            if plan.changes and saved is None and not auto_approve and not confirm(plan):
                outcome.confirmed = False
                return outcome
            if leftovers:
                # start-up: every command loads this module; leftovers only for apply
                from mlform import leftovers as earlier

                earlier.stop(leftovers, self.home, lambda line: log("state", line))
            if not plan.changes:
                return outcome
            assert store.lock is not None and store.lock.info is not None
            outcome.apply_id = apply_id = store.lock.info.id
            store.start_apply(apply_id)
            fires.record(store, due, apply_id)
            outcome.fired = due
            # start-up: every command loads this module; the runner only for apply
            from mlform.kinds.runconfig.runner import abandon_stale_runs

            planned = {(c.address, c.after.digest) for c in plan.changes if c.after is not None}
            outcome.abandoned = abandon_stale_runs(store, apply_id, planned)
            status = "interrupted"
            try:
                outcome.results = execute(
                    plan, ctx, store, apply_id, parallelism=parallelism, report=report
                )
                status = "failed" if outcome.failed else "succeeded"
                if not outcome.failed:
                    outcome.unsettled = _unsettled(self._plan(store)[0])
                    status = "failed" if outcome.unsettled else status
            finally:
                ctx.hasher.save()
                store.finish_apply(apply_id, status, _summary(outcome.results))
                self._audit(store, ctx, apply_id, status, plan)
            return outcome

    def _variants(self, store: Store, inputs: Mapping[str, Mapping[str, str]]) -> dict[str, Spec]:
        """The jobs `inputs` names, each with those inputs in place of its declared ones."""
        if not any(inputs.values()):
            return {}
        # start-up: every command loads this module; variants only for on_breach
        from mlform.kinds.monitor import invoking

        config = self.validate()
        recorded = store.recorded()
        return {
            address: invoking.variant(config, recorded, address, given)
            for address, given in inputs.items()
            if given
        }

    def due(self, at: datetime) -> list[Fire]:
        """The schedules due at `at`, as the state records them now (read without the
        lock: `apply(schedules_at=at)` decides again under it)."""
        with self.store("schedules") as store:
            return self._due(store, at)

    def _due(self, store: Store, at: datetime | None, log: Log | None = None) -> list[Fire]:
        if at is None:
            return []
        # start-up: every command loads this module; schedules only where they run
        from mlform.kinds.schedule import due

        declared = self.validate().specs
        # a schedule or job removed from the files (this apply deletes it) runs nothing
        found = [f for f in due.due(store, at) if f.schedule in declared and f.job in declared]
        if log is not None:
            for fire in found:
                missed = (
                    f"; {fire.missed} earlier occurrence{'s' if fire.missed != 1 else ''} "
                    "since its last run were missed and run once with it"
                    if fire.missed
                    else ""
                )
                log(fire.schedule, f"due at {fire.occurrence.isoformat()}: runs {fire.job}{missed}")
        return found

    def run_monitors(
        self,
        at: datetime,
        names: Collection[str] = (),
        *,
        log: Log = lambda address, message: None,
        lock_wait: float = 0.0,
    ) -> list[Monitored]:
        """Compute the monitors due at `at`, or the ones `names` names whether due or
        not, under the writer lock; record each run, and for one that was due the
        occurrence it ran for (kinds/monitor/compute.py); send the alerts of what
        breached. A breached monitor's `on_breach` job is for the caller to apply."""
        # start-up: every command loads this module; monitors only where they run
        from mlform.kinds.monitor import alerting, compute, invoking
        from mlform.kinds.monitor.spec import MonitorSpec
        from mlform.kinds.schedule import due
        from mlform.state import monitors

        if not names:  # the lock only when something is due: the agent asks every tick
            with self.store("monitors") as store:
                if not due.due(store, at, "monitor"):
                    return []
        with self.store("monitors", write=True, wait=lock_wait, log=log) as store:
            config = self.validate()
            recorded = store.recorded()
            timed = {f.schedule: f for f in due.due(store, at, "monitor")}
            # a monitor removed from the files (the next apply deletes it) runs no more
            wanted = [f"monitor/{name}" for name in names] or sorted(
                address for address in timed if address in config.specs
            )
            done: list[Monitored] = []
            for address in wanted:
                spec = config.specs.get(address)
                record = recorded.get(address)
                if not isinstance(spec, MonitorSpec) or record is None:
                    raise NotFound(
                        f"no monitor {address.partition('/')[2]} is applied: declare it in "
                        "monitors/ and run `mlform apply`"
                    )
                since = monitors.last_end(store, address) or due.since(record)
                log(address, f"computing {', '.join(s.name for s in spec.signals)}")
                result = compute.run(config, store, spec, since, at)
                assert store.lock is not None and store.lock.info is not None
                with store.transaction(bump=False) as con:
                    result.write(con, store.lock.info.id)
                if address in timed:
                    fires.record(store, [timed[address]], result.run.id)
                for line in alerting.send(config, spec, result):
                    log(address, f"alert: {line}")
                breached = any(value.breached for value in result.values)
                invoke = spec.on_breach_job if breached else None
                given = invoking.inputs(spec, result) if invoke is not None else {}
                if invoke is not None:
                    with_ = ", ".join(f"{k}={v}" for k, v in given.items())
                    log(
                        address,
                        f"breached: {invoke} runs (on_breach{', with ' if with_ else ''}{with_})",
                    )
                done.append(Monitored(result, invoke, given))
            return done

    def _audit(self, store: Store, ctx: Context, apply_id: str, status: str, plan: Plan) -> None:
        # start-up: every command loads this module; the audit log only for apply
        from mlform.access import actor, audit

        who = actor.applier(self.root, ignore=(ctx.state_dir, ctx.cache))
        target = f"workspace/{self.config.name}"
        audit.record(store, who, "apply", target, status, plan.summary(), apply_id)

    def earlier_state(self) -> list[str]:
        """What shows that a state existed, when there is none (else nothing)."""
        if self.state_exists():
            return []
        # start-up: every command loads this module; leftovers only for apply
        from mlform import leftovers

        return leftovers.find(self.config).describe(self.root)

    def _leftovers(self, reinit: bool) -> Leftovers | None:
        if self.state_exists():
            if reinit:
                raise StateError(
                    f"--reinit starts a new state where there is none, and {self.state_name} "
                    "exists: apply without --reinit"
                )
            return None
        # start-up: every command loads this module; leftovers only for an apply without
        # a state (they start the endpoint modules)
        from mlform import leftovers

        found = leftovers.find(self.config)
        if found and not reinit:
            raise StateError(leftovers.refusal(self.state_name, found, self.root))
        return found or None

    def runs(self, **filters: Any) -> list[Run]:
        """Recorded runs, newest first: `experiment=`, `status=`, `tags={…}`, `runconfig=`,
        `limit=`."""
        # start-up: every command loads this module; recorded runs only for `runs`
        from mlform import runs

        with self.store("runs") as store:
            return runs.list_runs(store, **filters)

    def run(self, ref: str) -> Run:
        """One run by id, id prefix, or runconfig name (its latest run)."""
        # start-up: every command loads this module; recorded runs only for `runs`
        from mlform import runs

        with self.store("runs") as store:
            return runs.find(store, ref)

    def metrics(self, ref: str, key: str | None = None) -> list[tuple[str, int, int, float]]:
        """A run's metric history as (key, step, timestamp ms, value)."""
        # start-up: every command loads this module; recorded runs only for `runs`
        from mlform import runs

        with self.store("runs") as store:
            return runs.metric_history(store, runs.find(store, ref).id, key)

    def _plan(
        self,
        store: Store,
        log: Log | None = None,
        rerun: Collection[str] = (),
        variants: Mapping[str, Spec] | None = None,
    ) -> tuple[Plan, Context]:
        config = self.validate()
        if variants:
            config = replace(config, specs={**config.specs, **variants})
        _check_owner(config, store)
        with _gc_paused():
            hasher = Hasher(config.home / "cache" / "hashes.json")
            ctx = Context(config, hasher) if log is None else Context(config, hasher, log=log)
            ctx.read = store.read  # kinds look up the registry (latest model versions)
            desired = desire_all(config, ctx)
            recorded = refresh_all(store.recorded(), ctx)
            plan = diff(desired, recorded, store.identity(), rerun)
            refused = refusals(plan.changes, ctx)
            if refused:
                plan = replace(plan, refusals=(*plan.refusals, *refused))
        hasher.save()
        return plan, ctx


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Loading and planning make hundreds of thousands of objects that all live until the
    plan is made. CPython's cyclic collector would walk them again and again to free
    nothing: about a tenth of `mlform plan` at 5,000 resources."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        # Hand what was made to the oldest generation (two list splices), rather than let
        # the next young collection walk all of it once more.
        gc.freeze()
        gc.unfreeze()
        gc.enable()


def _check_owner(config: Config, store: Store) -> None:
    """Refuse a state another workspace applies to: planned from this one, everything it
    holds would be destroyed."""
    owner = store.workspace()
    if owner is None or owner == config.name:
        return
    file = next(
        (config.root / n for n in config_loader.WORKSPACE_FILES if (config.root / n).is_file()),
        config.root / config_loader.WORKSPACE_FILES[0],
    )
    raise StateError(
        f"the state {config.state_path} belongs to workspace '{owner}', but this workspace "
        f"({file}) is named '{config.name}': planned from here, "
        f"everything '{owner}' applied would be destroyed. If this is '{owner}' renamed, "
        f"set `name: {owner}` back in {file.name}; otherwise give this workspace a state "
        f"of its own with `state:` in {file.name} (the default is .mlform/state.duckdb "
        "beside it)"
    )


def _check_saved(saved: Mapping[str, Any], plan: Plan) -> None:
    identity = plan.identity
    fresh = saved.get("lineage") is None and identity.serial == 0  # planned before any state
    if not fresh and (
        saved.get("lineage") != identity.lineage or saved.get("serial") != identity.serial
    ):
        raise StalePlan(
            f"the saved plan was made at state serial {saved.get('serial')}, and the state is "
            f"now at serial {identity.serial}: it has changed since. Run `mlform plan -o FILE` "
            "again and apply the new plan"
        )
    promised = [
        (c["address"], c["action"], c["after_digest"], c["version"]) for c in saved["changes"]
    ]
    if promised != plan.signature():
        now = {s[0]: s for s in plan.signature()}
        then = {p[0]: p for p in promised}
        moved = sorted(a for a in set(now) | set(then) if now.get(a) != then.get(a))
        raise StalePlan(
            "the workspace files changed since the plan was saved ("
            + ", ".join(moved[:5])
            + (f" and {len(moved) - 5} more" if len(moved) > 5 else "")
            + "). Run `mlform plan -o FILE` again and apply the new plan"
        )


def _unsettled(plan: Plan) -> list[Change]:
    """The changes of a plan made after a successful apply that mean it did not converge.
    A job planned again (`trigger: always`, `force_rerun`, a step that is not
    deterministic) does so by its own declaration, and so does what waits on it."""
    jobs = {c.address for c in plan.changes if c.action is Action.RUN}
    return [c for c in plan.changes if c.address not in jobs and not jobs & set(c.deps)]


def _summary(results: list[Result]) -> str:
    counts = {status: 0 for status in Status}
    for result in results:
        counts[result.status] += 1
    return ", ".join(f"{n} {status}" for status, n in counts.items())
