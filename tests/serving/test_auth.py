"""Key auth on POST /score, over real HTTP: who gets 401 (no key, or a wrong one), and 200."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mlform.serving.app import create_app
from mlform.serving.auth import parse_key_hashes
from mlform.serving.keyring import UNMARKED, KeyRing, TokenKey
from mlform.serving.scoring import load_script
from tests.serving.conftest import Reply, call, serving_in_thread, write_deployment

BETA_HASH = hashlib.sha256(b"beta").hexdigest()
MISSING = (
    b'{"error":"this deployment requires a key: send the header \\"Authorization: Bearer '
    b'<key>\\" with one of the deployment\'s keys","status":401}'
)
REJECTED = (
    b'{"error":"the key sent is not one of this deployment\'s keys; it may have been '
    b'rotated: get the deployment\'s current keys","status":401}'
)


@pytest.fixture
def port(tmp_path: Path, isolated_import: None) -> Iterator[int]:
    """A server accepting key "alpha" (given plain) and "beta" (given as its sha256)."""
    script = load_script(*write_deployment(tmp_path))
    app = create_app(script, keys=["alpha"], key_hashes=[BETA_HASH.upper()])
    with serving_in_thread(app) as running:
        yield running


def score(port: int, authorization: str | None) -> Reply:
    headers = {} if authorization is None else {"Authorization": authorization}
    return call(port, "POST", "/score", b'{"data": [1]}', headers)


def test_no_key_is_401_with_a_bearer_challenge(port: int) -> None:
    reply = score(port, None)
    assert (reply.status, reply.body) == (401, MISSING)
    assert reply.headers["www-authenticate"] == "Bearer"
    assert reply.headers["content-type"] == "application/json"


@pytest.mark.parametrize("authorization", ["alpha", "Basic YWxwaGE=", "Bearer", "Bearer   "])
def test_a_malformed_header_is_401(port: int, authorization: str) -> None:
    reply = score(port, authorization)
    assert (reply.status, reply.body, reply.headers["www-authenticate"]) == (
        401,
        MISSING,
        "Bearer",
    )


@pytest.mark.parametrize("key", ["gamma", "alph", "alphaa", "ALPHA", BETA_HASH])
def test_a_wrong_key_is_401(port: int, key: str) -> None:
    reply = score(port, f"Bearer {key}")
    assert (reply.status, reply.body) == (401, REJECTED)
    assert reply.headers["www-authenticate"] == "Bearer"  # a 401 always says how to authenticate


@pytest.mark.parametrize(
    "authorization",
    ["Bearer alpha", "Bearer beta", "bearer beta", "BEARER  alpha "],
    ids=["plain", "hashed", "scheme-lowercase", "spaces"],
)
def test_a_key_given_plain_or_by_its_hash_is_let_in(port: int, authorization: str) -> None:
    reply = score(port, authorization)
    assert (reply.status, reply.body) == (200, b"[2]")


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics", "/openapi.json", "/"])
def test_the_other_routes_need_no_key(port: int, path: str) -> None:
    assert call(port, "GET", path).status == 200


def test_openapi_document_declares_the_bearer_scheme_on_score(port: int) -> None:
    document = call(port, "GET", "/openapi.json").json()
    assert isinstance(document, dict)
    post = document["paths"]["/score"]["post"]
    assert post["security"] == [{"key": []}]
    assert document["components"]["securitySchemes"] == {
        "key": {"type": "http", "scheme": "bearer"}
    }
    assert sorted(post["responses"]) == ["200", "400", "401", "403", "413", "415", "500", "503"]
    assert "security" not in document["paths"]["/metrics"]["get"]


def test_key_hashes_are_comma_separated_sha256_digests() -> None:
    upper = BETA_HASH.upper()
    assert parse_key_hashes(f" {upper} ,, {BETA_HASH},") == (BETA_HASH, BETA_HASH)
    assert parse_key_hashes("") == ()
    with pytest.raises(ValueError) as raised:
        parse_key_hashes(f"{BETA_HASH},beta")
    assert str(raised.value) == (
        "'beta' is not a sha256 hex digest (64 hex digits); give each key's digest, "
        "as `printf %s KEY | sha256sum` prints it"
    )


def ring_of(*keys: TokenKey) -> Callable[[], KeyRing]:
    ring = KeyRing(keys[0], keys[1:])
    return lambda: ring


def test_tokens_signed_with_the_token_key_pass_until_they_expire() -> None:
    from mlform.serving.auth import KeyCheck, KeyMissing, KeyRejected, NotAllowed, mint

    key = TokenKey("k1", bytes(range(32)))
    now = 1_000_000.0
    check = KeyCheck(token_keys=ring_of(key), endpoint="iris", clock=lambda: now)
    token, expires = mint(key.secret, "iris", 60, now=now, kid="k1")
    assert expires == now + 60
    check.verify(f"Bearer {token}")
    with pytest.raises(KeyMissing, match="that is not a token"):
        check.verify("Bearer the-key")  # token mode takes no keys
    with pytest.raises(KeyRejected) as rejected:
        check.verify(f"Bearer {mint(bytes(32), 'iris', 60, now=now, kid='k1')[0]}")
    assert str(rejected.value) == (
        "the token sent was not signed with this endpoint's token key; it may be older than "
        "the key: get a new one with `mlform endpoints token ENDPOINT`"
    )
    with pytest.raises(NotAllowed, match="the token is for endpoint other, not iris"):
        check.verify(f"Bearer {mint(key.secret, 'other', 60, now=now, kid='k1')[0]}")
    late = KeyCheck(token_keys=ring_of(key), endpoint="iris", clock=lambda: now + 61)
    with pytest.raises(KeyMissing, match="the token expired at 1970-01-12T13:47:40Z"):
        late.verify(f"Bearer {token}")
    forged = token[:-2] + ("00" if token[-2:] != "00" else "11")
    with pytest.raises(KeyRejected):
        check.verify(f"Bearer {forged}")


def test_a_token_names_its_key_and_previous_keys_pass_until_their_time() -> None:
    from mlform.serving.auth import KeyCheck, KeyRejected, mint

    now = 1_000_000.0
    current = TokenKey("new", b"n" * 32)
    previous = TokenKey("old", b"o" * 32, keep_until=now + 100)
    unmarked = TokenKey(UNMARKED, b"u" * 32, keep_until=now + 100)
    keys = ring_of(current, previous, unmarked)
    by_new = mint(current.secret, "iris", 3600, now=now, kid="new")[0]
    by_old = mint(previous.secret, "iris", 3600, now=now, kid="old")[0]
    by_format_1 = mint(unmarked.secret, "iris", 3600, now=now)[0]  # no kid, as before rings
    named_wrongly = mint(previous.secret, "iris", 3600, now=now, kid="new")[0]
    check = KeyCheck(token_keys=keys, endpoint="iris", clock=lambda: now + 100)
    for token in (by_new, by_old, by_format_1):
        check.verify(f"Bearer {token}")
    later = KeyCheck(token_keys=keys, endpoint="iris", clock=lambda: now + 101)
    later.verify(f"Bearer {by_new}")
    for token in (by_old, by_format_1, named_wrongly):  # dropped, or not the key named
        with pytest.raises(KeyRejected, match="not signed with this endpoint's token key"):
            later.verify(f"Bearer {token}")


def test_a_token_may_live_a_day_at_most() -> None:
    from mlform.serving.auth import KeyCheck, KeyRejected, mint

    key = TokenKey("k1", bytes(range(32)))
    now = 1_000_000.0
    check = KeyCheck(token_keys=ring_of(key), endpoint="iris", clock=lambda: now)
    check.verify(f"Bearer {mint(key.secret, 'iris', 86400, now=now, kid='k1')[0]}")
    with pytest.raises(ValueError) as raised:
        mint(key.secret, "iris", 86401, now=now, kid="k1")
    assert str(raised.value) == "a token lives more than 0 and at most 86400 seconds, not 86401"
    # Made by hand with the key, a longer one is still refused.
    made_later = mint(key.secret, "iris", 86400, now=now + 3600, kid="k1")[0]
    with pytest.raises(KeyRejected) as rejected:
        check.verify(f"Bearer {made_later}")
    assert str(rejected.value) == (
        "the token is valid until 1970-01-13T14:46:40Z, longer than a token may live "
        "(24 hours); get a new one with `mlform endpoints token iris`"
    )


def test_a_token_signed_with_a_key_or_its_digest_is_refused() -> None:
    """What a key check holds (the keys' digests, as the state does) signs no token."""
    from mlform.serving.auth import KeyCheck, KeyRejected, mint

    digest = hashlib.sha256(b"the-key").digest()
    keys = ring_of(TokenKey("k1", bytes(range(32))))
    check = KeyCheck(key_hashes=[digest.hex()], token_keys=keys, endpoint="iris")
    for signer in (digest, digest.hex().encode(), b"the-key"):
        for kid in ("k1", None):
            with pytest.raises(KeyRejected):
                check.verify(f"Bearer {mint(signer, 'iris', 60, kid=kid)[0]}")
