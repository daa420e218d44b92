"""Tokens of `auth_mode: token` endpoints, end to end: one `mlform endpoints token` makes
is let in; one signed with anything the state or its side files hold is not, and the
signing key is in no file but its own (mode 0600)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
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
    assert cli("plan", cwd=root).code == 0  # a reader leaves its side file of reads

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
