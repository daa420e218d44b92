"""Tokens of `auth_mode: token` endpoints, end to end: one `mlform endpoints token` makes
is let in; one signed with anything the state or its side files hold is not, and the
signing key is in no file but its own (mode 0600)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import stat
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from tests.cli.test_endpoints import FLOWERS, port_of, request
from tests.conftest import Ran

Cli = Callable[..., Ran]
_DIGEST = re.compile(rb"[0-9a-f]{64}")


def state_secrets(state_dir: Path) -> set[bytes]:
    """Every sha256-shaped value the state and its side files hold: key digests, and any
    other digest a script reading only those files could try to sign with."""
    found: set[bytes] = set()
    for side in state_dir.glob("state.duckdb*"):
        found.update(_DIGEST.findall(side.read_bytes()))
    con = duckdb.connect(str(state_dir / "state.duckdb"), read_only=True)
    try:
        for table, column in [
            ("resources", "outputs"),
            ("resources", "components"),
            ("resources", "spec"),
            ("deployments", "digest"),
        ]:
            for (text,) in con.execute(f"select {column} from {table}").fetchall():
                found.update(_DIGEST.findall(str(text).encode()))
    finally:
        con.close()
    return found


def forged(secret: bytes, endpoint: str) -> list[str]:
    """Tokens in the shape `mlform endpoints token` prints, signed with `secret` taken as
    a digest's bytes and as its text."""
    claims = json.dumps({"aud": endpoint, "exp": round(time.time()) + 3600}, separators=(",", ":"))
    payload = base64.urlsafe_b64encode(claims.encode()).rstrip(b"=")
    keys = [bytes.fromhex(secret.decode()), secret]
    return [
        f"mlt1.{payload.decode()}.{hmac.new(key, payload, hashlib.sha256).hexdigest()}"
        for key in keys
    ]


def test_a_token_signed_with_what_the_state_holds_is_refused(
    cli: Cli, example_with_endpoint: Path
) -> None:
    root = example_with_endpoint
    spec = root / "endpoints" / "iris.yml"
    spec.write_text(spec.read_text().replace("auth_mode: key", "auth_mode: token"))
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    port = port_of(root)
    body = json.dumps(FLOWERS).encode()
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0  # and leaves its reads

    state_dir = root / ".mlform"
    candidates = state_secrets(state_dir)
    key_hashes = json.loads(cli("state", "show", "endpoint/iris", cwd=root).out)["outputs"]
    assert set(key_hashes["key_hashes"]) <= {c.decode() for c in candidates}
    answers = {
        request(port, body, {"Authorization": f"Bearer {token}"})[0]
        for secret in candidates
        for token in forged(secret, "iris")
    }
    assert answers == {401}

    issued = cli("endpoints", "token", "iris", cwd=root)
    assert issued.code == 0, issued.err
    status, _, answer = request(port, body, {"Authorization": f"Bearer {issued.out.strip()}"})
    assert (status, answer) == (200, b'["setosa","virginica"]')
    invoked = cli("endpoints", "invoke", "iris", "--data", str(root / "request.json"), cwd=root)
    assert (invoked.code, invoked.out) == (0, '["setosa","virginica"]\n')

    # The signing key lives in one file of its own, readable by its owner only.
    signing = state_dir / "secrets" / "tokens" / "iris.key"
    assert stat.S_IMODE(signing.stat().st_mode) == 0o600
    key = json.loads(signing.read_text())["token_key"].encode()
    assert len(key) == 64
    holders = [
        path.relative_to(state_dir).as_posix()
        for path in state_dir.rglob("*")
        if path.is_file() and key in path.read_bytes()
    ]
    assert holders == ["secrets/tokens/iris.key"]

    # New keys: tokens made before keep working until the apply that rolls onto them.
    old = {"Authorization": f"Bearer {issued.out.strip()}"}
    assert cli("endpoints", "keys", "iris", "--regenerate", "secondary", cwd=root).code == 0
    assert request(port, body, old)[0] == 200
    rolled = cli("apply", "--yes", cwd=root)
    assert rolled.code == 0, rolled.out + rolled.err
    assert request(port, body, old)[0] == 401
    new = cli("endpoints", "token", "iris", cwd=root).out.strip()
    assert request(port, body, {"Authorization": f"Bearer {new}"})[0] == 200
    assert stat.S_IMODE(signing.stat().st_mode) == 0o600


def test_token_keys_are_private_and_renewed_with_the_endpoints_keys(tmp_path: Path) -> None:
    from mlform.endpoints import keys, signing
    from mlform.serving.auth import read_token_key

    (tmp_path / "secrets").mkdir(mode=0o755)  # as an older mlform made it
    before = os.umask(0)
    try:
        made = keys.ensure(tmp_path, "iris")
        first = signing.ensure(tmp_path, "iris", "keys-1")
    finally:
        os.umask(before)
    files = [tmp_path / "secrets", first.parent, keys.path(tmp_path, "iris"), first]
    assert [oct(stat.S_IMODE(p.stat().st_mode)) for p in files] == [
        "0o700",
        "0o700",
        "0o600",
        "0o600",
    ]
    assert first == tmp_path / "secrets" / "tokens" / "iris.key"
    key = read_token_key(first)
    assert len(key) == 32 and key.hex() not in json.dumps(made)
    assert signing.ensure(tmp_path, "iris", "keys-1") == first
    assert signing.load(tmp_path, "iris") == key  # the same keys: the same token key
    signing.ensure(tmp_path, "iris", "keys-2")
    assert signing.load(tmp_path, "iris") not in (None, key)  # new keys: a new one
    signing.remove(tmp_path, "iris")
    assert signing.load(tmp_path, "iris") is None
