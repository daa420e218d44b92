"""Every error mlform raises on purpose derives from `MlformError`.

    MlformError                  a user error: printed as one message, never a traceback
    ├── WorkspaceNotFound        no workspace.yml here or above
    ├── ConfigInvalid            one or more `path:line:col: message` problems
    ├── PlanError                the desired state cannot be planned (protected delete, …)
    ├── StalePlan                a saved plan no longer matches the state or the files
    ├── StateError               the state file cannot be used
    │   ├── StateLocked          another process holds the lock
    │   ├── StateIncompatible    written by a newer mlform, corrupted, or not a state file
    │   └── StateConflict        a remote state moved on since it was read: not written over
    ├── ApplyError               a change failed while applying
    │   ├── BuildFailed          an environment build failed (carries pip's own output)
    │   └── RunFailed            a run did not complete (carries its id)
    ├── DatastoreError           a datastore cannot be reached or written
    ├── SecretError              a declared secret cannot be read or written here
    ├── EngineUnavailable        the Docker engine cannot be reached
    ├── InUse                    a model version serves a deployment and cannot go
    └── NotFound                 a named resource, version or run does not exist

The CLI maps these to exit codes in one place (`mlform.cli.main`).
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass


class MlformError(Exception):
    """A problem the user can fix; `str(err)` says what and how."""


class WorkspaceNotFound(MlformError):
    pass


# Control characters and bidirectional overrides, as a file can hold them in a key or a
# value that a message quotes: printed raw they would split the one-line `path:line:col`
# form, or drive the terminal (escape codes) and reorder what a reviewer reads.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with each control character written as its escape (`\\n`, `\\x1b`)."""
    return _UNPRINTABLE.sub(lambda m: m[0].encode("unicode_escape").decode("ascii"), text)


@dataclass(frozen=True, slots=True)
class Problem:
    """One configuration problem, located in a file."""

    path: str
    line: int
    col: int
    message: str
    severity: str = "error"

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", printable(self.path))
        object.__setattr__(self, "message", printable(self.message))

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.severity}: {self.message}"


class ConfigInvalid(MlformError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        errors = [p for p in problems if p.severity == "error"]
        noun = "error" if len(errors) == 1 else "errors"
        lines = [str(p) for p in problems]
        lines.append(f"validation failed: {len(errors)} {noun}")
        super().__init__("\n".join(lines))


class PlanError(MlformError):
    pass


class StalePlan(MlformError):
    pass


class StateError(MlformError):
    pass


class StateLocked(StateError):
    pass


class StateIncompatible(StateError):
    pass


class StateUnreadable(StateIncompatible):
    """The state file is not one DuckDB can read (damaged, or not a database)."""


class StateConflict(StateError):
    """A remote state changed since it was read: it is never written over."""

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(
            f"the state {url} changed since this process read it (another writer persisted "
            "it, or a lock was broken meanwhile); it was not written over. Run `mlform plan` "
            "to see the state as it is now"
        )


class ApplyError(MlformError):
    pass


class BuildFailed(ApplyError):
    pass


class RunFailed(ApplyError):
    def __init__(self, message: str, run_id: str) -> None:
        super().__init__(message)
        self.run_id = run_id


class DatastoreError(MlformError):
    pass


class SecretError(MlformError):
    pass


class EngineUnavailable(MlformError):
    pass


class InUse(MlformError):
    pass


class NotFound(MlformError):
    pass


def why_unreachable(reason: object) -> str:
    """Why a connection to a host failed, in the words a user would use: no such host,
    connection refused, timed out, or what the system said."""
    if isinstance(reason, socket.gaierror):
        return "no such host"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return str(reason.strerror)
    return str(reason)
