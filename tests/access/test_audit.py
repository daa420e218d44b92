"""The audit log in the state: the servers' journal ingested once, whatever happens."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from mlform.access import audit, journal
from mlform.workspace import Workspace


def test_a_journal_ingested_twice_is_recorded_once(
    make_workspace: Callable[[Mapping[str, str]], Path],
) -> None:
    root = make_workspace({"workspace.yml": "name: demo\n"})
    ws = Workspace(root)
    state_dir = ws.state_path.parent
    log = journal.Journal(state_dir, "pipeline endpoint")
    log.record("denied", "anonymous", "POST /pipelines/echo/runs", 401, "no credential")
    log.record("invoke", "ci-bot", "pipeline/echo", 202, "run echo_1")
    # An ingest killed after its commit, before it emptied the file, leaves it whole.
    kept = shutil.copy(log.file, state_dir / "journal.copy")
    with ws.store("test", write=True) as store:  # every writer ingests first
        assert audit.ingest(store, state_dir) == 0  # the store already did
        shutil.copy(kept, log.file)
        assert audit.ingest(store, state_dir) == 2
        found = audit.events(store)
    assert [(e.actor, e.action, e.target, e.status, e.source) for e in found] == [
        ("anonymous", "denied", "POST /pipelines/echo/runs", "401", "pipeline endpoint"),
        ("ci-bot", "invoke", "pipeline/echo", "202", "pipeline endpoint"),
    ]
    assert log.file.read_bytes() == b""
