"""The hook through which schedules ask the agent for runs.

Each tick, the agent asks every hook in HOOKS which runconfigs are due now; those are
planned and applied as reruns (`mlform apply --rerun`), under the same policy as any
change. Schedules register their hook here; with none registered, nothing is due.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime

from mlform.loader import Config

Due = Callable[[Config, datetime], Collection[str]]  # the runconfig names due now
HOOKS: list[Due] = []


def due(config: Config, now: datetime) -> list[str]:
    found: list[str] = []
    for hook in HOOKS:
        found.extend(name for name in hook(config, now) if name not in found)
    return found
