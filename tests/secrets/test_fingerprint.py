"""Fingerprints: an HMAC under a key beside the state (or from the environment), named by
an id that reveals nothing of it; compared only under the same key."""

from __future__ import annotations

import hashlib
import hmac
import stat
from pathlib import Path

import pytest

from mlform.errors import SecretError
from mlform.secrets import fingerprint


def test_the_key_is_made_once_beside_the_state_readable_by_its_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(fingerprint.ENV, raising=False)
    key = fingerprint.load_key(tmp_path)
    path = tmp_path / "secrets" / "fingerprint.key"
    assert path.read_text() == key.hex() + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert fingerprint.load_key(tmp_path) == key
    assert fingerprint.fingerprint(key, "v") == hmac.new(key, b"v", hashlib.sha256).hexdigest()
    assert key.hex() not in fingerprint.key_id(key)


def test_the_environment_overrides_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(fingerprint.ENV, "ab" * 32)
    assert fingerprint.load_key(tmp_path) == bytes.fromhex("ab" * 32)
    assert not (tmp_path / "secrets").exists()
    monkeypatch.setenv(fingerprint.ENV, "short")
    with pytest.raises(SecretError, match="does not hold a secrets fingerprint key"):
        fingerprint.load_key(tmp_path)
