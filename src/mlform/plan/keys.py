"""Component keys: what a resource's digest is made of, one typed key per part.

A resource's components map each key to a digest (or a short value). The state stores
them as JSON with the key's string form (`spec`, `file:data/a.csv`, `dep:data/iris`,
`secret:API_TOKEN`, …), which never changes: `str(key)` writes it, `parse` reads it
back, and `parse(str(key)) == key`. The planner dispatches on the key's type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Spec:
    """The canonical body of the file."""

    def __str__(self) -> str:
        return "spec"


@dataclass(frozen=True, slots=True)
class Code:
    """A code folder too big to list file by file: its tree digest."""

    def __str__(self) -> str:
        return "code"


@dataclass(frozen=True, slots=True)
class CodeFile:
    """One file of a job's code, named from the workspace root."""

    path: str

    def __str__(self) -> str:
        return f"code:{self.path}"


@dataclass(frozen=True, slots=True)
class File:
    """One file of an asset's content (data, model, an environment's conda file)."""

    path: str

    def __str__(self) -> str:
        return f"file:{self.path}"


@dataclass(frozen=True, slots=True)
class Content:
    """An asset's content too big to list file by file: its tree digest."""

    def __str__(self) -> str:
        return "content"


@dataclass(frozen=True, slots=True)
class Dep:
    """Another resource this one is built from or ordered after."""

    address: str

    def __str__(self) -> str:
        return f"dep:{self.address}"


@dataclass(frozen=True, slots=True)
class Part:
    """A named part of a resource, shown on its own (`deployment blue model`)."""

    name: str

    def __str__(self) -> str:
        return f"part:{self.name}"


@dataclass(frozen=True, slots=True)
class Input:
    """A job's data input: a pinned reference, an upstream version key or a local digest."""

    name: str

    def __str__(self) -> str:
        return f"input:{self.name}"


@dataclass(frozen=True, slots=True)
class Environment:
    """The environment a job or image runs in."""

    def __str__(self) -> str:
        return "environment"


@dataclass(frozen=True, slots=True)
class Secret:
    """The fingerprint of a secret's value (never the value), compared beside the digest."""

    name: str

    def __str__(self) -> str:
        return f"secret:{self.name}"


@dataclass(frozen=True, slots=True)
class FingerprintKey:
    """The id of the key the secret fingerprints were made with."""

    def __str__(self) -> str:
        return "fingerprint-key"


@dataclass(frozen=True, slots=True)
class Step:
    """A pipeline step's digest."""

    name: str

    def __str__(self) -> str:
        return f"step:{self.name}"


@dataclass(frozen=True, slots=True)
class Setting:
    """A single value that no reason names on its own: an image's `base`, `model` and
    `runtime`, an environment's `build`, an endpoint's `traffic`, a pipeline's `run`, a
    step's `command`, `compute`, `outputs`, `variables` and `component`."""

    name: str

    def __str__(self) -> str:
        return self.name


Key = (
    Spec
    | Code
    | CodeFile
    | File
    | Content
    | Dep
    | Part
    | Input
    | Environment
    | Secret
    | FingerprintKey
    | Step
    | Setting
)

_PLAIN: dict[str, Key] = {
    "spec": Spec(),
    "code": Code(),
    "content": Content(),
    "environment": Environment(),
    "fingerprint-key": FingerprintKey(),
}
_PREFIXED: dict[str, type[CodeFile | File | Dep | Part | Input | Secret | Step]] = {
    "code": CodeFile,
    "file": File,
    "dep": Dep,
    "part": Part,
    "input": Input,
    "secret": Secret,
    "step": Step,
}


def parse(text: str) -> Key:
    """The key a stored string names; anything else is a `Setting` of that name."""
    plain = _PLAIN.get(text)
    if plain is not None:
        return plain
    prefix, colon, rest = text.partition(":")
    made = _PREFIXED.get(prefix) if colon else None
    return made(rest) if made is not None else Setting(text)


def typed(components: Mapping[str, str]) -> dict[Key, str]:
    """Stored components with their keys parsed."""
    return {parse(key): value for key, value in components.items()}
