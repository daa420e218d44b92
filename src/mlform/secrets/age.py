"""age encryption for secrets committed with the workspace (`age: secrets/NAME.age`).

A file is encrypted to every public key in the nearest `recipients.txt` at or above its
folder (age's own recipients-file format, as `age -R` reads it: one key per line, `#`
comments), so `age -d -i keys.txt secrets/NAME.age` reads it too. It is decrypted with
the identity in `MLFORM_AGE_IDENTITY` (the `AGE-SECRET-KEY-1…` text, or a path to a file
of them), else the user's `~/.config/mlform/age/keys.txt` — SOPS's layout
(`~/.config/sops/age/keys.txt`, `$XDG_CONFIG_HOME` first), so `age-keygen -o` writes one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyrage

from mlform.errors import SecretError

ENV = "MLFORM_AGE_IDENTITY"
RECIPIENTS = "recipients.txt"
_SECRET_KEY = "AGE-SECRET-KEY-"


class Unavailable(SecretError):
    """The identity or a recipient cannot be had; the message says what to set."""


def default_identity_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "mlform" / "age" / "keys.txt"


def shown_home(path: Path) -> str:
    """`path` with the home folder written `~`, as a user types it."""
    home = str(Path.home())
    text = str(path)
    return "~" + text[len(home) :] if text.startswith(home + os.sep) else text


def identities() -> tuple[list[pyrage.x25519.Identity], str]:
    """The identities to decrypt with, and where they came from (for messages)."""
    given = os.environ.get(ENV, "").strip()
    if given.startswith(_SECRET_KEY):
        return _parse_identities(given, ENV), ENV
    if given:
        path = Path(given).expanduser()
        where = f"{ENV} ({shown_home(path)})"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise Unavailable(
                f"{ENV} names {shown_home(path)}, which cannot be read "
                f"({err.strerror or err}); set {ENV} to an age identity or to the path of "
                "an identity file"
            ) from None
        return _parse_identities(text, where), where
    path = default_identity_file()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise Unavailable(
            f"no age identity: set {ENV} to an age identity or put one in {shown_home(path)}"
        ) from None
    except OSError as err:
        raise Unavailable(
            f"cannot read the age identity file {shown_home(path)} ({err.strerror or err})"
        ) from None
    return _parse_identities(text, shown_home(path)), shown_home(path)


def _parse_identities(text: str, where: str) -> list[pyrage.x25519.Identity]:
    found = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            found.append(pyrage.x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            raise Unavailable(
                f"{where} holds a line that is not an age identity (AGE-SECRET-KEY-1…); "
                "only X25519 identities, as age-keygen makes them, are read"
            ) from None
    if not found:
        raise Unavailable(
            f"{where} holds no age identity; put the AGE-SECRET-KEY-1… line age-keygen wrote there"
        )
    return found


def decrypt(path: Path, shown: str) -> str:
    """The text `path` (shown to the user as `shown`) decrypts to."""
    keys, where = identities()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise Unavailable(f"{shown} does not exist") from None
    except OSError as err:
        raise Unavailable(f"cannot read {shown} ({err.strerror or err})") from None
    try:
        plain = pyrage.decrypt(data, keys)
    except pyrage.DecryptError as err:
        raise Unavailable(
            f"the age identity from {where} cannot decrypt {shown} ({err}); encrypt it to "
            "that identity's public key (add it to recipients.txt and run `mlform secrets "
            "set`), or use the identity it was encrypted to"
        ) from None
    try:
        return plain.decode()
    except UnicodeDecodeError:
        raise Unavailable(f"{shown} does not decrypt to UTF-8 text") from None


def recipients_file(path: Path, root: Path) -> Path | None:
    """The nearest recipients.txt at or above `path`'s folder, up to `root`."""
    folder = path.parent
    while True:
        candidate = folder / RECIPIENTS
        if candidate.is_file():
            return candidate
        if folder == root or root not in folder.parents:
            return None
        folder = folder.parent


def recipients(file: Path, shown: str) -> list[Any]:
    """The public keys in a recipients file: age1… (X25519) and ssh-ed25519/ssh-rsa."""
    found: list[Any] = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            if line.startswith("ssh-"):
                found.append(pyrage.ssh.Recipient.from_str(line))
            else:
                found.append(pyrage.x25519.Recipient.from_str(line))
        except pyrage.RecipientError as err:
            raise SecretError(
                f"{shown}:{number}: not an age public key ({err}); write one age1… key (or "
                "ssh-ed25519 key) per line, `#` for comments"
            ) from None
    if not found:
        raise SecretError(f"{shown} lists no public key; add one age1… key per line")
    return found


def encrypt(text: str, keys: list[Any]) -> bytes:
    """ASCII-armored, so the committed file reads as text in a diff."""
    return pyrage.encrypt(text.encode(), keys, armored=True)
