"""The executor's Ctrl-C path, with a real state: a first Ctrl-C cancels between two
steps, never in the middle of a state write."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import duckdb
import pytest

import mlform.kinds.runconfig.kind
from mlform.apply.executor import execute
from mlform.context import Context, Outcome
from mlform.plan.model import Action, Change, Desired, Payload, Plan
from mlform.state.store import Identity, Store


class CtrlCWhileWriting:
    """A record whose write is hit by Ctrl-C, as a terminal's would, while DuckDB works."""

    def write(self, con: duckdb.DuckDBPyConnection, apply_id: str) -> None:
        con.execute("create table if not exists probe (n integer)")
        os.kill(os.getpid(), signal.SIGINT)
        con.execute("insert into probe select * from range(100000)")


class ProbePayload(Payload):
    pass


class Probe:
    """A kind whose apply records a CtrlCWhileWriting, then runs until it is cancelled."""

    payload = ProbePayload

    def __init__(self) -> None:
        self.saw_cancel = False

    def apply(self, change: Change, payload: ProbePayload, ctx: Context) -> Outcome:
        ctx.emit([CtrlCWhileWriting()], wait=True)
        self.saw_cancel = ctx.cancelled.wait(timeout=60)
        return Outcome({})


def test_ctrl_c_during_a_state_write_lets_it_commit_then_cancels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = Probe()
    # the registry takes a kind from its package's `kind` module
    monkeypatch.setattr(mlform.kinds.runconfig.kind, "KIND", probe)
    after = Desired(
        "runconfig/p",
        "runconfig",
        "p",
        "d",
        {},
        {},
        (),
        "runconfigs/p.yml:1",
        payload=ProbePayload(),
    )
    change = Change(Action.RUN, "runconfig/p", "runconfig", "p", ("new",), None, after)
    ctx: Any = Context(config=None, hasher=None)  # type: ignore[arg-type]
    with Store.open(tmp_path / "state.duckdb", "apply", write=True) as store:
        store.start_apply("a1")
        with pytest.raises(KeyboardInterrupt):
            execute(Plan((change,), 0, Identity(None, 0)), ctx, store, "a1")
        assert probe.saw_cancel
        assert store.query("select count(*) from probe") == [(100000,)]
        assert store.query("select status from resources") == [("applied",)]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
