"""The workspace's secrets, each read from its source the first time it is needed.

Values stay in this object's memory: they are handed to a process as it starts (its
environment, a datastore client's options) and to nothing that is written down. A plan
sees only their fingerprints (`mlform.secrets.fingerprint`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlform.errors import Problem, SecretError
from mlform.plan import keys as component_keys
from mlform.secrets import fingerprint, references
from mlform.secrets.declared import Secret
from mlform.secrets.sources import SOURCES

_SCRUBBED = "***"


class Vault:
    def __init__(self, declared: Mapping[str, Secret], root: Path, state_dir: Path) -> None:
        self.declared = dict(declared)
        self.root = root
        self.state_dir = state_dir
        self._values: dict[str, str] = {}
        self._problems: dict[str, str] = {}
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def problem(self, name: str) -> str | None:
        """Why the secret cannot be read here, or None when it can."""
        with self._lock:
            self._read(name)
            return self._problems.get(name)

    def value(self, name: str) -> str:
        with self._lock:
            self._read(name)
            if name in self._problems:
                secret = self.declared[name]
                raise SecretError(
                    f"secret {name} ({secret.described}, {secret.source}) cannot be read: "
                    f"{self._problems[name]}"
                )
            return self._values[name]

    def _read(self, name: str) -> None:
        if name in self._values or name in self._problems:
            return
        secret = self.declared[name]
        try:
            self._values[name] = SOURCES[secret.kind].read(secret, self.root)
        except SecretError as err:
            self._problems[name] = str(err)

    def forget(self, name: str) -> None:
        """Read the secret afresh next time (after `mlform secrets set`)."""
        with self._lock:
            self._values.pop(name, None)
            self._problems.pop(name, None)

    def components(self, names: Iterable[str]) -> dict[str, str]:
        """The plan's components for the secrets a resource uses: a fingerprint each, and
        the id of the key they are made with."""
        wanted = sorted(set(names))
        if not wanted:
            return {}
        key = self.key()
        found = {
            str(component_keys.Secret(name)): fingerprint.fingerprint(key, self.value(name))
            for name in wanted
        }
        found[str(component_keys.FingerprintKey())] = fingerprint.key_id(key)
        return found

    def key(self) -> bytes:
        if self._key is None:
            self._key = fingerprint.load_key(self.state_dir)
        return self._key

    def resolve(self, value: Any) -> tuple[Any, tuple[str, ...]]:
        """`value` (environment variables, storage options) with every reference
        replaced by its secret's value, and the values that went in."""
        used = references.names_in(value)
        if not used:
            return value, ()
        values = {name: self.value(name) for name in used}
        return references.substitute(value, values.__getitem__), tuple(values.values())

    def scrub(self, text: str) -> str:
        """`text` without any secret value read so far (an error a driver raised may
        quote the credential it was given)."""
        with self._lock:
            known = sorted(self._values.values(), key=len, reverse=True)
        for value in known:
            if value in text:
                text = text.replace(value, _SCRUBBED)
        return text

    def problems(self, uses: Mapping[str, Iterable[str]]) -> list[Problem]:
        """A problem at each declared secret that resources use (`uses`: address → names)
        and that cannot be read here, saying what to set."""
        users: dict[str, list[str]] = {}
        for address, names in uses.items():
            for name in names:
                users.setdefault(name, []).append(address)
        found = []
        for name, addresses in sorted(users.items()):
            secret = self.declared.get(name)
            why = self.problem(name) if secret is not None else None
            if secret is None or why is None:
                continue
            found.append(
                secret.source.problem(
                    [],
                    f"secret {name} ({secret.described}) cannot be read here: {why} — "
                    f"used by {', '.join(sorted(addresses))}",
                )
            )
        return found
