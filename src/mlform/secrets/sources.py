"""Where a secret's value is kept: one class per source, registered in `SOURCES`.

Each reads a value (or raises `SecretError` saying what to set) and writes one, for
`mlform secrets set`. Values are text; one trailing newline, as `echo` and editors add
it, is not part of a value read from a file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Protocol

from mlform import durable, private
from mlform.errors import SecretError
from mlform.secrets import age
from mlform.secrets.declared import Secret


class SecretSource(Protocol):
    def read(self, secret: Secret, root: Path) -> str:
        """The value; `SecretError` saying what is missing and what to set."""

    def write(self, secret: Secret, root: Path, value: str) -> str:
        """Keep `value` as the secret's new value; say where it went."""


class EnvSource:
    def read(self, secret: Secret, root: Path) -> str:
        value = os.environ.get(secret.target)
        if not value:
            said = "is empty" if value == "" else "is not set"
            raise SecretError(
                f"the environment variable {secret.target} {said}; set it (in CI, from "
                "the CI system's secrets)"
            )
        return value

    def write(self, secret: Secret, root: Path, value: str) -> str:
        raise SecretError(
            f"secret {secret.name} comes from the environment variable {secret.target}: "
            f"mlform cannot set it; set {secret.target} where mlform runs (in CI, as a "
            "secret of the CI system)"
        )


class FileSource:
    def read(self, secret: Secret, root: Path) -> str:
        path = secret.path(root)
        shown = secret.target
        try:
            st = path.stat()
        except FileNotFoundError:
            raise SecretError(
                f"file {shown} does not exist; write it with `mlform secrets set "
                f"{secret.name}` (it is made mode 0600)"
            ) from None
        except OSError as err:
            raise SecretError(f"cannot read file {shown} ({err.strerror or err})") from None
        if st.st_mode & 0o077:
            raise SecretError(
                f"file {shown} can be read by others (mode {stat.S_IMODE(st.st_mode):04o}); "
                f"run `chmod 600 {shown}`"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise SecretError(f"cannot read file {shown} ({err.strerror or err})") from None
        except UnicodeDecodeError:
            raise SecretError(f"file {shown} is not UTF-8 text") from None
        value = text.removesuffix("\n").removesuffix("\r")
        if not value:
            raise SecretError(f"file {shown} is empty; write the value with `mlform secrets set`")
        return value

    def write(self, secret: Secret, root: Path, value: str) -> str:
        path = secret.path(root)
        private.write(path, (value + "\n").encode())
        return f"wrote {secret.target} (mode 0600)"


class AgeSource:
    def read(self, secret: Secret, root: Path) -> str:
        path = secret.path(root)
        if not path.is_file():
            raise SecretError(
                f"{secret.target} does not exist; create it with `mlform secrets set {secret.name}`"
            )
        value = age.decrypt(path, secret.target)
        if not value:
            raise SecretError(f"{secret.target} holds an empty value")
        return value

    def write(self, secret: Secret, root: Path, value: str) -> str:
        path = secret.path(root)
        listed = age.recipients_file(path.resolve(), root.resolve())
        if listed is None:
            folder = os.path.relpath(path.parent, root)
            raise SecretError(
                f"no {age.RECIPIENTS} at or above {folder}/ to encrypt {secret.target} to: "
                f"put the public keys (age1…) of everyone and every machine that applies "
                f"this workspace in {folder}/{age.RECIPIENTS}, one per line (`age-keygen -y "
                f"{age.shown_home(age.default_identity_file())}` prints yours)"
            )
        shown = os.path.relpath(listed, root)
        keys = age.recipients(listed, shown)
        data = age.encrypt(value, keys)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = durable.partial(path)
        partial.write_bytes(data)
        os.replace(partial, path)
        count = len(keys)
        return (
            f"encrypted to {count} recipient{'s' if count != 1 else ''} of {shown} and wrote "
            f"{secret.target}: commit it"
        )


SOURCES: dict[str, SecretSource] = {
    "env": EnvSource(),
    "file": FileSource(),
    "age": AgeSource(),
}
