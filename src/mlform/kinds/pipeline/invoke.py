"""A published pipeline run now, with input overrides, outside plan and apply.

Invoking runs the pipeline's default version (the latest applied) with the inputs given;
the files must still declare that version (else apply first), so what runs is what was
reviewed. Steps are reused as in any run.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Mapping, Sequence

from mlform.access import actor, audit
from mlform.context import Context
from mlform.errors import MlformError, NotFound, PlanError
from mlform.hashing import Hasher
from mlform.kind import desire_all
from mlform.kinds.environment.kind import ensure_built
from mlform.kinds.pipeline.execute import PipelineRun, StepResult
from mlform.kinds.pipeline.kind import PipelinePayload
from mlform.opened import OpenWorkspace
from mlform.state.records import Record
from mlform.state.runs import RunRow


def invoke(
    ws: OpenWorkspace,
    name: str,
    overrides: Mapping[str, str],
    *,
    run_id: str | None = None,
    log: Callable[[str, str], None] = lambda address, message: None,
) -> tuple[dict[str, StepResult], RunRow]:
    """Run the published pipeline `name` now, its inputs overridden by `overrides`."""
    config = ws.validate()  # its steps' secrets readable here, before anything runs
    address = f"pipeline/{name}"
    if address not in config.specs:
        known = sorted(s.name for s in config.specs.values() if s.kind == "pipeline")
        raise NotFound(f"no pipeline named '{name}' (pipelines: {', '.join(known) or 'none'})")
    spec = config.specs[address]
    declared = dict(spec.body.get("inputs") or {})
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise MlformError(
            f"pipeline {name} has no input {', '.join(unknown)} "
            f"(inputs: {', '.join(sorted(declared)) or 'none'})"
        )
    with ws.store("pipelines invoke", write=True) as store:
        recorded = store.recorded().get(address)
        hasher = Hasher(config.home / "cache" / "hashes.json")
        ctx = Context(config, hasher, log=log)
        ctx.read = store.read
        want = desire_all(config, ctx)[address]
        if recorded is None or recorded.digest is None:
            raise PlanError(
                f"pipeline {name} is not published yet: run `mlform apply` to publish it"
            )
        if recorded.spec != want.spec:
            version = recorded.outputs.get("version", "?")
            raise PlanError(
                f"pipeline {name} has changes that are not applied (the published version "
                f"is {version}); run `mlform apply` first, so what runs is what was reviewed"
            )
        payload = want.payload
        assert isinstance(payload, PipelinePayload)
        pipeline, snaps, statics = payload.spec, payload.snaps, payload.statics
        assert store.lock is not None and store.lock.info is not None
        writer = _Writer(store.write, store.lock.info.id, store.idle)
        ctx.emit = writer.emit
        run = PipelineRun(address, pipeline, snaps, statics, ctx, ensure_built, overrides, run_id)
        outcome = writer.drive(run.execute)
        hasher.save()
        if run_id is None:  # else the pipeline endpoint started it, and recorded who asked
            said = ", ".join(f"{k}={v}" for k, v in overrides.items())
            message = f"run {outcome[1].id}" + (f" with {said}" if said else "")
            audit.record(store, actor.os_user(), "invoke", address, outcome[1].status, message)
        return outcome


class _Writer:
    """Records from the step threads, written by this thread (DuckDB's one writer), which
    lets readers at the state (`idle`) between writes."""

    def __init__(
        self,
        write: Callable[[str, Sequence[Record]], None],
        apply_id: str,
        idle: Callable[[], None],
    ) -> None:
        self.write, self.apply_id, self.idle = write, apply_id, idle
        self.queue: queue.SimpleQueue[tuple[Sequence[Record], threading.Event | None]]
        self.queue = queue.SimpleQueue()

    def emit(self, records: Sequence[Record], wait: bool = False) -> None:
        done = threading.Event() if wait else None
        self.queue.put((records, done))
        if done is not None:
            done.wait(timeout=30)

    def drive(
        self, work: Callable[[], tuple[dict[str, StepResult], RunRow]]
    ) -> tuple[dict[str, StepResult], RunRow]:
        result: list[tuple[dict[str, StepResult], RunRow]] = []
        failure: list[BaseException] = []

        def target() -> None:
            try:
                result.append(work())
            except BaseException as err:  # handed to the calling thread
                failure.append(err)

        thread = threading.Thread(target=target, name="pipeline")
        thread.start()
        while thread.is_alive() or not self.queue.empty():
            try:
                records, done = self.queue.get(timeout=0.05)
            except queue.Empty:
                self.idle()
                continue
            self.write(self.apply_id, records)
            if done is not None:
                done.set()
        thread.join()
        if failure:
            raise failure[0]
        return result[0]
