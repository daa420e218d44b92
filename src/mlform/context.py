"""What a resource kind, and every package it calls, needs from the outside world.

Made by the front door (`mlform.workspace`) and passed down: the configuration, the
hasher, the user's cache, the state to read and write, and the datastores, opened once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mlform.cachedir import cache_dir
from mlform.hashing import Hasher
from mlform.loader import Config
from mlform.plan.model import Desired
from mlform.state.records import Record
from mlform.storage import Storage, open_storage


class Emit(Protocol):
    def __call__(self, records: Sequence[Record], wait: bool = False) -> None: ...


@dataclass
class Context:
    """What kinds need from the outside world, in one place."""

    config: Config
    hasher: Hasher
    cache: Path = field(default_factory=cache_dir)
    log: Callable[[str, str], None] = lambda address, message: None
    # Records a change writes before it ends (a run's status as it goes), each batch in a
    # transaction of its own, written by the thread that owns the state.
    # `wait=True` returns once they are committed (a run's row before its process starts).
    emit: Emit = lambda records, wait=False: None
    # Reads the state from any thread (a cursor of its own per call).
    read: Callable[[str, Sequence[Any]], list[tuple[Any, ...]]] = lambda sql, params: []
    cancelled: threading.Event = field(default_factory=threading.Event)  # set on Ctrl-C
    # A status line per running change on a terminal (None clears it); None off a terminal.
    progress: Callable[[str, str | None], None] | None = None
    # Jobs run with inputs of their own (a monitor's on_breach `with:`): their runs are
    # recorded, and their declared state is kept as it was, so the next plan is unchanged.
    invoked: frozenset[str] = frozenset()
    _storages: dict[str, Storage] = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        return self.config.home

    def storage(self, datastore: str) -> Storage:
        if datastore not in self._storages:
            spec = self.config.datastore(datastore)
            self._storages[datastore] = open_storage(spec, self.config.storage_options(spec))
        return self._storages[datastore]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What applying a change produced, recorded in the change's own transaction."""

    outputs: Mapping[str, Any]
    records: Sequence[Record] = ()
    message: str = ""
    # What was really applied, when the apply resolved something the plan could not know
    # yet (the model version a run registered in the same apply); None: `change.after`.
    applied: Desired | None = None
