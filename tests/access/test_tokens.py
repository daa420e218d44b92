"""API tokens: their form, their hash, and a check that compares in constant time."""

from __future__ import annotations

import hmac
from pathlib import Path

import pytest

from mlform.access import tokenfile, tokens
from mlform.access.gate import Gate, Unauthenticated
from mlform.access.roles import Role


def test_a_token_is_an_id_and_a_secret_of_which_only_a_salted_hash_is_kept() -> None:
    one = tokens.mint("ci", Role.READER, 1000.0, 2000.0)
    two = tokens.mint("ci", Role.READER, 1000.0, 2000.0)
    token_id, secret = tokens.parse(one.text) or ("", "")
    assert one.text == f"mlf_{one.token.id}_{secret}"
    assert token_id == one.token.id and len(token_id) == 12
    assert len(secret) == 43  # 256 random bits
    assert one.token.hash.startswith("scrypt$16384$8$1$")
    assert secret not in one.token.hash and secret not in one.token.salt
    assert one.token.salt != two.token.salt and one.token.hash != two.token.hash
    assert tokens.matches(secret, one.token)
    assert not tokens.matches(secret, two.token)
    assert tokens.parse("mlf_nothex000000_" + secret) is None
    assert tokens.parse("mlf_" + token_id) is None
    assert tokens.parse("Bearer " + one.text) is None


def test_the_check_compares_in_constant_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    minted = tokens.mint("ci", Role.OPERATOR, 1000.0, None)
    tokenfile.write(tmp_path, [minted.token])
    gate = Gate(tokenfile.TokenSet(tokenfile.path(tmp_path)), clock=lambda: 1500.0)
    compared: list[tuple[object, object]] = []
    real = hmac.compare_digest

    def spy(a: bytes | str, b: bytes | str) -> bool:
        compared.append((a, b))
        return real(a, b)  # type: ignore[arg-type]

    monkeypatch.setattr(hmac, "compare_digest", spy)
    found = gate.authenticate(f"Bearer {minted.text}")
    assert (found.name, found.role, found.token_id) == ("ci", Role.OPERATOR, minted.token.id)
    assert len(compared) == 1  # scrypt's output against the kept hash
    again = gate.authenticate(f"Bearer {minted.text}")  # remembered: no scrypt this time
    assert again == found and len(compared) == 2
    wrong = minted.text[:-1] + ("A" if minted.text[-1] != "A" else "B")
    with pytest.raises(Unauthenticated):
        gate.authenticate(f"Bearer {wrong}")
    assert len(compared) == 3


def test_the_servers_copy_is_read_again_when_it_changes(tmp_path: Path) -> None:
    minted = tokens.mint("ci", Role.READER, 1000.0, None)
    gate = Gate(tokenfile.TokenSet(tokenfile.path(tmp_path)), clock=lambda: 1500.0)
    with pytest.raises(Unauthenticated):
        gate.authenticate(f"Bearer {minted.text}")  # no tokens file yet
    tokenfile.write(tmp_path, [minted.token])
    assert gate.authenticate(f"Bearer {minted.text}").name == "ci"
    revoked = tokens.Token(**{**_fields(minted.token), "revoked": 1400.0})
    tokenfile.write(tmp_path, [revoked])
    with pytest.raises(Unauthenticated) as refused:
        gate.authenticate(f"Bearer {minted.text}")
    assert str(refused.value).startswith(
        "the token 'ci' was revoked at 1970-01-01T00:23:20+00:00; ask an admin for a new one"
    )
    assert refused.value.actor == "ci"
    assert (tmp_path / "access" / "tokens.json").stat().st_mode & 0o777 == 0o600


def _fields(token: tokens.Token) -> dict[str, object]:
    return {name: getattr(token, name) for name in tokens.Token.__slots__}
