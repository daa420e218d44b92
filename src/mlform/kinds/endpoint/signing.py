"""The keys a token endpoint's tokens are signed with: a ring (`mlform.serving.keyring`)
of the current key and the previous ones still kept, in `secrets/tokens/<endpoint>/
ring.json` beside the state, mode 0600, and nowhere else: not in the state, a plan or a
log, and not derived from anything they hold (the state keeps the sha256 of the
endpoint's keys, so tokens signed with those could be made by anyone who reads it). A
copy of the state therefore cannot sign a token. A deployment's server reads the file
named by MLFORM_TOKEN_KEY_FILE, never a key in its environment; a container gets the
endpoint's folder mounted, read-only, so that it sees the file mlform replaces (a file
mounted alone stays the one it was when the container started).

`rotate` makes a new current key and keeps the one it replaces until every token that
key signed has expired (`MAX_TOKEN_LIFETIME` after the rotation): servers re-read the
file when it changes, so no request fails over a rotation and no restart is needed.
Keys past their time are dropped from the file when it is next written.

The ring is renewed whole with the endpoint's keys: after `mlform endpoints keys NAME
--regenerate`, the apply that rolls the deployments onto the new keys makes a new ring,
so tokens made before stop working then, and not before.

Older mlform kept one key in `secrets/tokens/<endpoint>.key` (format 1): it is read as
it is, and the next write (a rotation, or an apply that updates the endpoint) moves it
into the ring and removes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from mlform import private
from mlform.errors import NotFound
from mlform.kinds.endpoint.keys import secrets_folder
from mlform.serving.keyring import KEY_BYTES, MAX_TOKEN_LIFETIME, KeyRing, TokenKey, dump, read

TOKEN_MODES = ("token", "aml_token")  # Azure ML's name, and the short one


@dataclass(frozen=True, slots=True)
class Rotation:
    """What a rotation did: the key that now signs, the previous keys still kept (kid,
    kept until), and the kids dropped because no token they signed can still be valid."""

    path: Path
    current: str
    kept: tuple[tuple[str, float], ...]
    dropped: tuple[str, ...]

    def lines(self) -> list[str]:
        """What it did, as the commands that rotate say it."""
        said = [f"new tokens are signed with token key {self.current}"]
        for kid, until in self.kept:
            at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until))
            said.append(
                f"tokens signed with token key {kid} stay valid until they expire "
                f"({at} at the latest)"
            )
        said += [
            f"token key {kid} dropped: every token it signed has expired" for kid in self.dropped
        ]
        return said


def folder(state_dir: Path, endpoint: str) -> Path:
    """The endpoint's own folder of token keys: what a container gets mounted."""
    return state_dir / "secrets" / "tokens" / endpoint


def path(state_dir: Path, endpoint: str) -> Path:
    return folder(state_dir, endpoint) / "ring.json"


def legacy_path(state_dir: Path, endpoint: str) -> Path:
    """Where older mlform kept the endpoint's one token key (format 1)."""
    return state_dir / "secrets" / "tokens" / f"{endpoint}.key"


def load(state_dir: Path, endpoint: str) -> KeyRing | None:
    """The endpoint's ring (from an older mlform's file if that is all there is), or None."""
    for candidate in (path(state_dir, endpoint), legacy_path(state_dir, endpoint)):
        try:
            return read(candidate)
        except ValueError:
            continue
    return None


def ensure(state_dir: Path, endpoint: str, keys_digest: str, now: float | None = None) -> Path:
    """The ring's file, made anew unless it holds a ring made for these keys (an older
    mlform's file is moved into it; keys past their time are dropped)."""
    when = time.time() if now is None else now
    with _locked(state_dir, endpoint):
        found = load(state_dir, endpoint)
        ring = found
        if ring is None or ring.made_for != keys_digest:
            ring = KeyRing(_new_key(), made_for=keys_digest)
        kept = _pruned(ring, when)
        target = path(state_dir, endpoint)
        if kept != found or not target.is_file():
            _write(state_dir, endpoint, kept)
        private.restrict(target)
        return target


def rotate(state_dir: Path, endpoint: str, now: float | None = None) -> Rotation:
    """Make a new current key; keep the one it replaces until the last token it could
    have signed expires (`MAX_TOKEN_LIFETIME` from `now`); drop keys kept long enough.
    NotFound if the endpoint has no ring (only `auth_mode: token` endpoints have one,
    once applied)."""
    when = time.time() if now is None else now
    with _locked(state_dir, endpoint):
        ring = load(state_dir, endpoint)
        if ring is None:
            raise NotFound(missing(state_dir, endpoint))
        retired = replace(ring.current, keep_until=float(round(when + MAX_TOKEN_LIFETIME)))
        rotated = KeyRing(_new_key(), (retired, *ring.previous), ring.made_for)
        kept = _pruned(rotated, when)
        _write(state_dir, endpoint, kept)
    return Rotation(
        path(state_dir, endpoint),
        kept.current.kid,
        tuple((key.kid, key.keep_until) for key in kept.previous if key.keep_until is not None),
        tuple(key.kid for key in rotated.previous if key not in kept.previous),
    )


def remove(state_dir: Path, endpoint: str) -> None:
    for name in ("ring.json", ".lock"):
        (folder(state_dir, endpoint) / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        folder(state_dir, endpoint).rmdir()
    legacy_path(state_dir, endpoint).unlink(missing_ok=True)


def missing(state_dir: Path, endpoint: str) -> str:
    """Why there is no token key, and what to do: the message for a copied state too."""
    return (
        f"endpoint {endpoint} has no token key in {path(state_dir, endpoint)}: its keys are "
        "kept only beside the state that applied it, never in the state, so a copy of the "
        f"state cannot sign its tokens; make them where it was applied (`mlform endpoints "
        f"token {endpoint}`), or, if that is here and the file was deleted, run `mlform "
        "apply` to make new keys (tokens made before then stop working)"
    )


def _new_key() -> TokenKey:
    return TokenKey(secrets.token_hex(4), secrets.token_bytes(KEY_BYTES))


def _pruned(ring: KeyRing, now: float) -> KeyRing:
    return replace(ring, previous=tuple(key for key in ring.previous if key.live(now)))


def _write(state_dir: Path, endpoint: str, ring: KeyRing) -> None:
    secrets_folder(state_dir)
    private.write(path(state_dir, endpoint), dump(ring).encode())
    legacy_path(state_dir, endpoint).unlink(missing_ok=True)  # moved into the ring


@contextlib.contextmanager
def _locked(state_dir: Path, endpoint: str) -> Iterator[None]:
    """One writer of the ring at a time: a rotation and an apply at once must not lose
    a key that has signed tokens."""
    secrets_folder(state_dir)
    home = private.folder(folder(state_dir, endpoint))
    fd = private.open_fd(home / ".lock", os.O_WRONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # and the lock with it
