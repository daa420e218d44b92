"""A workspace as the commands of one concept see it: its files read, its state at hand.

`mlform.workspace.Workspace` is one; the packages below the front door (models,
endpoints, pipelines, tokens) take this protocol, so they never import the front door.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from mlform.loader import Config
from mlform.state.store import Store


class OpenWorkspace(Protocol):
    root: Path

    @property
    def config(self) -> Config: ...

    @property
    def state_path(self) -> Path: ...

    @property
    def home(self) -> Path: ...

    def validate(self) -> Config:
        """The configuration, with every secret its resources use readable here."""
        ...

    def store(self, operation: str, *, write: bool = False, wait: float = 0.0) -> Store:
        """The state, open; a writer is refused a state another workspace applies to."""
        ...
