"""One reconciliation per tick: fetch, validate, plan, apply (or wait for approval), and
record the commit the state reflects.

A tick with a new commit syncs to it; a tick without one plans again and heals what
drifted (a deployment that died, an environment deleted). A plan that changes a kind
the policy holds back waits for `mlform agent approve`, recorded in the state against
that plan's digest: a later commit, or drift, makes another plan that waits anew.
Everything the loop does is one JSON line on stderr, for log collectors to read.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from mlform.agent.checkout import Checkout
from mlform.errors import ConfigInvalid, MlformError
from mlform.plan import render
from mlform.plan.model import Plan
from mlform.state import syncs
from mlform.workspace import Workspace, breach_jobs


@dataclass
class Gauges:
    """What /metrics shows, as the loop last saw it."""

    commit: str = ""
    synced_at: float = 0.0
    result: str = "starting"
    drift: int = 0  # changes the last plan found without a new commit
    waiting: int = 0  # plans held for approval
    ticks: int = 0
    applies: int = 0
    apply_seconds: float = 0.0
    failures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class JsonLog:
    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def __call__(self, event: str, **fields: Any) -> None:
        line = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": event}
        line.update(fields)
        with self._lock:
            self.stream.write(json.dumps(line, default=str) + "\n")
            self.stream.flush()


class Agent:
    def __init__(
        self,
        checkout: Checkout,
        *,
        interval: float,
        log: JsonLog,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.checkout = checkout
        self.interval = interval
        self.log = log
        self.clock = clock
        self.gauges = Gauges()
        self.wake = threading.Event()  # set by the webhook: fetch now

    def run(self, stop: threading.Event) -> None:
        """Tick until `stop` is set; a KeyboardInterrupt (Ctrl-C, or SIGTERM turned into
        one) ends an apply in flight by its rules, and then the loop."""
        while not stop.is_set():
            try:
                self.tick()
            except Exception as err:  # a bug in one tick must not end the agent
                self._result("failed", "".join(traceback.format_exception(err)).strip())
            self.wake.wait(self.interval)
            self.wake.clear()

    def tick(self) -> None:
        ws = self._reconcile()
        if ws is not None:
            self._monitor(ws)

    def _reconcile(self) -> Workspace | None:
        """Bring the state to the branch's commit; the workspace, once it is checked out
        and readable."""
        gauges = self.gauges
        gauges.ticks += 1
        try:
            commit = self.checkout.sync()
        except MlformError as err:
            self._result("fetch failed", str(err))
            return None
        ws = Workspace(self.checkout.workspace)
        try:
            with ws.store("agent") as store:
                synced = syncs.last(store, applied=True)
        except MlformError as err:
            self._result("failed", str(err), commit)
            return None
        new = synced is None or synced.commit != commit
        if new:
            self.log("commit", commit=commit, branch=self.checkout.branch)
        try:
            ws.validate()
            now = self.clock()
            due = [fire.job for fire in ws.due(now)]
            plan = ws.plan(rerun=due)
        except ConfigInvalid as err:
            self._record(ws, commit, "invalid", f"{len(err.problems)} problems")
            self.log("invalid", commit=commit, problems=[str(p) for p in err.problems])
            return None
        except MlformError as err:
            self._result("failed", str(err), commit)
            return None
        try:
            ws.keep_captures()  # what deployments captured, to a datastore in the cloud
        except MlformError as err:
            self.log("error", message=f"captured requests stay in the outbox: {err}")
        # a scheduled rerun is not drift: the files asked for it
        drifted = [c.address for c in plan.changes if c.address not in due]
        gauges.drift = 0 if new else len(drifted)
        if not plan.changes:
            if new:
                self._record(ws, commit, "no changes")
            gauges.waiting = 0
            self._result("no changes", commit=commit)
            return ws
        if not new and drifted:
            self.log("drift", commit=commit, changes=drifted)
        held = [c.address for c in plan.changes if ws.config.agent.holds(c.kind)]
        saved = None
        if held:
            digest = plan_digest(plan)
            with ws.store("agent", write=True) as store:
                approval = syncs.request(store, commit, digest, plan.summary())
                if approval.approved_at is None:
                    syncs.record(store, commit, self.checkout.branch, "waiting for approval")
            if approval.approved_at is None:
                gauges.waiting = 1
                self._result(
                    "waiting for approval", commit=commit, plan=digest, held=held, log=True
                )
                return ws
            saved = render.as_dict(plan)  # exactly the plan approved, or nothing
        gauges.waiting = 0
        self._apply(ws, commit, plan, saved, now)
        return ws

    def _monitor(self, ws: Workspace) -> None:
        """Compute the monitors due now, each run logged with what breached."""
        try:
            done = ws.run_monitors(self.clock())
        except MlformError as err:
            self.log("error", message=f"monitors: {err}")
            return
        for monitored in done:
            result = monitored.run
            breached = sorted(
                {
                    f"{v.signal}.{v.feature}" if v.feature else v.signal
                    for v in result.values
                    if v.breached
                }
            )
            self.log("monitored", monitor=result.monitor, run=result.run.id, breached=breached)
        jobs = breach_jobs(done)
        if not jobs:
            return
        self.log("on_breach", jobs=list(jobs))
        try:
            report = ws.apply(
                auto_approve=True,
                rerun=[job for job, given in jobs.items() if not given],
                inputs=jobs,
                log=lambda address, line: self.log("progress", address=address, line=line),
            )
        except MlformError as err:
            self._result("failed", str(err))
            return
        failed = [f"{r.change.address}: {r.message}" for r in report.failed]
        self._result("applied" if report.ok else "failed", "; ".join(failed) or None)

    def _apply(
        self, ws: Workspace, commit: str, plan: Plan, saved: dict[str, Any] | None, now: datetime
    ) -> None:
        self.log("apply", commit=commit, changes=[c.address for c in plan.changes])
        began = time.monotonic()
        try:
            report = ws.apply(
                saved=saved,
                auto_approve=True,
                schedules_at=now,
                log=lambda address, line: self.log("progress", address=address, line=line),
            )
        except MlformError as err:
            self._record(ws, commit, "failed", str(err))
            self._result("failed", str(err), commit)
            return
        finally:
            seconds = time.monotonic() - began
            with self.gauges.lock:
                self.gauges.applies += 1
                self.gauges.apply_seconds += seconds
        for fire in report.fired:
            self.log(
                "scheduled",
                schedule=fire.schedule,
                occurrence=fire.occurrence.isoformat(),
                missed=fire.missed,
                job=fire.job,
            )
        failed = [f"{r.change.address}: {r.message}" for r in report.failed]
        result = "applied" if report.ok else "failed"
        self._record(ws, commit, result, "; ".join(failed))
        self._result(result, "; ".join(failed) or None, commit, log=True, seconds=seconds)

    def _record(self, ws: Workspace, commit: str, result: str, detail: str = "") -> None:
        try:
            with ws.store("agent", write=True) as store:
                syncs.record(store, commit, self.checkout.branch, result, detail)
        except MlformError as err:
            self.log("error", message=f"cannot record the sync of {commit}: {err}")

    def _result(
        self,
        result: str,
        message: str | None = None,
        commit: str | None = None,
        *,
        log: bool = True,
        **fields: Any,
    ) -> None:
        gauges = self.gauges
        with gauges.lock:
            gauges.result = result
            if commit is not None:
                gauges.commit = commit
            gauges.synced_at = time.time()
            if result in ("failed", "fetch failed", "invalid"):
                gauges.failures += 1
        if log:
            extra = {"message": message} if message else {}
            self.log(result.replace(" ", "_"), commit=commit, **extra, **fields)


def plan_digest(plan: Plan) -> str:
    """What an approval is for: this plan's changes, each action and target."""
    text = json.dumps(plan.signature(), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def folder_for(source: str, home: Path) -> Path:
    """A working folder for a remote, under `home`, named after it."""
    return home / "agent" / hashlib.sha256(source.encode()).hexdigest()[:12]
