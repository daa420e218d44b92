"""Carry out a plan: each change in its own transaction, independent ones in parallel.

Workers do the slow part (copying data, building environments) on a thread pool; only
the main thread touches the state, writing each change and its records in one
transaction the moment it finishes. A failed change stops only the changes that depend
on it; everything else goes on, and the state says exactly what happened to each.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from types import FrameType

from mlform.context import Context, Outcome
from mlform.errors import MlformError
from mlform.kind import apply_change
from mlform.plan.diff import DELETED
from mlform.plan.model import Action, Change, Plan
from mlform.state.records import Event, Record, Recorded, ResourceRow
from mlform.state.store import Store

_EMIT_WAIT = 30.0  # seconds a worker waits for its records to be committed


class Status(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Result:
    change: Change
    status: Status
    message: str
    seconds: float = 0.0


Report = Callable[[Result], None]


def execute(
    plan: Plan,
    ctx: Context,
    store: Store,
    apply_id: str,
    *,
    parallelism: int = 4,
    report: Report = lambda result: None,
) -> list[Result]:
    results: dict[str, Result] = {}
    waiting = {c.address: len(set(c.deps)) for c in plan.changes}
    users: dict[str, list[Change]] = {}
    for change in plan.changes:
        for dep in set(change.deps):
            users.setdefault(dep, []).append(change)
    ready = deque(c for c in plan.changes if waiting[c.address] == 0)
    running: dict[Future[Outcome], tuple[Change, float]] = {}
    emitted: queue.SimpleQueue[tuple[Sequence[Record], threading.Event | None]]
    emitted = queue.SimpleQueue()
    # Set when records are emitted or a change ends: the main thread has work at once (a
    # worker waiting for its records to be committed waits for no poll).
    work = threading.Event()

    def emit(records: Sequence[Record], wait: bool = False) -> None:
        done = threading.Event() if wait else None
        emitted.put((records, done))
        work.set()
        if done is not None:
            done.wait(timeout=_EMIT_WAIT)

    ctx.emit = emit
    ctx.read = store.read

    def drain() -> None:
        """Commit what was emitted since the last look, in the order it was: in one
        transaction (runs side by side emit many small batches), cut after the last batch
        a worker waits for, so that it goes on without waiting for what came after."""
        batch: list[Record] = []
        while not emitted.empty():
            records, done = emitted.get()
            batch.extend(records)
            if done is not None:
                store.write(apply_id, batch)
                batch = []
                done.set()
        if batch:
            store.write(apply_id, batch)

    def settle(result: Result) -> None:
        """Record an outcome, then release its users, or skip them (and theirs) if it
        did not succeed. Each finished change looks only at its own users."""
        stack = [result]
        while stack:
            done = stack.pop()
            results[done.change.address] = done
            report(done)
            for user in users.get(done.change.address, ()):
                if user.address in results:
                    continue
                if done.status is not Status.SUCCEEDED:
                    why = f"{done.change.address} did not succeed"
                    _skip_event(store, apply_id, user, why)
                    stack.append(Result(user, Status.SKIPPED, why))
                else:
                    waiting[user.address] -= 1
                    if waiting[user.address] == 0:
                        ready.append(user)

    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool, _ctrl_c_cancels(ctx):
        try:
            while ready or running:
                if ctx.cancelled.is_set():
                    raise KeyboardInterrupt
                while ready and len(running) < parallelism:
                    change = ready.popleft()
                    if change.address not in results:
                        future = pool.submit(apply_change, change, ctx)
                        future.add_done_callback(lambda _: work.set())
                        running[future] = (change, time.monotonic())
                if not running:
                    break
                work.wait(timeout=0.05)
                work.clear()  # what comes after this is seen on the next round
                finished = [future for future in running if future.done()]
                drain()
                for future in finished:
                    change, started = running.pop(future)
                    settle(
                        _record(store, apply_id, change, future, time.monotonic() - started, ctx)
                    )
                store.idle()  # between writes, readers may open the state
            if ctx.cancelled.is_set():
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            ctx.cancelled.set()
            for future, (change, started) in list(running.items()):
                with contextlib.suppress(BaseException):
                    future.exception()  # a second Ctrl-C here leaves at once
                drain()
                settle(_record(store, apply_id, change, future, time.monotonic() - started, ctx))
            _skip_rest(plan, results, store, apply_id, "interrupted", report)
            raise
    _skip_rest(plan, results, store, apply_id, "not started", report)
    return [results[c.address] for c in plan.changes if c.address in results]


@contextlib.contextmanager
def _ctrl_c_cancels(ctx: Context) -> Iterator[None]:
    """A first Ctrl-C only sets `ctx.cancelled`; the loop above turns it into
    KeyboardInterrupt between two steps. Raised wherever the main thread happened to be,
    it could cut a state write in two, or land inside DuckDB, which turns it into a
    RuntimeError ("Query interrupted") that no `except KeyboardInterrupt` sees: the apply
    then waited for its runs to end on their own. A second Ctrl-C leaves at once."""
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield  # not ours to take over (a thread, or an embedding program's handler)
        return

    def first(signum: int, frame: FrameType | None) -> None:
        ctx.cancelled.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _skip_rest(
    plan: Plan, results: dict[str, Result], store: Store, apply_id: str, why: str, report: Report
) -> None:
    for change in plan.changes:
        if change.address not in results:
            _skip_event(store, apply_id, change, why)
            results[change.address] = result = Result(change, Status.SKIPPED, why)
            report(result)


def _record(
    store: Store,
    apply_id: str,
    change: Change,
    future: Future[Outcome],
    seconds: float,
    ctx: Context,
) -> Result:
    error = future.exception()
    if error is None:
        outcome = future.result()
        kept = change.before if change.address in ctx.invoked else None
        records: list[Record] = [
            *outcome.records,
            _row(change, outcome) if kept is None else _kept_row(kept),
            Event(change.address, change.action, Status.SUCCEEDED, outcome.message),
        ]
        store.write(apply_id, records)
        return Result(change, Status.SUCCEEDED, outcome.message, seconds)
    if isinstance(error, MlformError):
        message = str(error)
    elif isinstance(error, KeyboardInterrupt):
        message = "interrupted"
    else:
        message = "".join(traceback.format_exception(error)).strip()
    # what a driver raised may quote the credential it was given
    message = ctx.config.vault.scrub(message)
    failed = Event(change.address, change.action, Status.FAILED, message)
    # a job run with inputs of its own that failed leaves its declared state as it was
    keep = change.before is not None and change.address in ctx.invoked
    store.write(apply_id, [failed] if keep else [_failed_row(change, message), failed])
    return Result(change, Status.FAILED, message, seconds)


def _skip_event(store: Store, apply_id: str, change: Change, why: str) -> None:
    store.event(apply_id, change.address, change.action, Status.SKIPPED, why)


def _row(change: Change, outcome: Outcome) -> ResourceRow:
    if change.action is Action.DELETE:
        before = change.before
        assert before is not None
        return ResourceRow(
            before.address,
            before.kind,
            before.name,
            None,
            before.components,
            before.spec,
            outcome.outputs,
            DELETED,
            None,
            False,
            before.source,
        )
    after = outcome.applied or change.after
    assert after is not None
    return ResourceRow(
        after.address,
        after.kind,
        after.name,
        after.digest,
        after.components,
        after.spec,
        outcome.outputs,
        "applied",
        None,
        after.protect,
        after.source,
    )


def _kept_row(before: Recorded, status: str = "applied", error: str | None = None) -> ResourceRow:
    """The row as it was recorded, with `status`: a job run with inputs of its own keeps
    the state its declaration was applied with; a failed change its last good one."""
    return ResourceRow(
        before.address,
        before.kind,
        before.name,
        before.digest,
        before.components,
        before.spec,
        before.outputs,
        status,
        error,
        before.protect,
        before.source,
    )


def _failed_row(change: Change, message: str) -> ResourceRow:
    """Keep the last good digest and outputs, so the next plan retries with the reason."""
    before, after = change.before, change.after
    if before is not None and before.status != DELETED:
        return _kept_row(before, "failed", message)
    assert after is not None
    outputs = before.outputs if before is not None else {}
    return ResourceRow(
        after.address,
        after.kind,
        after.name,
        None,
        after.components,
        after.spec,
        outputs,
        "failed",
        message,
        after.protect,
        after.source,
    )
