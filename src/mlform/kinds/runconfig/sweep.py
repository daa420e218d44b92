"""Running a sweep job: a parent run, and a child run per trial.

Optuna's study asks for each trial's parameters (`mlform.sweeps.engine`: the sampler of
the sweep's `sampling_algorithm`, the pruner of its `early_termination`). A trial whose
digest (its job's and its parameters', `mlform.sweeps.job.trial_digest`) has a completed
or early-terminated run on record is not run again: its run is reused, and the study is
told what that run logged, as if it had just run. Since a sweep always samples from the
same seed, re-applying an unchanged sweep proposes the same trials and finds every one
done; raising `max_total_trials` finds the first ones done and runs the rest; an apply
killed mid-sweep is resumed by the next, which runs only what had not completed.

Trials run side by side, up to `max_concurrent_trials`, each through the runner like any
job, on the job's compute. As a trial logs its primary metric, each value is an interval
the early termination policy may act at; a trial it stops is stopped where it runs and
recorded `canceled (early termination: …)`. A trial that fails does not stop the sweep.
The best completed trial is the sweep's result: its outputs are the sweep's, and the
sweep's `register_model` registers from them, through its gate.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlform import gitinfo
from mlform.context import Context, Outcome
from mlform.errors import ApplyError, RunFailed
from mlform.gitinfo import GitInfo
from mlform.kinds.runconfig import gated, runner
from mlform.kinds.runconfig.payload import RunPayload
from mlform.plan.model import Action, Change, Desired
from mlform.state.runs import Experiment, RunRow
from mlform.sweeps import engine
from mlform.sweeps.job import STEERING, SUMMARY, Sweep, shown, substitute, trial_digest
from mlform.sweeps.job import seed as derived_seed
from mlform.tracking.protocol import OUTPUTS

if TYPE_CHECKING:
    import optuna

    from mlform.sweeps.space import Value
    from mlform.tracking.tail import MetricPoint

_TERMINATED = "early termination"  # how a trial stopped by the policy's run error begins


@dataclass
class Trial:
    number: int
    params: dict[str, Value]
    digest: str
    status: str = "queued"  # completed | reused | terminated | failed | running
    run_id: str | None = None
    run_dir: str | None = None
    value: float | None = None
    intervals: list[float] = field(default_factory=list)  # the primary metric, as logged
    reused_from: str | None = None
    error: str | None = None


class SweepRun:
    def __init__(
        self, change: Change, payload: RunPayload, ctx: Context, build: runner.Build
    ) -> None:
        assert change.after is not None and payload.spec.sweep is not None
        assert payload.trial_job is not None
        self.change, self.payload, self.ctx, self.build = change, payload, ctx, build
        self.spec = payload.spec
        self.sweep: Sweep = payload.spec.sweep
        self.address = change.address
        self.trials_at = f"{change.address}/trial"  # its trials' runs: …/trial0, …/trial1
        self.id = f"{self.spec.name}_{time.strftime('%Y%m%d_%H%M%S')}_{secrets.token_hex(2)}"
        self.dir = ctx.state_dir / "runs" / self.id
        self.trials: list[Trial] = []
        self.versions: dict[str, str] = {}
        self.inputs: dict[str, str] = {}
        self.lock = threading.Lock()
        self.deadline: float | None = None
        self.git: GitInfo | None = None

    def _git(self) -> GitInfo:
        """The code's git state, looked up once for all the sweep's trials."""
        with self.lock:
            if self.git is None:
                ctx = self.ctx
                where = self.spec.code or ctx.config.root
                self.git = gitinfo.describe(where, ignore=(ctx.state_dir, ctx.cache))
            return self.git

    def log(self, message: str) -> None:
        self.ctx.log(self.address, message)

    def execute(self) -> Outcome:
        # start-up: Optuna only when a sweep runs
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sweep, ctx = self.sweep, self.ctx
        started = time.time()
        parent = RunRow(
            id=self.id,
            experiment=self.spec.experiment,
            name=self.spec.name,
            status="running",
            compute="sweep",
            run_dir=str(self.dir),
            runconfig=self.address,
            display_name=self.spec.display_name,
            created_at=started,
            started_at=started,
            digest=self.change.after.digest if self.change.after else None,
        )
        ctx.emit([Experiment(self.spec.experiment), parent], wait=True)
        if sweep.limits.timeout is not None:
            self.deadline = time.monotonic() + sweep.limits.timeout
        # what steers the search, and only that: a description edited never changes it
        steering = {k: self.spec.body[k] for k in STEERING if k in self.spec.body}
        study = optuna.create_study(
            direction="maximize" if sweep.objective.maximize else "minimize",
            sampler=engine.sampler(
                sweep.sampling, sweep.space, derived_seed(self.spec.name, steering), sweep.total
            ),
            pruner=engine.pruner(sweep.policy) if sweep.policy else optuna.pruners.NopPruner(),
        )
        self._search(study)
        return self._finish(parent)

    # -- the search ----------------------------------------------------------------------

    def _search(self, study: optuna.Study) -> None:
        total, concurrent = self.sweep.total, self.sweep.limits.concurrent
        running: dict[Future[None], tuple[Trial, optuna.trial.Trial]] = {}
        stopping = False
        with ThreadPoolExecutor(max_workers=concurrent) as pool:
            while True:
                while not stopping and len(self.trials) < total and len(running) < concurrent:
                    if self._out_of_time():
                        self.log(
                            f"the sweep's timeout ({self.sweep.limits.timeout:g} s) was reached"
                        )
                        stopping = True
                        break
                    asked = study.ask()
                    params = {p.name: p.suggest(asked) for p in self.sweep.space}
                    assert self.payload.trial_job is not None
                    trial = Trial(
                        len(self.trials), params, trial_digest(self.payload.trial_job, params)
                    )
                    self.trials.append(trial)
                    if self._reuse(trial):
                        for interval, value in enumerate(trial.intervals, start=1):
                            asked.report(value, interval)  # as the pruner saw it then
                        self._tell(study, asked, trial)
                        continue
                    running[pool.submit(self._run, trial, asked)] = (trial, asked)
                if not running:
                    break
                done, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in done:
                    trial, asked = running.pop(future)
                    future.result()
                    self._tell(study, asked, trial)
                    self._report("running")
                if self.ctx.cancelled.is_set():
                    stopping = True

    def _out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def _tell(self, study: optuna.Study, asked: optuna.trial.Trial, trial: Trial) -> None:
        from optuna.trial import TrialState

        if trial.status in ("completed", "reused") and trial.value is not None:
            study.tell(asked, trial.value)
        elif trial.status == "terminated":
            study.tell(asked, state=TrialState.PRUNED)
        else:
            study.tell(asked, state=TrialState.FAIL)

    # -- one trial -----------------------------------------------------------------------

    def _reuse(self, trial: Trial) -> bool:
        """Take over the run on record for the trial's digest, if it completed or was
        terminated early; False when the trial has to run."""
        # A trial stopped early is reused only while the policy that stopped it is the
        # one declared: under another, it might have run to its end.
        policy = self.sweep.policy
        stopped = f"{_TERMINATED}: {policy.describe()} at " if policy else None
        rows = self.ctx.read(
            "select id, status, error, run_dir, reused_from from runs "
            "where starts_with(runconfig, ?) and digest = ? and (status = 'completed' or "
            "(status = 'canceled' and ? is not null and starts_with(error, ?))) "
            "order by created_at desc limit 1",
            [self.trials_at, trial.digest, stopped, stopped],
        )
        if not rows:
            return False
        earlier, status, error, run_dir, reused = rows[0]
        source = str(reused or earlier)
        metric = self.sweep.objective.primary_metric
        points = self.ctx.read(
            "select value from metrics where run_id = ? and key = ? order by step, ts",
            [source, metric],
        )
        trial.intervals = [float(v) for (v,) in points if v is not None]
        completed = status == "completed"
        trial.value = trial.intervals[-1] if trial.intervals and completed else None
        trial.reused_from, trial.run_dir = source, str(run_dir)
        trial.status = "reused" if completed else "terminated"
        trial.error = error
        trial.run_id = f"{self.spec.name}_trial{trial.number}_{secrets.token_hex(3)}"
        now = time.time()
        self.ctx.emit(
            [
                RunRow(
                    id=trial.run_id,
                    experiment=self.spec.experiment,
                    name=f"{self.spec.name}_trial{trial.number}",
                    status=str(status),
                    compute=self.spec.compute,
                    run_dir=str(run_dir),
                    runconfig=f"{self.trials_at}{trial.number}",
                    parent_id=self.id,
                    created_at=now,
                    started_at=now,
                    ended_at=now,
                    inputs=_inputs(trial.params),
                    digest=trial.digest,
                    reused_from=source,
                    error=error,
                )
            ]
        )
        said = "" if trial.value is None else f" ({metric} {trial.value:.6g})"
        self.log(f"trial {trial.number} {_shown(trial.params)}: reused run {source}{said}")
        return True

    def _run(self, trial: Trial, asked: optuna.trial.Trial) -> None:
        """Run one trial to its end, letting the policy stop it; never raises: what
        happened is the trial's status."""
        trial.status = "running"
        spec, job = self.spec, self.spec.job[1]
        variables = dict(spec.variables)
        variables.update({f"AZUREML_SWEEP_{k}": shown(v) for k, v in trial.params.items()})
        inputs: dict[str, Any] = dict(spec.inputs)
        inputs.update(_inputs(trial.params))
        trial_spec = replace(
            spec,
            name=f"{spec.name}_trial{trial.number}",
            body=dict(job),
            command=substitute(spec.command, trial.params),
            variables=variables,
            inputs=inputs,
            register_model=None,
            sweep=None,
        )
        payload = RunPayload(trial_spec, self.payload.snap, git=self._git())
        address = f"{self.trials_at}{trial.number}"
        desired = Desired(
            address=address,
            kind="runconfig",
            name=trial_spec.name,
            digest=trial.digest,
            components={},
            spec=dict(job),
            deps=(),
            source=str(spec.source),
            payload=payload,
        )
        change = Change(Action.RUN, address, "runconfig", trial_spec.name, (), None, desired)
        self.log(f"trial {trial.number} {_shown(trial.params)}: running")
        metric = self.sweep.objective.primary_metric
        policy = self.sweep.policy

        def stop(points: list[MetricPoint]) -> str | None:
            for point in points:
                if point.key != metric:
                    continue
                trial.intervals.append(point.value)
                interval = len(trial.intervals)
                asked.report(point.value, interval)
                if policy is not None and asked.should_prune():
                    return (
                        f"{_TERMINATED}: {policy.describe()} at interval {interval}, "
                        f"{metric} {point.value:.6g}"
                    )
            if self._out_of_time():
                return f"the sweep's timeout ({self.sweep.limits.timeout:g} s) was reached"
            return None

        try:
            outcome = runner.run(change, payload, self.ctx, self.build, self.id, stop)
        except RunFailed as err:
            trial.run_id, trial.error = err.run_id, str(err).splitlines()[0]
            terminated = _TERMINATED in trial.error
            trial.status = "terminated" if terminated else "failed"
            self.log(f"trial {trial.number}: {trial.error.partition(': ')[2] or trial.error}")
            return
        except ApplyError as err:
            trial.status, trial.error = "failed", str(err).splitlines()[0]
            self.log(f"trial {trial.number}: failed: {trial.error}")
            return
        self.ctx.emit(outcome.records)
        trial.run_id = str(outcome.outputs["run_id"])
        trial.run_dir = str(outcome.outputs["run_dir"])
        with self.lock:
            self.versions.update(outcome.outputs.get("versions") or {})
            self.inputs.update(
                {
                    k: v
                    for k, v in (outcome.outputs.get("inputs") or {}).items()
                    if not k.startswith("search_space.")
                }
            )
        final = self._final(trial, metric)
        trial.value = final
        trial.status = "completed"
        if final is None:
            trial.error = f"it logged no {metric}"
            self.log(f"trial {trial.number}: completed, but logged no {metric}")
        else:
            self.log(f"trial {trial.number}: completed, {metric} {final:.6g}")

    def _final(self, trial: Trial, metric: str) -> float | None:
        """A trial's value: the last it logged of the primary metric, as the policy saw
        it come; else (logged some other way) as recorded, once its records are."""
        if trial.intervals:
            return trial.intervals[-1]
        self.ctx.emit([], wait=True)  # its records, emitted before, are committed now
        rows = self.ctx.read(
            "select value from metrics where run_id = ? and key = ? "
            "order by step desc, ts desc limit 1",
            [trial.run_id, metric],
        )
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    # -- the result ----------------------------------------------------------------------

    def ranked(self) -> list[Trial]:
        """The trials that logged the primary metric, best first (the first of equals)."""
        done = [
            t for t in self.trials if t.status in ("completed", "reused") and t.value is not None
        ]
        sign = -1.0 if self.sweep.objective.maximize else 1.0
        return sorted(done, key=lambda t: (sign * float(t.value or 0.0), t.number))

    def _finish(self, parent: RunRow) -> Outcome:
        metric = self.sweep.objective.primary_metric
        ranked = self.ranked()
        counts = {
            status: sum(1 for t in self.trials if t.status == status)
            for status in ("completed", "reused", "terminated", "failed")
        }
        said = ", ".join(f"{n} {status}" for status, n in counts.items() if n) or "no trial"
        if self.ctx.cancelled.is_set():  # Ctrl-C: its trials were stopped, nothing chosen
            ended = replace(parent, status="canceled", ended_at=time.time(), error="canceled")
            self.ctx.emit([ended])
            self._report("canceled")
            raise RunFailed(f"{self.address}: run {self.id} canceled ({said})", self.id)
        if not ranked:
            why = next((t.error for t in self.trials if t.error), None)
            error = f"no trial logged its primary metric {metric} ({said})" + (
                f"; the first: {why}" if why else ""
            )
            self.ctx.emit([replace(parent, status="failed", ended_at=time.time(), error=error)])
            self._report("failed")
            raise ApplyError(
                f"{self.address}: run {self.id}: {error}. Each trial must log {metric} "
                "(mlflow.log_metric or mlform.log_metric), as objective.primary_metric says"
            )
        best = ranked[0]
        assert best.run_id is not None and best.run_dir is not None and best.value is not None
        final = replace(
            parent,
            status="completed",
            ended_at=time.time(),
        )
        self.ctx.emit([final])
        self._report("completed", best)
        before = dict(self.change.before.outputs) if self.change.before else {}
        outputs: dict[str, Any] = {
            "run_id": self.id,
            "status": "completed",
            "experiment": self.spec.experiment,
            "run_dir": best.run_dir,
            "best_trial": best.run_id,
            "best_value": best.value,
            "trials": counts,
            "versions": self.versions or before.get("versions") or {},
            "inputs": self.inputs or before.get("inputs") or {},
        }
        if self.deadline is not None and self._out_of_time():
            said += f"; stopped by its timeout of {self.sweep.limits.timeout:g} s"
        message = (
            f"run {self.id} completed: {len(self.trials)} trials ({said}); best trial "
            f"{best.number} {_shown(best.params)}, {metric} {best.value:.6g}"
        )
        if self.spec.register_model is None:
            return Outcome(outputs, message=message)
        folder = Path(best.run_dir)
        values = {f"outputs.{name}": str(folder / OUTPUTS / name) for name in self.spec.outputs}
        registered = gated.register_output(self.ctx, self.spec, best.run_id, folder, values)
        outputs.update(registered.outputs)
        self.log(registered.message)
        return Outcome(outputs, list(registered.records), f"{message}; {registered.message}")

    def _report(self, status: str, best: Trial | None = None) -> None:
        """The sweep's trials in its run folder, ranked, for `runs show`."""
        self.dir.mkdir(parents=True, exist_ok=True)
        rank = {t.number: i for i, t in enumerate(self.ranked(), start=1)}
        data = {
            "run_id": self.id,
            "status": status,
            "objective": asdict(self.sweep.objective),
            "best": best.run_id if best else None,
            "trials": [
                {
                    **asdict(t),
                    "rank": rank.get(t.number),
                    "intervals": len(t.intervals),
                    "last": t.intervals[-1] if t.intervals else None,
                }
                for t in self.trials
            ],
        }
        partial = self.dir / f".{SUMMARY}.partial"
        partial.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
        os.replace(partial, self.dir / SUMMARY)


def _inputs(params: Mapping[str, Value]) -> dict[str, str]:
    """A trial's parameters as its run's inputs show them."""
    return {f"search_space.{k}": shown(v) for k, v in params.items()}


def _shown(params: Mapping[str, Value]) -> str:
    return "(" + ", ".join(f"{k}={shown(v)}" for k, v in params.items()) + ")"
