"""Tokens of `auth_mode: token` endpoints, end to end: one `mlform endpoints token` makes
is let in; one signed with anything the state or its side files hold is not, a copy of
the state makes none, and the signing keys are in no file but their ring's (mode 0600).
A rotation fails no request: tokens signed before it pass until they expire, and a key
is dropped once no token it signed can be valid. An older mlform's key file is upgraded."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

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
    signing = state_dir / "secrets" / "tokens" / "iris" / "ring.json"
    assert stat.S_IMODE(signing.stat().st_mode) == 0o600
    (key,) = [entry["key"].encode() for entry in json.loads(signing.read_text())["keys"]]
    assert len(key) == 64
    holders = [
        path.relative_to(state_dir).as_posix()
        for path in state_dir.rglob("*")
        if path.is_file() and key in path.read_bytes()
    ]
    assert holders == ["secrets/tokens/iris/ring.json"]

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
    from mlform.kinds.endpoint import keys, signing
    from mlform.serving.keyring import read

    (tmp_path / "secrets").mkdir(mode=0o755)  # as an older mlform made it
    before = os.umask(0)
    try:
        made = keys.ensure(tmp_path, "iris")
        first = signing.ensure(tmp_path, "iris", "keys-1")
    finally:
        os.umask(before)
    files = [
        tmp_path / "secrets",
        first.parent.parent,
        first.parent,
        keys.path(tmp_path, "iris"),
        first,
        first.parent / ".lock",
    ]
    assert [oct(stat.S_IMODE(p.stat().st_mode)) for p in files] == [
        "0o700",
        "0o700",
        "0o700",
        "0o600",
        "0o600",
        "0o600",
    ]
    assert first == tmp_path / "secrets" / "tokens" / "iris" / "ring.json"
    ring = read(first)
    assert len(ring.current.secret) == 32 and ring.current.secret.hex() not in json.dumps(made)
    assert signing.ensure(tmp_path, "iris", "keys-1") == first
    assert signing.load(tmp_path, "iris") == ring  # the same keys: the same token keys
    signing.rotate(tmp_path, "iris")
    signing.ensure(tmp_path, "iris", "keys-2")
    renewed = signing.load(tmp_path, "iris")
    assert renewed is not None and renewed.previous == ()  # new keys: a new ring, whole
    assert renewed.current.secret != ring.current.secret
    signing.remove(tmp_path, "iris")
    assert signing.load(tmp_path, "iris") is None
    assert list((tmp_path / "secrets" / "tokens").iterdir()) == []


def test_a_rotation_keeps_the_previous_key_a_day_then_drops_it(tmp_path: Path) -> None:
    from mlform.kinds.endpoint import signing

    now = 1_765_000_000.0
    signing.ensure(tmp_path, "iris", "keys-1", now=now)
    first = signing.load(tmp_path, "iris")
    assert first is not None
    rotation = signing.rotate(tmp_path, "iris", now=now)
    second = signing.load(tmp_path, "iris")
    assert second is not None
    assert rotation == signing.Rotation(
        signing.path(tmp_path, "iris"),
        second.current.kid,
        ((first.current.kid, now + 86400),),
        (),
    )
    assert second.previous == (replace(first.current, keep_until=now + 86400),)
    assert second.made_for == "keys-1"
    # A day and a second later, no token the first key signed is valid: it goes.
    third = signing.rotate(tmp_path, "iris", now=now + 86401)
    assert (third.kept, third.dropped) == (
        ((second.current.kid, now + 86401 + 86400),),
        (first.current.kid,),
    )
    assert first.current.secret.hex() not in signing.path(tmp_path, "iris").read_text()
    assert stat.S_IMODE(signing.path(tmp_path, "iris").stat().st_mode) == 0o600


def test_rotating_an_endpoint_without_token_keys_says_why(tmp_path: Path) -> None:
    from mlform.errors import NotFound
    from mlform.kinds.endpoint import signing

    with pytest.raises(NotFound) as raised:
        signing.rotate(tmp_path, "iris")
    assert str(raised.value) == missing(tmp_path, "iris")


def test_an_older_mlforms_token_key_file_is_read_then_upgraded(tmp_path: Path) -> None:
    """Format 1: one key in secrets/tokens/NAME.key; its tokens carry no kid. Read as it
    is, moved into the ring by the next write, and its tokens pass until a day after
    the rotation that retires it."""
    from mlform.kinds.endpoint import signing
    from mlform.serving.auth import KeyCheck, KeyRejected, mint
    from mlform.serving.keyring import UNMARKED, RingFile

    old_key = os.urandom(32)
    legacy = tmp_path / "secrets" / "tokens" / "iris.key"
    legacy.parent.mkdir(parents=True)
    legacy.write_text(json.dumps({"token_key": old_key.hex(), "keys": "keys-1"}) + "\n")
    legacy.chmod(0o600)
    unmarked, _ = mint(old_key, "iris", 3600)  # as an older mlform made them

    read_as_is = signing.load(tmp_path, "iris")
    assert read_as_is is not None
    assert (read_as_is.current.kid, read_as_is.current.secret) == (UNMARKED, old_key)
    ring_file = signing.ensure(tmp_path, "iris", "keys-1")  # the same keys: kept, moved
    assert not legacy.exists()
    assert stat.S_IMODE(ring_file.stat().st_mode) == 0o600
    assert json.loads(ring_file.read_text())["format"] == 2
    check = KeyCheck(token_keys=RingFile(ring_file).ring, endpoint="iris")
    check.verify(f"Bearer {unmarked}")

    now = time.time()
    signing.rotate(tmp_path, "iris", now=now)
    check.verify(f"Bearer {unmarked}")  # retired, kept for a day
    later = KeyCheck(
        token_keys=RingFile(ring_file).ring, endpoint="iris", clock=lambda: now + 86401
    )
    with pytest.raises(KeyRejected):
        later.verify(f"Bearer {unmarked}")


def missing(state_dir: Path, endpoint: str) -> str:
    return (
        f"endpoint {endpoint} has no token key in "
        f"{state_dir / 'secrets' / 'tokens' / endpoint / 'ring.json'}: its keys are kept only "
        "beside the state that applied it, never in the state, so a copy of the state cannot "
        f"sign its tokens; make them where it was applied (`mlform endpoints token "
        f"{endpoint}`), or, if that is here and the file was deleted, run `mlform apply` to "
        "make new keys (tokens made before then stop working)"
    )


def use_tokens(root: Path) -> None:
    spec = root / "endpoints" / "iris.yml"
    spec.write_text(spec.read_text().replace("auth_mode: key", "auth_mode: aml_token"))


def kid_of(token: str) -> str:
    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["kid"])


def test_a_rotation_fails_no_request_and_keeps_earlier_tokens_until_they_expire(
    cli: Cli, example_with_endpoint: Path
) -> None:
    from mlform.kinds.endpoint import signing
    from mlform.serving.auth import mint

    root = example_with_endpoint
    use_tokens(root)
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    port = port_of(root)
    body = json.dumps(FLOWERS).encode()
    state_dir = root / ".mlform"
    too_long = cli("endpoints", "token", "iris", "--expires", "86401", cwd=root)
    assert (too_long.code, too_long.err) == (
        1,
        "error: --expires 86401: a token lives at most 86400 seconds (a day), so that a "
        "rotated key is dropped a day after; ask for a new one when it expires\n",
    )
    held = cli("endpoints", "token", "iris", cwd=root).out.strip()  # an hour
    brief = cli("endpoints", "token", "iris", "--expires", "15", cwd=root).out.strip()
    brief_expiry = json.loads(base64.urlsafe_b64decode(brief.split(".")[1] + "==="))["exp"]
    first_kid = kid_of(held)

    # A client sends requests through the router while the key rotates: each one with
    # a token made just before it (as `mlform endpoints token` makes them), or the one
    # held from before the rotation.
    statuses: Counter[int] = Counter()
    signed_by: Counter[str] = Counter()
    halfway, rotated = threading.Event(), threading.Event()

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        sent = after = 0
        try:
            while sent < 200 or after < 50:
                if sent % 2:
                    token = held
                else:
                    ring = signing.load(state_dir, "iris")
                    assert ring is not None
                    token, _ = mint(ring.current.secret, "iris", 60, kid=ring.current.kid)
                    signed_by[ring.current.kid] += 1
                headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
                connection.request("POST", "/score", body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                statuses[response.status] += 1
                sent += 1
                after += rotated.is_set()
                if sent == 50:
                    halfway.set()
        finally:
            halfway.set()
            connection.close()

    thread = threading.Thread(target=client)
    thread.start()
    try:
        assert halfway.wait(120)
        # the workspace's managed secret, rotated as every secret is
        rotation = cli("secrets", "rotate", "endpoint/iris/signing-key", cwd=root)
    finally:
        rotated.set()
        thread.join()
    ring = signing.load(state_dir, "iris")
    assert ring is not None
    (previous,) = ring.previous
    assert previous.kid == first_kid != ring.current.kid
    assert previous.keep_until is not None
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(previous.keep_until))
    assert (rotation.code, rotation.out) == (
        0,
        f"new tokens are signed with token key {ring.current.kid}\n"
        f"tokens signed with token key {first_kid} stay valid until they expire ({until} at "
        "the latest)\n",
    )
    assert statuses == Counter({200: sum(statuses.values())})
    assert set(signed_by) == {first_kid, ring.current.kid}

    # Tokens signed before the rotation pass until they expire; new ones pass too.
    bearer = {"Authorization": f"Bearer {brief}"}
    assert request(port, body, bearer)[0] == 200
    new = cli("endpoints", "token", "iris", cwd=root).out.strip()
    assert kid_of(new) == ring.current.kid
    assert request(port, body, {"Authorization": f"Bearer {new}"})[0] == 200
    while time.time() <= brief_expiry:
        time.sleep(0.2)
    status, _, answer = request(port, body, bearer)
    assert (status, json.loads(answer)["error"]) == (
        401,
        f"the token expired at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(brief_expiry))}"
        "; get a new one with `mlform endpoints token iris`",
    )
    assert request(port, body, {"Authorization": f"Bearer {held}"})[0] == 200

    # A key past its time is dropped: its tokens are refused even before they expire.
    # (A rotation dated a day back retires the current key with its time already past.)
    signing.rotate(state_dir, "iris", now=time.time() - 86400 - 60)
    status, _, answer = request(port, body, {"Authorization": f"Bearer {new}"})
    assert (status, json.loads(answer)["error"]) == (
        401,
        "the token sent was not signed with this endpoint's token key; it may be older than "
        "the key: get a new one with `mlform endpoints token ENDPOINT`",
    )
    assert request(port, body, {"Authorization": f"Bearer {held}"})[0] == 200
    dropped = cli("endpoints", "keys", "iris", "--rotate-token-key", cwd=root)
    assert f"token key {ring.current.kid} dropped: every token it signed has expired" in (
        dropped.out
    )
    assert ring.current.secret.hex() not in signing.path(state_dir, "iris").read_text()


def test_a_copied_state_cannot_make_a_token(
    cli: Cli, example_with_endpoint: Path, tmp_path: Path
) -> None:
    root = example_with_endpoint
    use_tokens(root)
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err

    # Another machine: the workspace and everything in .mlform but its secrets.
    elsewhere = tmp_path / "elsewhere"
    private = root / ".mlform" / "secrets"
    shutil.copytree(
        root,
        elsewhere,
        ignore=lambda folder, names: ["secrets"] if Path(folder) == private.parent else [],
    )
    assert (elsewhere / ".mlform" / "state.duckdb").is_file()
    assert not (elsewhere / ".mlform" / "secrets").exists()
    refused = cli("endpoints", "token", "iris", cwd=elsewhere)
    assert (refused.code, refused.out, refused.err) == (
        1,
        "",
        f"error: {missing(elsewhere / '.mlform', 'iris')}\n",
    )
    # Nothing copied holds a key that signs its tokens.
    ring = json.loads((private / "tokens" / "iris" / "ring.json").read_text())
    (key,) = [entry["key"] for entry in ring["keys"]]
    copied = [p for p in elsewhere.rglob("*") if p.is_file()]
    assert copied and not any(key.encode() in p.read_bytes() for p in copied)
    assert not any(bytes.fromhex(key) in p.read_bytes() for p in copied)


def test_an_older_mlforms_token_key_is_upgraded_and_its_tokens_keep_passing(
    cli: Cli, example_with_endpoint: Path
) -> None:
    from mlform.kinds.endpoint import signing
    from mlform.serving.auth import mint

    root = example_with_endpoint
    use_tokens(root)
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    port = port_of(root)
    body = json.dumps(FLOWERS).encode()
    state_dir = root / ".mlform"
    held = cli("endpoints", "token", "iris", cwd=root).out.strip()
    assert request(port, body, {"Authorization": f"Bearer {held}"})[0] == 200
    # The key as an older mlform kept it: one file, format 1, and tokens without a kid.
    # (The running servers keep the keys they read while their file is gone.)
    ring = signing.load(state_dir, "iris")
    assert ring is not None
    legacy = state_dir / "secrets" / "tokens" / "iris.key"
    legacy.write_text(
        json.dumps({"token_key": ring.current.secret.hex(), "keys": ring.made_for}) + "\n"
    )
    legacy.chmod(0o600)
    shutil.rmtree(signing.folder(state_dir, "iris"))
    unmarked, _ = mint(ring.current.secret, "iris", 3600)
    marked = cli("endpoints", "token", "iris", cwd=root).out.strip()  # read as it is
    assert kid_of(marked) == "format-1"

    rotated = cli("endpoints", "keys", "iris", "--rotate-token-key", cwd=root)
    assert rotated.code == 0, rotated.err
    assert "tokens signed with token key format-1 stay valid until they expire" in rotated.out
    assert not legacy.exists()
    ring_file = signing.path(state_dir, "iris")
    assert stat.S_IMODE(ring_file.stat().st_mode) == 0o600
    document = json.loads(ring_file.read_text())
    assert (document["format"], [key["kid"] for key in document["keys"]][1:]) == (
        2,
        ["format-1"],
    )
    new = cli("endpoints", "token", "iris", cwd=root).out.strip()
    for token in (unmarked, marked, new):
        assert request(port, body, {"Authorization": f"Bearer {token}"})[0] == 200
